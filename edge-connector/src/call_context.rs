//! What a running tool can do besides returning: report progress, log, ask the MCP client a
//! question (elicitation, sampling), record the upstream requests it makes (for the audit
//! trail), and start spans under the call's span. Frames go out on the call's stream;
//! answers come back through [`CallContext::deliver`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use shared::call::CallFailure;
use shared::trace::{Span, Tracing};
use shared::wire::{self, ErrorCode, PeerMethod, call_frame::Kind};
use tokio::sync::{mpsc, oneshot};

use crate::providers::trail::Trail;

/// The tool's handle on its call.
#[derive(Debug)]
pub struct CallContext {
    out: mpsc::Sender<wire::CallFrame>,
    interactive: bool,
    pending: Mutex<HashMap<u64, oneshot::Sender<wire::PeerResponse>>>,
    next_id: AtomicU64,
    trail: Trail,
    receipt: Mutex<Option<wire::CallReceipt>>,
}

impl CallContext {
    /// A context writing frames to `out`; `interactive` when the runtime relays answers to
    /// questions for this call; `span` is the call's span.
    pub fn new(
        out: mpsc::Sender<wire::CallFrame>,
        interactive: bool,
        tracing: Arc<Tracing>,
        span: Span,
    ) -> Self {
        Self {
            out,
            interactive,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            trail: Trail::new(tracing, span),
            receipt: Mutex::new(None),
        }
    }

    /// The call's span.
    pub fn span(&self) -> &Span {
        self.trail.span()
    }

    /// The call's spans and upstream actions, for the requests its tool makes.
    pub fn trail(&self) -> &Trail {
        &self.trail
    }

    /// The recorded upstream requests.
    pub fn take_actions(&self) -> Vec<wire::UpstreamAction> {
        self.trail.take()
    }

    /// Keeps the connector's receipt for the call's record, for the response.
    pub fn set_receipt(&self, receipt: wire::CallReceipt) {
        *self.receipt.lock().unwrap_or_else(|p| p.into_inner()) = Some(receipt);
    }

    /// The receipt for the call's record, if it was written.
    pub fn take_receipt(&self) -> Option<wire::CallReceipt> {
        self.receipt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    async fn send(&self, kind: Kind) -> Result<(), CallFailure> {
        self.out
            .send(wire::CallFrame { kind: Some(kind) })
            .await
            .map_err(|_| CallFailure::new(ErrorCode::Cancelled, "the call's stream is closed"))
    }

    /// Tells the runtime the call passed the connector's checks and its tool starts now
    /// ([`wire::CallAccepted`]); from then on the runtime never sends it elsewhere.
    pub async fn accepted(&self, call_id: u64) -> Result<(), CallFailure> {
        self.send(Kind::Accepted(wire::CallAccepted { call_id }))
            .await
    }

    /// Reports progress (`total` when known).
    pub async fn progress(&self, progress: f64, total: Option<f64>, message: &str) {
        let _ = self
            .send(Kind::Progress(wire::CallProgress {
                progress,
                total,
                message: message.to_owned(),
            }))
            .await;
    }

    /// Sends a log message at an MCP logging level (`debug`, `info`, `warning`, ...).
    pub async fn log(&self, level: &str, logger: &str, data: serde_json::Value) {
        let _ = self
            .send(Kind::Log(wire::CallLog {
                level: level.to_owned(),
                logger: logger.to_owned(),
                data_json: serde_json::to_vec(&data).unwrap_or_default(),
            }))
            .await;
    }

    /// Asks the MCP client; returns its result object.
    pub async fn request(
        &self,
        method: PeerMethod,
        params: &serde_json::Value,
    ) -> Result<serde_json::Value, CallFailure> {
        if !self.interactive {
            return Err(CallFailure::new(
                ErrorCode::Internal,
                "this tool is not declared interactive, so the runtime relays no questions for it",
            ));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.send(Kind::PeerRequest(wire::PeerRequest {
            id,
            method: method as i32,
            params_json: serde_json::to_vec(params).unwrap_or_default(),
        }))
        .await?;
        let resp = rx.await.map_err(|_| {
            CallFailure::new(
                ErrorCode::Cancelled,
                "the call ended while waiting for the client",
            )
        })?;
        if !resp.error.is_empty() {
            return Err(CallFailure::new(
                ErrorCode::Unavailable,
                format!("the client could not answer: {}", resp.error),
            ));
        }
        serde_json::from_slice(&resp.result_json).map_err(|e| {
            CallFailure::new(
                ErrorCode::Malformed,
                format!("client answer is not JSON: {e}"),
            )
        })
    }

    /// Hands an answer from the stream to the request waiting for it. Returns false for an
    /// answer nobody asked for.
    pub fn deliver(&self, resp: wire::PeerResponse) -> bool {
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&resp.id);
        match waiter {
            Some(tx) => tx.send(resp).is_ok(),
            None => false,
        }
    }
}
