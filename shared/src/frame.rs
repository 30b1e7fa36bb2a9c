//! Length-prefixed framing with a hard size limit.
//!
//! A frame is a big-endian `u32` length followed by that many bytes of protobuf. The length is
//! checked against [`MAX_FRAME_LEN`] before a single byte of the body is buffered, so a peer
//! cannot make us allocate more than the limit.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

/// The largest frame body either side accepts or sends (1 MiB).
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Why bytes from the peer could not be turned into a message. Every variant is the peer's
/// fault; the stream that carried it is closed, other streams go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length prefix announces more than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes received.
        have: usize,
        /// Bytes the frame needed.
        need: usize,
    },
    /// The frame body is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message is valid protobuf but lacks a field this protocol requires.
    #[error("message is missing its {0}")]
    Missing(&'static str),
    /// The stream carried more after its last expected frame.
    #[error("unexpected data after the final frame")]
    TrailingData,
}

/// Why a message could not be framed for sending (always our own bug or oversize input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded message is larger than the frame limit.
    #[error("message of {len} bytes exceeds the frame limit of {max} bytes")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Encodes `msg` as one frame appended to `out`.
pub fn encode<M: Message>(msg: &M, out: &mut BytesMut) -> Result<(), EncodeError> {
    let len = msg.encoded_len();
    if len > MAX_FRAME_LEN {
        return Err(EncodeError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    out.reserve(HEADER_LEN + len);
    // The limit above is far below u32::MAX, so the cast cannot truncate.
    out.put_u32(len as u32);
    msg.encode_raw(out);
    Ok(())
}

/// Decodes one message from a complete frame body.
pub fn decode_body<M: Message + Default>(body: &[u8]) -> Result<M, DecodeError> {
    M::decode(body).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Accumulates bytes from a stream and splits them into frame bodies.
///
/// Feed it with [`FrameDecoder::extend`], take frames with [`FrameDecoder::next_frame`], and
/// call [`FrameDecoder::finish`] at end of stream to tell a clean end from a truncated frame.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max` bytes (at most [`MAX_FRAME_LEN`]).
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max: max.min(MAX_FRAME_LEN),
        }
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes still missing before the next frame is complete, or the error the announced
    /// length already earns. Lets a reader fetch exactly what the frame needs.
    pub fn wanted(&self) -> Result<usize, DecodeError> {
        let Some(len) = self.peek_len() else {
            return Ok(HEADER_LEN - self.buf.len());
        };
        if len > self.max {
            return Err(DecodeError::FrameTooLarge { len, max: self.max });
        }
        Ok((HEADER_LEN + len).saturating_sub(self.buf.len()))
    }

    fn peek_len(&self) -> Option<usize> {
        let header: [u8; HEADER_LEN] = self.buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(u32::from_be_bytes(header) as usize)
    }

    /// The next complete frame body, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, DecodeError> {
        let Some(len) = self.peek_len() else {
            return Ok(None);
        };
        if len > self.max {
            return Err(DecodeError::FrameTooLarge { len, max: self.max });
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Checks that the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let need = match self.peek_len() {
            Some(len) => HEADER_LEN + len,
            None => HEADER_LEN,
        };
        Err(DecodeError::Truncated {
            have: self.buf.len(),
            need,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ControlFrame, Heartbeat, control_frame::Kind};
    use proptest::prelude::*;

    fn encode_to_bytes<M: Message>(msg: &M) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::new();
        encode(msg, &mut out)?;
        Ok(out.freeze())
    }

    fn heartbeat(seq: u64) -> ControlFrame {
        ControlFrame {
            kind: Some(Kind::Heartbeat(Heartbeat { seq })),
        }
    }

    #[test]
    fn round_trips_across_arbitrary_splits() {
        let mut bytes = BytesMut::new();
        for seq in 0..10 {
            encode(&heartbeat(seq), &mut bytes).unwrap();
        }
        for split in 1..bytes.len() {
            let mut dec = FrameDecoder::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(split) {
                dec.extend(chunk);
                while let Some(body) = dec.next_frame().unwrap() {
                    got.push(decode_body::<ControlFrame>(&body).unwrap());
                }
            }
            dec.finish().unwrap();
            assert_eq!(got, (0..10).map(heartbeat).collect::<Vec<_>>());
        }
    }

    #[test]
    fn refuses_oversize_length_before_buffering_the_body() {
        let mut dec = FrameDecoder::default();
        dec.extend(&((MAX_FRAME_LEN as u32) + 1).to_be_bytes());
        assert_eq!(
            dec.next_frame(),
            Err(DecodeError::FrameTooLarge {
                len: MAX_FRAME_LEN + 1,
                max: MAX_FRAME_LEN
            })
        );
        assert!(dec.wanted().is_err());
    }

    #[test]
    fn truncated_frame_is_reported_at_end_of_stream() {
        let frame = encode_to_bytes(&heartbeat(7)).unwrap();
        let mut dec = FrameDecoder::default();
        dec.extend(&frame[..frame.len() - 1]);
        assert_eq!(dec.next_frame(), Ok(None));
        assert!(matches!(dec.finish(), Err(DecodeError::Truncated { .. })));
        let mut dec = FrameDecoder::default();
        dec.extend(&[0, 0]);
        assert_eq!(
            dec.finish(),
            Err(DecodeError::Truncated { have: 2, need: 4 })
        );
    }

    #[test]
    fn refuses_to_encode_oversize_messages() {
        let msg = crate::wire::RenewRequest {
            request_id: 1,
            csr_der: vec![0; MAX_FRAME_LEN],
        };
        assert!(matches!(
            encode_to_bytes(&msg),
            Err(EncodeError::TooLarge { .. })
        ));
    }

    proptest! {
        /// Arbitrary bytes never panic the decoder, whatever the chunking.
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096), split in 1usize..64) {
            let mut dec = FrameDecoder::new(1024);
            for chunk in data.chunks(split) {
                dec.extend(chunk);
                while let Ok(Some(body)) = dec.next_frame() {
                    let _ = decode_body::<ControlFrame>(&body);
                    let _ = decode_body::<crate::wire::CallFrame>(&body);
                }
            }
            let _ = dec.finish();
        }

        #[test]
        fn heartbeats_round_trip(seq in any::<u64>()) {
            let frame = encode_to_bytes(&heartbeat(seq)).unwrap();
            let mut dec = FrameDecoder::default();
            dec.extend(&frame);
            let body = dec.next_frame().unwrap().unwrap();
            prop_assert_eq!(decode_body::<ControlFrame>(&body).unwrap(), heartbeat(seq));
        }
    }
}
