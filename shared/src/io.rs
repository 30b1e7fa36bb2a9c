//! Reading and writing frames on async byte streams (QUIC streams, SSH channels).
//!
//! A process may [`tap`] every frame it reads or writes into a file, for debugging and for
//! the test that proves no credential crosses the tunnel. Off unless asked for.

use std::io::Write as _;
use std::sync::{Mutex, OnceLock};

use bytes::BytesMut;
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{self, DecodeError, EncodeError, FrameDecoder};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The transport failed.
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a valid frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Why a frame could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The transport failed.
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
    /// The message is too large to frame.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

static TAP: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// From now on, appends every frame this process reads or writes (length prefix and
/// protobuf body, as on the wire inside TLS) to `file`. Returns false if a tap is set
/// already.
pub fn tap(file: std::fs::File) -> bool {
    TAP.set(Mutex::new(file)).is_ok()
}

fn tapped(header: Option<u32>, bytes: &[u8]) {
    if let Some(t) = TAP.get() {
        let mut f = t.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(len) = header {
            let _ = f.write_all(&len.to_be_bytes());
        }
        let _ = f.write_all(bytes);
    }
}

/// Reads frames of one message type from a stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    decoder: FrameDecoder,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a stream; frames longer than `max` bytes are refused.
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            decoder: FrameDecoder::new(max),
        }
    }

    /// The next message, or `Ok(None)` at a clean end of stream.
    pub async fn next<M: Message + Default>(&mut self) -> Result<Option<M>, ReadError> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(body) = self.decoder.next_frame()? {
                // The body is at most MAX_FRAME_LEN, well within u32.
                tapped(Some(body.len() as u32), &body);
                return Ok(Some(frame::decode_body(&body)?));
            }
            // Never read past what the current frame needs beyond one chunk: the check on
            // the announced length happens before the body is buffered.
            let want = self.decoder.wanted()?.clamp(1, chunk.len());
            let buf = chunk.get_mut(..want).unwrap_or(&mut []);
            let n = self.inner.read(buf).await?;
            if n == 0 {
                self.decoder.finish()?;
                return Ok(None);
            }
            self.decoder.extend(chunk.get(..n).unwrap_or(&[]));
        }
    }
}

/// Writes one message as a frame.
pub async fn write_frame<W: AsyncWrite + Unpin, M: Message>(
    w: &mut W,
    msg: &M,
) -> Result<(), WriteError> {
    let mut buf = BytesMut::new();
    frame::encode(msg, &mut buf)?;
    tapped(None, &buf);
    w.write_all(&buf).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ControlFrame, Heartbeat, control_frame::Kind};

    #[tokio::test]
    async fn reads_back_what_was_written_then_a_clean_end() {
        let (mut a, b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for seq in 0..100 {
                let f = ControlFrame {
                    kind: Some(Kind::Heartbeat(Heartbeat { seq })),
                };
                write_frame(&mut a, &f).await.unwrap();
            }
        });
        let mut r = FrameReader::new(b, 1024);
        for seq in 0..100 {
            let f: ControlFrame = r.next().await.unwrap().unwrap();
            assert_eq!(f.kind, Some(Kind::Heartbeat(Heartbeat { seq })));
        }
        writer.await.unwrap();
        assert!(r.next::<ControlFrame>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn truncated_stream_is_an_error() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
        drop(a);
        let mut r = FrameReader::new(b, 1024);
        assert!(matches!(
            r.next::<ControlFrame>().await,
            Err(ReadError::Decode(DecodeError::Truncated {
                have: 6,
                need: 13
            }))
        ));
    }
}
