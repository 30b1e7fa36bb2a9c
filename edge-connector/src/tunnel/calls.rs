//! Serving calls: the runtime opens one bidirectional stream per call; each is read, checked,
//! run by the [`ToolSet`] within its deadline, and answered on the same stream.
//!
//! Nothing from the stream is trusted: frames are size-limited, the request is validated
//! ([`shared::call::Call`]), and a call for another tenant than our certificate's is refused
//! whatever the runtime says. While the tool runs, a writer task sends its progress, logs and
//! questions, and the reader hands answers back; a reset from the runtime (caller cancelled,
//! deadline passed there) drops the tool's future.

use std::sync::Arc;
use std::time::Duration;

use shared::call::{Call, CallFailure, CallOutcome, PreviewOutcome, preview_frame, response_frame};
use shared::frame::MAX_FRAME_LEN;
use shared::identity::TenantId;
use shared::io::{FrameReader, write_frame};
use shared::link::{Link, RecvStream, SendStream};
use shared::trace::{Attribute, Kind as SpanKind, Tracing};
use shared::wire::{self, ErrorCode, call_frame::Kind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::audit_gate::Witness;
use crate::call_context::CallContext;
use crate::toolset::ToolSet;

/// Time allowed for the request frame to arrive after the stream opens.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames a tool may queue before it waits for the stream.
const OUT_QUEUE: usize = 16;

/// Accepts call streams until the connection closes. While `draining`, new calls are
/// answered with [`ErrorCode::Draining`] so the runtime retries them on another tunnel.
/// With `witness`, every call's refusal or outcome goes to the connector's audit log.
pub async fn accept(
    conn: Link,
    tools: Arc<dyn ToolSet>,
    witness: Option<Arc<Witness>>,
    tracing: Arc<Tracing>,
    tenant: TenantId,
    calls: TaskTracker,
    draining: CancellationToken,
) {
    while let Ok((send, recv)) = conn.accept_bi().await {
        let stream = Stream {
            tools: tools.clone(),
            witness: witness.clone(),
            tracing: tracing.clone(),
            tenant: tenant.clone(),
            draining: draining.is_cancelled(),
        };
        if stream.draining {
            tokio::spawn(stream.serve(send, recv));
        } else {
            calls.spawn(stream.serve(send, recv));
        }
    }
}

/// What serving one call stream needs.
struct Stream {
    tools: Arc<dyn ToolSet>,
    witness: Option<Arc<Witness>>,
    tracing: Arc<Tracing>,
    tenant: TenantId,
    draining: bool,
}

impl Stream {
    async fn serve(self, send: SendStream, recv: RecvStream) {
        let Stream {
            tools,
            witness,
            tracing,
            tenant,
            draining,
        } = self;
        let mut reader = FrameReader::new(recv, MAX_FRAME_LEN);
        let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
        let broken = CancellationToken::new();
        let writer = tokio::spawn(write_frames(send, out_rx, broken.clone()));

        let mut actions = Vec::new();
        let mut receipt = None;
        let first = tokio::time::timeout(REQUEST_TIMEOUT, reader.next::<wire::CallFrame>()).await;
        let preview = matches!(
            &first,
            Ok(Ok(Some(wire::CallFrame {
                kind: Some(Kind::Preview(_))
            })))
        );
        let (call_id, outcome) = match first {
            Ok(Ok(Some(wire::CallFrame {
                kind: Some(Kind::Request(req) | Kind::Preview(req)),
            }))) => {
                let call_id = req.call_id;
                // The span is named before the request is validated: only a valid tool
                // name goes into it (and out over OTLP).
                let tool = shared::call::ToolName::parse(&req.tool)
                    .map_or_else(|_| "(invalid)".to_owned(), |t| t.as_str().to_owned());
                let span = tracing.start(
                    &format!("{} {tool}", if preview { "preview" } else { "call" }),
                    SpanKind::Server,
                    Some(&req.traceparent)
                        .filter(|t| !t.is_empty())
                        .map(String::as_str),
                );
                span.set_attributes(vec![
                    Attribute::new("mcp.tool.name", tool),
                    Attribute::new(
                        "mcp_edge.call_id",
                        i64::try_from(call_id).unwrap_or(i64::MAX),
                    ),
                ]);
                let ctx = CallContext::new(out_tx.clone(), req.interactive, tracing.clone(), span);
                let outcome = run(
                    req,
                    preview,
                    tools.as_ref(),
                    witness.as_deref(),
                    &tenant,
                    draining,
                    &ctx,
                    &mut reader,
                    &broken,
                )
                .await;
                if let Some(f) = outcome.as_ref().and_then(|a| a.failure()) {
                    ctx.span().set_error(&f.message);
                }
                actions = ctx.take_actions();
                receipt = ctx.take_receipt();
                (call_id, outcome)
            }
            Ok(Ok(Some(wire::CallFrame {
                kind: Some(Kind::Authorize(cb)),
            }))) => (
                cb.call_id,
                Some(Answer::Call(authorize(tools.as_ref(), &tenant, cb).await)),
            ),
            Ok(Ok(Some(wire::CallFrame {
                kind: Some(Kind::Connections(req)),
            }))) => (
                req.call_id,
                Some(Answer::Call(
                    connections(tools.as_ref(), &tenant, req).await,
                )),
            ),
            Ok(Ok(_)) => (
                0,
                Some(Answer::Call(Err(CallFailure::new(
                    ErrorCode::Malformed,
                    "expected a call request",
                )))),
            ),
            Ok(Err(e)) => (
                0,
                Some(Answer::Call(Err(CallFailure::new(
                    ErrorCode::Malformed,
                    e.to_string(),
                )))),
            ),
            Err(_) => (
                0,
                Some(Answer::Call(Err(CallFailure::new(
                    ErrorCode::Malformed,
                    "no call request in time",
                )))),
            ),
        };
        match outcome {
            Some(answer) => {
                let frame = match answer {
                    Answer::Call(outcome) => response_frame(call_id, outcome, actions, receipt),
                    Answer::Preview(effect) => preview_frame(call_id, effect, actions),
                };
                let _ = out_tx.send(frame).await;
                drop(out_tx);
                // Stay (and stay counted as in flight) until the response is delivered.
                let _ = writer.await;
            }
            None => writer.abort(), // cancelled by the runtime: nobody is listening
        }
    }
}

/// A user came back from an upstream's consent page: hand code and state to the tools
/// (their OAuth client), on behalf of a user of our own tenant only.
async fn authorize(
    tools: &dyn ToolSet,
    tenant: &TenantId,
    cb: wire::AuthorizeCallback,
) -> CallOutcome {
    let Some(caller) = cb.caller.as_ref() else {
        return Err(CallFailure::new(
            ErrorCode::Malformed,
            "authorization callback without a caller",
        ));
    };
    if caller.tenant != tenant.as_str() {
        // Debug-formatted: the claim is unvalidated runtime input, and must not forge log lines.
        warn!(claimed = ?caller.tenant, "authorization callback for another tenant refused");
        return Err(CallFailure::new(
            ErrorCode::Denied,
            "callback is for another tenant",
        ));
    }
    tools.authorize(&cb).await
}

/// A tenant administrator's connections request: for our own tenant only.
async fn connections(
    tools: &dyn ToolSet,
    tenant: &TenantId,
    req: wire::ConnectionsRequest,
) -> CallOutcome {
    let claimed = req.caller.as_ref().map_or("", |c| c.tenant.as_str());
    if claimed != tenant.as_str() {
        warn!(claimed = ?claimed, "connections request for another tenant refused");
        return Err(CallFailure::new(
            ErrorCode::Denied,
            "the request is for another tenant",
        ));
    }
    tools.connections(&req).await
}

/// Writes queued frames; finishes the stream after the response and waits until the runtime
/// has it (a drain that closed the connection earlier would discard it).
async fn write_frames(
    mut send: SendStream,
    mut frames: mpsc::Receiver<wire::CallFrame>,
    broken: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            f = frames.recv() => match f {
                Some(f) => f,
                None => return,
            },
            // The runtime stopped reading: the caller cancelled or the deadline passed there.
            _ = send.stopped() => {
                broken.cancel();
                return;
            }
        };
        let last = matches!(frame.kind, Some(Kind::Response(_)));
        if let Err(e) = write_frame(&mut send, &frame).await {
            debug!(error = %e, "call stream write failed");
            broken.cancel();
            return;
        }
        if last {
            send.finish();
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, send.stopped()).await;
            return;
        }
    }
}

