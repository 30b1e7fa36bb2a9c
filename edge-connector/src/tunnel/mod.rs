//! The connector's end of the tunnel: it dials out and nothing ever dials in.
//!
//! - [`dial`]: QUIC over a `connect()`ed UDP socket, mutual TLS with the enrolled identity.
//! - [`ssh_dial`]: SSH over TCP where UDP is blocked: the runtime's pinned host key, our
//!   enrolled key; the same frames on SSH channels ([`shared::link`]).
//! - [`session`]: one connection: hello, heartbeats, renewal, drain.
//! - [`calls`]: serving the runtime's call streams.
//! - [`slots`]: one tunnel per runtime replica the connector is configured with, or one.
//! - [`supervisor`]: per slot, picks the transport, reconnects, replaces the tunnel after renewal or
//!   when QUIC works again, stops when told.

pub mod calls;
pub mod dial;
pub mod session;
pub mod slots;
pub mod ssh_dial;
pub mod supervisor;
