//! An OTLP/HTTP receiver on loopback for the suites: it accepts `POST /v1/traces` and
//! `POST /v1/logs` (protobuf), decodes them with the official OpenTelemetry protobuf
//! definitions (crate `opentelemetry-proto`), and keeps the spans and log records.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

/// One span, flattened.
#[derive(Debug, Clone)]
pub struct Span {
    /// `service.name` of the exporting process.
    pub service: String,
    /// Span name.
    pub name: String,
    /// Trace id, hex.
    pub trace_id: String,
    /// Span id, hex.
    pub span_id: String,
    /// Parent span id, hex (empty for a root).
    pub parent_span_id: String,
    /// Attributes as strings.
    pub attributes: Vec<(String, String)>,
}

/// One log record, flattened.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// `service.name` of the exporting process.
    pub service: String,
    /// Event name.
    pub event_name: String,
    /// Body text.
    pub body: String,
    /// Trace id, hex.
    pub trace_id: String,
    /// Span id, hex.
    pub span_id: String,
    /// Attributes as strings.
    pub attributes: Vec<(String, String)>,
}

impl LogRecord {
    /// An attribute's value.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Span {
    /// An attribute's value.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    logs: Vec<LogRecord>,
    raw: Vec<u8>,
}

/// A running receiver.
pub struct OtlpReceiver {
    /// Where it listens (`http://127.0.0.1:PORT` is the OTLP endpoint).
    pub addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    _runtime: tokio::runtime::Runtime,
}

fn text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attrs(kv: &[KeyValue]) -> Vec<(String, String)> {
    kv.iter()
        .map(|k| (k.key.clone(), text(k.value.as_ref())))
        .collect()
}

fn service(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
        .map(|a| text(a.value.as_ref()))
        .unwrap_or_default()
}

async fn traces(State(r): State<Arc<Mutex<Received>>>, body: Bytes) -> StatusCode {
    let Ok(req) = ExportTraceServiceRequest::decode(body.as_ref()) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut r = r.lock().unwrap_or_else(|p| p.into_inner());
    r.raw.extend_from_slice(&body);
    for rs in req.resource_spans {
        let svc = service(rs.resource.as_ref());
        for ss in rs.scope_spans {
            for s in ss.spans {
                r.spans.push(Span {
                    service: svc.clone(),
                    name: s.name,
                    trace_id: hex::encode(s.trace_id),
                    span_id: hex::encode(s.span_id),
                    parent_span_id: hex::encode(s.parent_span_id),
                    attributes: attrs(&s.attributes),
                });
            }
        }
    }
    StatusCode::OK
}

async fn logs(State(r): State<Arc<Mutex<Received>>>, body: Bytes) -> StatusCode {
    let Ok(req) = ExportLogsServiceRequest::decode(body.as_ref()) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut r = r.lock().unwrap_or_else(|p| p.into_inner());
    r.raw.extend_from_slice(&body);
    for rl in req.resource_logs {
        let svc = service(rl.resource.as_ref());
        for sl in rl.scope_logs {
            for l in sl.log_records {
                r.logs.push(LogRecord {
                    service: svc.clone(),
                    event_name: l.event_name,
                    body: text(l.body.as_ref()),
                    trace_id: hex::encode(l.trace_id),
                    span_id: hex::encode(l.span_id),
                    attributes: attrs(&l.attributes),
                });
            }
        }
    }
    StatusCode::OK
}

impl OtlpReceiver {
    /// Starts one on a free loopback port.
    pub fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let received = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/logs", post(logs))
            .with_state(received.clone());
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            received,
            _runtime: runtime,
        })
    }

    /// The endpoint to configure (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans so far.
    pub fn spans(&self) -> Vec<Span> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spans
            .clone()
    }

    /// The log records so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .logs
            .clone()
    }

    /// Every request body received, concatenated (for greps).
    pub fn raw(&self) -> Vec<u8> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .raw
            .clone()
    }
}
