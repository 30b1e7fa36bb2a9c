//! Tracing across the tunnel (feature `otel`): both ends make OpenTelemetry spans and carry
//! the W3C `traceparent` of the runtime's call span in the call request, so the connector's
//! spans, and the upstream HTTP requests it makes, join the same trace.
//!
//! Each process owns its provider (no process-wide globals): spans always get real ids, and
//! are exported over OTLP/HTTP only when an endpoint is configured.

use std::borrow::Cow;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// A span attribute.
pub use opentelemetry::KeyValue as Attribute;
/// What a span stands for (server side of a call, client side of a request, ...).
pub use opentelemetry::trace::SpanKind as Kind;

/// Why an exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry exporter for {endpoint}: {reason}")]
pub struct ExporterError {
    /// The endpoint.
    pub endpoint: String,
    /// Why.
    pub reason: String,
}

/// The OTLP/HTTP URL of one signal (`v1/traces`, `v1/logs`) under a base endpoint.
pub fn signal_url(base: &url::Url, path: &str) -> String {
    format!("{}/{path}", base.as_str().trim_end_matches('/'))
}

/// The OpenTelemetry resource naming a service.
pub fn resource(service: &'static str, version: &'static str) -> Resource {
    Resource::builder()
        .with_service_name(service)
        .with_attribute(KeyValue::new("service.version", version))
        .build()
}

/// A process's tracer.
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Tracing {
    /// A tracer for `service`, exporting to `otlp` (base URL, e.g. `http://collector:4318`)
    /// when given.
    pub fn new(
        service: &'static str,
        version: &'static str,
        otlp: Option<&url::Url>,
    ) -> Result<Self, ExporterError> {
        let mut builder = SdkTracerProvider::builder().with_resource(resource(service, version));
        if let Some(base) = otlp {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(signal_url(base, "v1/traces"))
                .build()
                .map_err(|e| ExporterError {
                    endpoint: base.to_string(),
                    reason: e.to_string(),
                })?;
            builder = builder.with_batch_exporter(exporter);
        }
        let provider = builder.build();
        let tracer = provider.tracer(service);
        Ok(Self { provider, tracer })
    }

    /// Starts a span of `kind`, as a child of `parent` (a `traceparent`) when it is valid,
    /// or of nothing.
    pub fn start(&self, name: &str, kind: SpanKind, parent: Option<&str>) -> Span {
        let parent = parent
            .and_then(parse_traceparent)
            .map(|sc| Context::new().with_remote_span_context(sc))
            .unwrap_or_default();
        self.start_in(name, kind, &parent)
    }

    /// Starts a child span of `parent`.
    pub fn child(&self, parent: &Span, name: &str, kind: SpanKind) -> Span {
        self.start_in(name, kind, &parent.cx)
    }

    fn start_in(&self, name: &str, kind: SpanKind, parent: &Context) -> Span {
        let span = self
            .tracer
            .span_builder(Cow::Owned(name.to_owned()))
            .with_kind(kind)
            .start_with_context(&self.tracer, parent);
        Span {
            cx: Context::new().with_span(span),
        }
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(&self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

/// A span; it ends when dropped.
#[derive(Debug)]
pub struct Span {
    cx: Context,
}

impl Span {
    fn span_context(&self) -> SpanContext {
        self.cx.span().span_context().clone()
    }

    /// The trace id, 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.span_context().trace_id().to_string()
    }

    /// The span id, 16 hex digits.
    pub fn span_id(&self) -> String {
        self.span_context().span_id().to_string()
    }

    /// The W3C `traceparent` naming this span as the parent.
    pub fn traceparent(&self) -> String {
        let sc = self.span_context();
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    }

    /// Adds attributes.
    pub fn set_attributes(&self, attributes: Vec<KeyValue>) {
        self.cx.span().set_attributes(attributes);
    }

    /// Marks the span failed.
    pub fn set_error(&self, message: &str) {
        self.cx.span().set_status(Status::error(message.to_owned()));
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

/// Parses a W3C `traceparent` (`00-<trace>-<span>-<flags>`), refusing all-zero ids.
pub fn parse_traceparent(s: &str) -> Option<SpanContext> {
    let mut parts = s.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || trace.len() != 32 || span.len() != 16 {
        return None;
    }
    let sc = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_continue_a_trace_and_get_ids_without_an_exporter() {
        let t = Tracing::new("test", "0", None).unwrap();
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let span = t.start("call", SpanKind::Server, Some(parent));
        assert_eq!(span.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert_ne!(span.span_id(), "b7ad6b7169203331");
        let child = t.child(&span, "GET", SpanKind::Client);
        assert_eq!(child.trace_id(), span.trace_id());
        assert!(
            child
                .traceparent()
                .starts_with("00-0af7651916cd43dd8448eb211c80319c-")
        );
        let fresh = t.start("call", SpanKind::Server, Some("garbage"));
        assert_eq!(fresh.trace_id().len(), 32);
        assert_ne!(fresh.trace_id(), "0".repeat(32));
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01").is_none()
        );
    }
}
