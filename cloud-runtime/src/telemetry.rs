//! OpenTelemetry for the runtime: one span per tool call ([`shared::trace`], continuing the
//! MCP client's trace when it sends one, and continued by the connector through the tunnel),
//! and the audit records as OpenTelemetry log records. Both go to an OTLP/HTTP endpoint when
//! one is configured; without one, spans still get ids for the audit trail and the
//! connector, and nothing leaves the process.

use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use shared::trace::{ExporterError, Kind, Span, Tracing, resource, signal_url};
use url::Url;

use crate::audit::log::RecordSink;
use crate::audit::record::{AuditRecord, Verdict};

/// The runtime's telemetry providers.
#[derive(Debug)]
pub struct Telemetry {
    tracing: Tracing,
    logger_provider: Option<SdkLoggerProvider>,
}

const SERVICE: &str = "cloud-runtime";

impl Telemetry {
    /// Providers exporting to the OTLP/HTTP endpoint `otlp` (e.g. `http://collector:4318`),
    /// or exporting nothing.
    pub fn new(otlp: Option<&Url>) -> Result<Self, ExporterError> {
        let tracing = Tracing::new(SERVICE, env!("CARGO_PKG_VERSION"), otlp)?;
        let logger_provider = match otlp {
            None => None,
            Some(base) => {
                let logs = opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_endpoint(signal_url(base, "v1/logs"))
                    .build()
                    .map_err(|e| ExporterError {
                        endpoint: base.to_string(),
                        reason: e.to_string(),
                    })?;
                Some(
                    SdkLoggerProvider::builder()
                        .with_resource(resource(SERVICE, env!("CARGO_PKG_VERSION")))
                        .with_batch_exporter(logs)
                        .build(),
                )
            }
        };
        Ok(Self {
            tracing,
            logger_provider,
        })
    }

    /// Starts the span of one tool call, as a child of the client's `traceparent` if it sent
    /// a valid one.
    pub fn call_span(&self, name: &str, client_traceparent: Option<&str>) -> Span {
        self.tracing.start(name, Kind::Server, client_traceparent)
    }

    /// The audit-record exporter, when an endpoint is configured.
    pub fn audit_sink(&self) -> Option<Box<dyn RecordSink>> {
        self.logger_provider.as_ref().map(|p| {
            Box::new(OtlpAuditSink {
                logger: p.logger("cloud-runtime.audit"),
            }) as Box<dyn RecordSink>
        })
    }

    /// Flushes and stops the exporters.
    pub fn shutdown(&self) {
        self.tracing.shutdown();
        if let Some(p) = &self.logger_provider {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
    }
}

struct OtlpAuditSink {
    logger: SdkLogger,
}

fn text(v: &str) -> AnyValue {
    AnyValue::from(v.to_owned())
}

fn int(v: u64) -> AnyValue {
    AnyValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

impl RecordSink for OtlpAuditSink {
    fn emit(&mut self, seq: u64, r: &AuditRecord) {
        let mut rec = self.logger.create_log_record();
        rec.set_event_name("mcp_edge.audit");
        rec.set_timestamp(SystemTime::now());
        let denied = r.decision == Some(Verdict::Deny);
        rec.set_severity_number(if denied {
            Severity::Warn
        } else {
            Severity::Info
        });
        rec.set_severity_text(if denied { "WARN" } else { "INFO" });
        rec.set_body(AnyValue::from(serde_json::to_string(r).unwrap_or_default()));
        if let (Ok(t), Ok(s)) = (TraceId::from_hex(&r.trace_id), SpanId::from_hex(&r.span_id)) {
            rec.set_trace_context(t, s, Some(TraceFlags::SAMPLED));
        }
        let kind = serde_json::to_value(r.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut attrs: Vec<(&'static str, AnyValue)> = vec![
            ("audit.seq", int(seq)),
            ("audit.kind", AnyValue::from(kind)),
            ("mcp_edge.tenant", text(&r.tenant)),
            ("mcp_edge.user", text(&r.user)),
            ("mcp_edge.agent", text(&r.agent)),
            ("mcp_edge.tool", text(&r.tool)),
            ("mcp_edge.call_id", int(r.call_id)),
        ];
        let optional = [
            ("mcp_edge.gateway", &r.gateway),
            ("mcp_edge.user_id", &r.user_id),
            ("mcp_edge.connector", &r.connector),
            ("mcp_edge.instance", &r.instance),
            ("mcp_edge.target", &r.target),
            ("mcp_edge.reason", &r.reason),
            ("mcp_edge.outcome", &r.outcome),
        ];
        attrs.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.as_deref().map(|v| (k, text(v)))),
        );
        if let Some(d) = r.decision {
            attrs.push((
                "mcp_edge.decision",
                text(if d == Verdict::Allow { "allow" } else { "deny" }),
            ));
        }
        if let Some(l) = r.layer {
            attrs.push(("mcp_edge.layer", text(l.as_str())));
        }
        if let Some(ms) = r.duration_ms {
            attrs.push(("mcp_edge.duration_ms", AnyValue::Double(ms)));
        }
        if let Some(u) = &r.upstream {
            attrs.push(("http.request.method", text(&u.method)));
            attrs.push(("http.route", text(&u.route)));
            attrs.push(("http.response.status_code", int(u64::from(u.status))));
        }
        if let Some(a) = &r.arguments {
            attrs.push(("mcp_edge.arguments.hmac_sha256", text(&a.hmac_sha256)));
        }
        rec.add_attributes(attrs);
        self.logger.emit(rec);
    }
}
