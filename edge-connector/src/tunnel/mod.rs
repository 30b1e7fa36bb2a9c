//! The connector's end of the tunnel: it dials out and nothing ever dials in.
//!
//! - [`dial`]: QUIC over a `connect()`ed UDP socket, mutual TLS with the enrolled identity.
//! - [`session`]: one connection: hello, heartbeats, renewal, drain.
//! - [`calls`]: serving the runtime's call streams.
//! - [`proxy`]: HTTP CONNECT through the corporate egress proxy, for the TCP transport.
//! - [`supervisor`]: reconnects, replaces the tunnel after renewal, stops when told.

pub mod calls;
pub mod dial;
pub mod proxy;
pub mod session;
pub mod supervisor;
