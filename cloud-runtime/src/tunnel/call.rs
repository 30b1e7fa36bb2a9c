//! One tool call on its own bidirectional stream of the tunnel.
//!
//! The runtime sends the request frame, and keeps its side open when the tool is interactive
//! (may ask questions), finishing it at once otherwise; the connector acknowledges it before
//! the tool starts (when it has the [`CALL_ACK`] capability), then answers with zero or more
//! progress, log and peer-request frames, and exactly one response. A peer
//! request (the tool asking the MCP client to elicit input or sample a model) is relayed to
//! the [`CallPeer`] and its answer written back on the same stream. If the caller goes away
//! or the deadline passes, the stream is reset both ways, which cancels the tool on the
//! connector.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use shared::call::{
    CALL_ACK, CallFailure, CallOutcome, PreviewOutcome, effect_from_wire, outcome_from_wire,
};
use shared::frame::MAX_FRAME_LEN;
use shared::io::{FrameReader, write_frame};
use shared::link::{Link, RecvStream, SendStream};
use shared::wire::{self, ErrorCode, PeerMethod, call_frame::Kind};
use tokio::time::Instant;

/// Stream error code sent when the runtime abandons a call (deadline or caller cancelled).
pub const STREAM_CANCELLED: u32 = 1;

/// A boxed future, for the object-safe [`CallPeer`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whoever made the call, as the call sees it while it runs: where progress and log
/// messages go, and who answers the tool's questions.
pub trait CallPeer: Send + Sync {
    /// Progress of the call.
    fn progress(&self, progress: wire::CallProgress) -> BoxFuture<'_, ()>;
    /// A log message from the tool.
    fn log(&self, log: wire::CallLog) -> BoxFuture<'_, ()>;
    /// A request to the caller (elicitation, sampling); the answer as JSON, or why not.
    fn request(
        &self,
        method: PeerMethod,
        params_json: Vec<u8>,
    ) -> BoxFuture<'_, Result<Vec<u8>, String>>;
}

/// A caller that takes no progress or logs and answers no questions (admin socket, bench).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPeer;

impl CallPeer for NoPeer {
    fn progress(&self, _: wire::CallProgress) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn log(&self, _: wire::CallLog) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn request(&self, _: PeerMethod, _: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async { Err("this caller cannot answer questions from tools".to_owned()) })
    }
}

/// How a call failed at the transport level.
#[derive(Debug)]
pub enum Error {
    /// The request never left: another tunnel may take it.
    NotSent(String),
    /// The request left but the connector never acknowledged it: the tool had not started,
    /// unless the acknowledgement was lost with the tunnel. Only a call that is harmless to
    /// repeat may go to another tunnel; otherwise this failure is the outcome.
    Unacknowledged(CallFailure),
    /// The request may have been delivered; the outcome is this failure.
    Failed(CallFailure),
}

/// What the runtime expects of a connector's acknowledgements ([`wire::CallAccepted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// The connector predates acknowledgements: a lost call is simply failed.
    Unsupported,
    /// Tell an unacknowledged loss from an acknowledged one.
    Tracked,
    /// As [`Ack::Tracked`], and give up on the call (resetting its stream) when no
    /// acknowledgement came within this long, so that a call sent into a tunnel that died
    /// silently can run elsewhere before the tunnel is declared lost.
    Within(Duration),
}

impl Ack {
    /// What to expect of a connector that announced `capabilities` in its hello.
    pub fn of(capabilities: &[String]) -> Self {
        if capabilities.iter().any(|c| c == CALL_ACK) {
            Ack::Tracked
        } else {
            Ack::Unsupported
        }
    }
}

/// The failure for a tunnel lost mid-call, typed by whether the call was acknowledged.
fn lost(e: impl std::fmt::Display, unacknowledged: bool) -> Error {
    let failure = CallFailure::new(
        ErrorCode::Unavailable,
        format!("tunnel lost during the call: {e}"),
    );
    if unacknowledged {
        Error::Unacknowledged(failure)
    } else {
        Error::Failed(failure)
    }
}

/// Resets the stream unless the call completed, so that a dropped call (the MCP client
/// cancelled, the deadline passed) stops the tool on the connector.
struct CancelOnDrop {
    send: SendStream,
    completed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.completed {
            self.send.reset(STREAM_CANCELLED);
        }
    }
}

/// A connector's answer to a call.
#[derive(Debug)]
pub struct Answered {
    /// The result.
    pub outcome: CallOutcome,
    /// The upstream requests the connector made for it.
    pub actions: Vec<wire::UpstreamAction>,
    /// The connector's signed receipt for its own record of the call, if it keeps one.
    pub receipt: Option<wire::CallReceipt>,
}

/// Sends `request` on a new stream of `conn` and waits at most `timeout` for its response,
/// which comes with the upstream requests the connector made for it and its receipt.
pub async fn run(
    conn: &Link,
    request: &wire::CallRequest,
    timeout: Duration,
    ack: Ack,
    peer: &dyn CallPeer,
) -> Result<Answered, Error> {
    let mut response = exchange(
        conn,
        Kind::Request(request.clone()),
        request.interactive,
        timeout,
        ack,
        peer,
    )
    .await?;
    let actions = std::mem::take(&mut response.actions);
    let receipt = response.receipt.take();
    Ok(Answered {
        outcome: outcome_from_wire(response),
        actions,
        receipt,
    })
}

/// Asks the connector what `request` would do, without doing it: the effect to show the
/// user before they confirm it.
pub async fn preview(
    conn: &Link,
    request: &wire::CallRequest,
    timeout: Duration,
) -> Result<PreviewOutcome, Error> {
    exchange(
        conn,
        Kind::Preview(request.clone()),
        false,
        timeout,
        Ack::Unsupported,
        &NoPeer,
    )
    .await
    .map(effect_from_wire)
}

