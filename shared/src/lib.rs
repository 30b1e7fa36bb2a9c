//! The wire protocol between the cloud runtime and the edge connector.
//!
//! The connector dials out to the runtime; on that one connection (QUIC today, SSH over TCP
//! as a fallback) it opens a single **control stream**, and the runtime opens one
//! **bidirectional stream per tool call**. Both kinds of stream carry the same framing:
//!
//! ```text
//! +----------------+-----------------------------+
//! | length: u32 BE | protobuf message (length B) |   length <= MAX_FRAME_LEN
//! +----------------+-----------------------------+
//! ```
//!
//! Messages are protobuf ([`wire`]) so that a newer peer can add fields without breaking an
//! older one; anything that changes meaning bumps [`version::PROTOCOL_VERSION`], which the two
//! sides negotiate in the hello exchange.
//!
//! This crate does no I/O of its own (except the optional `io` feature's thin async adapters
//! and the `fs` feature's file helpers):
//! [`frame`] turns bytes into frames, [`control::Control`] is a sans-IO state machine that
//! takes frames and the current time and gives back frames to send, events and deadlines.
//! That keeps the protocol testable with byte vectors and a fake clock, and lets every
//! transport share it.
//!
//! Module map:
//! - [`frame`]: length-prefixed framing with a hard size limit.
//! - [`wire`]: the protobuf messages.
//! - [`version`]: protocol versions and negotiation.
//! - [`control`]: the control-stream state machine (hello, heartbeats, drain, renewal).
//! - [`enroll`]: the JSON enrollment exchange that precedes the tunnel.
//! - [`call`]: validated call requests and typed call errors.
//! - [`clock`]: the wall clock, injectable (the system's, or a manual one for tests).
//! - [`close`]: why a tunnel connection was closed.
//! - [`identity`]: tenant and connector identifiers and the SPIFFE identity in certificates.
//! - [`policy`]: tool and repository patterns and allow-rules, shared by both sides' policies.
//! - [`fs`] (feature `fs`): symlink-safe state files and the one atomic-write helper.
//! - [`io`] (feature `io`): read and write frames on async streams.
//! - [`trace`] (feature `otel`): OpenTelemetry spans that join across the tunnel.

#![forbid(unsafe_code)]

pub mod call;
pub mod clock;
pub mod close;
pub mod control;
pub mod enroll;
pub mod frame;
#[cfg(feature = "fs")]
pub mod fs;
pub mod identity;
#[cfg(feature = "io")]
pub mod io;
#[cfg(feature = "link")]
pub mod link;
pub mod policy;
pub mod receipt;
#[cfg(feature = "otel")]
pub mod trace;
pub mod version;
pub mod wire;

/// The ALPN protocol id of the tunnel; a TLS peer offering anything else is refused.
pub const ALPN: &[u8] = b"mcp-edge-tunnel";