/// How a stream's request ended.
enum Answer {
    /// A call's outcome.
    Call(CallOutcome),
    /// A preview's outcome.
    Preview(PreviewOutcome),
}

impl Answer {
    /// The failure, if it is one.
    fn failure(&self) -> Option<&CallFailure> {
        match self {
            Answer::Call(Err(f)) | Answer::Preview(Err(f)) => Some(f),
            _ => None,
        }
    }

    /// `f` as the answer to a call (`preview` false) or a preview.
    fn failed(preview: bool, f: CallFailure) -> Self {
        if preview {
            Answer::Preview(Err(f))
        } else {
            Answer::Call(Err(f))
        }
    }
}

/// Runs one request (or previews it: says what it would do, writing nothing); `None` if
/// the runtime cancelled it.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn run(
    req: wire::CallRequest,
    preview: bool,
    tools: &dyn ToolSet,
    witness: Option<&Witness>,
    tenant: &TenantId,
    draining: bool,
    ctx: &CallContext,
    reader: &mut FrameReader<RecvStream>,
    broken: &CancellationToken,
) -> Option<Answer> {
    if draining {
        return Some(Answer::failed(
            preview,
            CallFailure::new(
                ErrorCode::Draining,
                "connector is shutting down; retry on another",
            ),
        ));
    }
    let call = match Call::try_from(req) {
        Ok(c) => c,
        Err(e) => {
            return Some(Answer::failed(
                preview,
                CallFailure::new(ErrorCode::Malformed, e.to_string()),
            ));
        }
    };
    if &call.caller.tenant != tenant {
        warn!(call_id = call.id, claimed = %call.caller.tenant, "call for another tenant refused");
        let refused = CallFailure::new(ErrorCode::Denied, "call is for another tenant");
        if let Some(w) = witness
            && let Some(r) = w.finish(&call, preview, ctx, Some(&refused), false).await
        {
            ctx.set_receipt(r);
        }
        return Some(Answer::failed(preview, refused));
    }
    // Previews write nothing, so there is nothing to acknowledge.
    if !preview && ctx.accepted(call.id).await.is_err() {
        return None;
    }
    let work = async {
        if preview {
            Answer::Preview(tools.preview(&call, ctx).await)
        } else {
            Answer::Call(tools.call(&call, ctx).await)
        }
    };
    let answer = tokio::select! {
        out = tokio::time::timeout(call.timeout, work) => Some(out.unwrap_or_else(|_| {
            Answer::failed(preview, CallFailure::new(ErrorCode::DeadlineExceeded, format!("tool did not finish within {} ms", call.timeout.as_millis())))
        })),
        () = answers(reader, ctx) => {
            info!(call_id = call.id, "call cancelled by the runtime");
            None
        }
        () = broken.cancelled() => {
            info!(call_id = call.id, "call cancelled by the runtime (stream stopped)");
            None
        }
    };
    if let Some(w) = witness {
        let failure = answer.as_ref().and_then(Answer::failure);
        if let Some(r) = w
            .finish(&call, preview, ctx, failure, answer.is_none())
            .await
        {
            ctx.set_receipt(r);
        }
    }
    answer
}

/// Routes the runtime's answers to the tool; returns when the runtime cancels the call (a
/// reset) or breaks the protocol.
async fn answers(reader: &mut FrameReader<RecvStream>, ctx: &CallContext) {
    loop {
        match reader.next::<wire::CallFrame>().await {
            Ok(Some(wire::CallFrame {
                kind: Some(Kind::PeerResponse(r)),
            })) => {
                if !ctx.deliver(r) {
                    warn!("runtime answered a question nobody asked; cancelling the call");
                    return;
                }
            }
            // The runtime finished its side early (an older runtime): nothing more will come.
            Ok(None) => std::future::pending::<()>().await,
            Ok(Some(_)) => {
                warn!("unexpected frame from the runtime on a call stream; cancelling the call");
                return;
            }
            Err(_) => return,
        }
    }
}
