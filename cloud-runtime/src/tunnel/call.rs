//! One tool call on its own bidirectional QUIC stream: request frame, then progress frames,
//! then exactly one response frame.

use std::time::Duration;

use shared::call::{CallFailure, CallOutcome, outcome_from_wire};
use shared::frame::MAX_FRAME_LEN;
use shared::io::{FrameReader, write_frame};
use shared::wire::{self, ErrorCode, call_frame::Kind};

/// Stream error code sent when the runtime abandons a call (deadline or caller cancelled).
pub const STREAM_CANCELLED: u32 = 1;

/// How a call failed at the transport level.
#[derive(Debug)]
pub enum Error {
    /// The request never left: another tunnel may take it.
    NotSent(String),
    /// The request may have been delivered; the outcome is this failure.
    Failed(CallFailure),
}

fn lost(e: impl std::fmt::Display) -> Error {
    Error::Failed(CallFailure::new(
        ErrorCode::Unavailable,
        format!("tunnel lost during the call: {e}"),
    ))
}

/// Sends `request` on a new stream of `conn` and waits at most `timeout` for its response.
pub async fn run(
    conn: &quinn::Connection,
    request: &wire::CallRequest,
    timeout: Duration,
) -> Result<CallOutcome, Error> {
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| Error::NotSent(e.to_string()))?;
    let frame = wire::CallFrame {
        kind: Some(Kind::Request(request.clone())),
    };
    if let Err(e) = write_frame(&mut send, &frame).await {
        return Err(match e {
            shared::io::WriteError::Encode(e) => {
                Error::Failed(CallFailure::new(ErrorCode::InvalidArguments, e.to_string()))
            }
            other => Error::NotSent(other.to_string()),
        });
    }
    let _ = send.finish();
    let mut reader = FrameReader::new(recv, MAX_FRAME_LEN);
    let response = tokio::time::timeout(timeout, async {
        loop {
            match reader.next::<wire::CallFrame>().await {
                Ok(Some(wire::CallFrame {
                    kind: Some(Kind::Response(r)),
                })) => return Ok(r),
                Ok(Some(wire::CallFrame {
                    kind: Some(Kind::Progress(_)),
                })) => continue,
                Ok(Some(_)) => {
                    return Err(Error::Failed(CallFailure::new(
                        ErrorCode::Malformed,
                        "connector sent an unexpected frame on a call stream",
                    )));
                }
                Ok(None) => return Err(lost("stream ended without a response")),
                Err(e) => return Err(lost(e)),
            }
        }
    })
    .await;
    match response {
        Ok(Ok(r)) => Ok(outcome_from_wire(r)),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            // Tell the connector to stop working on it.
            let _ = send.reset(quinn::VarInt::from_u32(STREAM_CANCELLED));
            let _ = reader
                .get_mut()
                .stop(quinn::VarInt::from_u32(STREAM_CANCELLED));
            Err(Error::Failed(CallFailure::new(
                ErrorCode::DeadlineExceeded,
                format!("no answer within {} ms", timeout.as_millis()),
            )))
        }
    }
}