/// Sends a request addressed to this connector itself rather than to a tool (`first`: an
/// authorization callback, an administrator's connections request), answered like a call.
pub async fn direct(conn: &Link, first: Kind, timeout: Duration) -> Result<CallOutcome, Error> {
    exchange(conn, first, false, timeout, Ack::Unsupported, &NoPeer)
        .await
        .map(outcome_from_wire)
}

/// One call-shaped exchange: `first` out, frames in until the response, all within
/// `timeout`.
async fn exchange(
    conn: &Link,
    first: Kind,
    interactive: bool,
    timeout: Duration,
    ack: Ack,
    peer: &dyn CallPeer,
) -> Result<wire::CallResponse, Error> {
    let ack_deadline = match ack {
        Ack::Within(wait) => Some(Instant::now() + wait),
        Ack::Unsupported | Ack::Tracked => None,
    };
    let call = async {
        // Opening a stream waits for the peer over SSH (and for stream credit over QUIC):
        // a silent connector is noticed here too.
        let send = send_first(conn, first, interactive);
        let (mut stream, recv) = match ack_deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, send)
                .await
                .map_err(|_| no_acknowledgement())??,
            None => send.await?,
        };
        let response = receive(&mut stream, recv, ack, ack_deadline, peer).await?;
        stream.completed = true;
        if interactive {
            stream.send.finish();
        }
        Ok(response)
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Failed(CallFailure::new(
                ErrorCode::DeadlineExceeded,
                format!("no answer within {} ms", timeout.as_millis()),
            )))
        })
}

fn no_acknowledgement() -> Error {
    Error::Unacknowledged(CallFailure::new(
        ErrorCode::Unavailable,
        "the connector did not acknowledge the call in time",
    ))
}

/// Opens the call's stream and sends its first frame (finishing our side when nothing will
/// be relayed back).
async fn send_first(
    conn: &Link,
    first: Kind,
    interactive: bool,
) -> Result<(CancelOnDrop, RecvStream), Error> {
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| Error::NotSent(e.to_string()))?;
    let mut stream = CancelOnDrop {
        send,
        completed: false,
    };
    let frame = wire::CallFrame { kind: Some(first) };
    if let Err(e) = write_frame(&mut stream.send, &frame).await {
        return Err(match e {
            shared::io::WriteError::Encode(e) => {
                Error::Failed(CallFailure::new(ErrorCode::InvalidArguments, e.to_string()))
            }
            other => Error::NotSent(other.to_string()),
        });
    }
    if !interactive {
        // Nothing will be relayed back: finishing now lets the FIN ride with the request.
        stream.send.finish();
    }
    Ok((stream, recv))
}

/// Reads the connector's frames until its response, relaying progress, logs and questions
/// to `peer`; with acknowledgements, tells a loss before the acknowledgement from one after.
async fn receive(
    stream: &mut CancelOnDrop,
    recv: RecvStream,
    ack: Ack,
    ack_deadline: Option<Instant>,
    peer: &dyn CallPeer,
) -> Result<wire::CallResponse, Error> {
    let mut reader = FrameReader::new(recv, MAX_FRAME_LEN);
    let mut unacknowledged = ack != Ack::Unsupported;
    loop {
        let next = reader.next::<wire::CallFrame>();
        let read = match ack_deadline.filter(|_| unacknowledged) {
            Some(deadline) => tokio::time::timeout_at(deadline, next)
                .await
                .map_err(|_| no_acknowledgement())?,
            None => next.await,
        };
        let frame = match read {
            Ok(Some(wire::CallFrame { kind: Some(kind) })) => kind,
            Ok(Some(_)) => return Err(malformed("empty frame on a call stream")),
            Ok(None) => return Err(lost("stream ended without a response", unacknowledged)),
            Err(e) => return Err(lost(e, unacknowledged)),
        };
        match frame {
            Kind::Response(r) => return Ok(r),
            Kind::Accepted(_) if unacknowledged => unacknowledged = false,
            Kind::Accepted(_) => {
                return Err(malformed("call acknowledged twice, or without being asked"));
            }
            // Anything from the tool means it started, acknowledged or not.
            Kind::Progress(p) => {
                unacknowledged = false;
                peer.progress(p).await;
            }
            Kind::Log(l) => {
                unacknowledged = false;
                peer.log(l).await;
            }
            Kind::PeerRequest(req) => {
                unacknowledged = false;
                let method = PeerMethod::try_from(req.method).unwrap_or(PeerMethod::Unspecified);
                let answer = match method {
                    PeerMethod::Unspecified => Err("unknown peer request".to_owned()),
                    m => peer.request(m, req.params_json).await,
                };
                let (result_json, error) = match answer {
                    Ok(json) => (json, String::new()),
                    Err(e) => (Vec::new(), e),
                };
                let reply = wire::CallFrame {
                    kind: Some(Kind::PeerResponse(wire::PeerResponse {
                        id: req.id,
                        result_json,
                        error,
                    })),
                };
                write_frame(&mut stream.send, &reply)
                    .await
                    .map_err(|e| lost(e, false))?;
            }
            Kind::Request(_)
            | Kind::PeerResponse(_)
            | Kind::Authorize(_)
            | Kind::Preview(_)
            | Kind::Connections(_) => {
                return Err(malformed(
                    "connector sent a runtime-only frame on a call stream",
                ));
            }
        }
    }
}

fn malformed(msg: &str) -> Error {
    Error::Failed(CallFailure::new(ErrorCode::Malformed, msg))
}
