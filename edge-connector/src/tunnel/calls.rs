//! Serving calls: the runtime opens one bidirectional stream per call; each is read, checked,
//! run by the [`Toolbox`] within its deadline, and answered on the same stream.
//!
//! Nothing from the stream is trusted: frames are size-limited, the request is validated
//! ([`shared::call::Call`]), and a call for another tenant than our certificate's is refused
//! whatever the runtime says. If the runtime stops the stream (caller cancelled, deadline
//! passed there), the tool's future is dropped.

use std::sync::Arc;
use std::time::Duration;

use shared::call::{Call, CallFailure, CallOutcome, response_frame};
use shared::frame::MAX_FRAME_LEN;
use shared::identity::TenantId;
use shared::io::{FrameReader, write_frame};
use shared::wire::{self, ErrorCode, call_frame::Kind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::tools::Toolbox;

/// Time allowed for the request frame to arrive after the stream opens.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts call streams until the connection closes. While `draining`, new calls are
/// answered with [`ErrorCode::Draining`] so the runtime retries them on another tunnel.
pub async fn accept(
    conn: quinn::Connection,
    toolbox: Arc<Toolbox>,
    tenant: TenantId,
    calls: TaskTracker,
    draining: CancellationToken,
) {
    while let Ok((send, recv)) = conn.accept_bi().await {
        let toolbox = toolbox.clone();
        let tenant = tenant.clone();
        if draining.is_cancelled() {
            tokio::spawn(serve(send, recv, toolbox, tenant, true));
        } else {
            calls.spawn(serve(send, recv, toolbox, tenant, false));
        }
    }
}

async fn serve(
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    toolbox: Arc<Toolbox>,
    tenant: TenantId,
    draining: bool,
) {
    let mut reader = FrameReader::new(recv, MAX_FRAME_LEN);
    let (call_id, outcome) =
        match tokio::time::timeout(REQUEST_TIMEOUT, reader.next::<wire::CallFrame>()).await {
            Ok(Ok(Some(wire::CallFrame {
                kind: Some(Kind::Request(req)),
            }))) => {
                let call_id = req.call_id;
                (
                    call_id,
                    run(req, &toolbox, &tenant, draining, &mut send).await,
                )
            }
            Ok(Ok(_)) => (
                0,
                Some(Err(CallFailure::new(
                    ErrorCode::Malformed,
                    "expected a call request",
                ))),
            ),
            Ok(Err(e)) => (
                0,
                Some(Err(CallFailure::new(ErrorCode::Malformed, e.to_string()))),
            ),
            Err(_) => (
                0,
                Some(Err(CallFailure::new(
                    ErrorCode::Malformed,
                    "no call request in time",
                ))),
            ),
        };
    let Some(outcome) = outcome else {
        return; // cancelled by the runtime: nobody is listening
    };
    if let Err(e) = write_frame(&mut send, &response_frame(call_id, outcome)).await {
        debug!(call_id, error = %e, "could not send the call response");
        return;
    }
    let _ = send.finish();
    // Stay (and stay counted as in flight) until the runtime has the whole response: a drain
    // that closed the connection earlier would discard it.
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, send.stopped()).await;
}

/// Runs one request; `None` if the runtime cancelled it.
async fn run(
    req: wire::CallRequest,
    toolbox: &Toolbox,
    tenant: &TenantId,
    draining: bool,
    send: &mut quinn::SendStream,
) -> Option<CallOutcome> {
    if draining {
        return Some(Err(CallFailure::new(
            ErrorCode::Draining,
            "connector is shutting down; retry on another",
        )));
    }
    let call = match Call::try_from(req) {
        Ok(c) => c,
        Err(e) => return Some(Err(CallFailure::new(ErrorCode::Malformed, e.to_string()))),
    };
    if &call.caller.tenant != tenant {
        warn!(call_id = call.id, claimed = %call.caller.tenant, "call for another tenant refused");
        return Some(Err(CallFailure::new(
            ErrorCode::Denied,
            "call is for another tenant",
        )));
    }
    tokio::select! {
        out = tokio::time::timeout(call.timeout, toolbox.call(&call)) => Some(out.unwrap_or_else(|_| {
            Err(CallFailure::new(ErrorCode::DeadlineExceeded, format!("tool did not finish within {} ms", call.timeout.as_millis())))
        })),
        _ = send.stopped() => {
            debug!(call_id = call.id, "call cancelled by the runtime");
            None
        }
    }
}
