//! The runtime's end of the tunnel, over QUIC or SSH over TCP ([`shared::link`]).
//!
//! - [`endpoint`]: the QUIC endpoint's keys that survive a restart (stateless reset).
//! - [`listener`]: the QUIC endpoint; authenticates each connection (client certificate,
//!   identity, revocation) before anything else happens on it.
//! - [`ssh_listener`]: the SSH-over-TCP endpoint, for networks without UDP; the same
//!   admission, from the key that signed the SSH authentication.
//! - [`session`]: one connection's life: the control stream (hello, heartbeats, renewal,
//!   drain), certificate expiry, cleanup.
//! - [`registry`]: which connectors are online, per tenant; picks one for a call, or hands
//!   it to another replica's tunnel ([`registry::Remote`]).
//! - [`call`]: one tool call on its own bidirectional stream.
//! - [`revocation`]: drops live tunnels of connectors revoked in the store.
//! - [`refusal`]: closing a refused tunnel, and the trace a superseded certificate leaves.
//! - [`handshake_rate`]: how many new tunnels per second; beyond it, "busy, retry after".
//! - [`lineage`]: which of a connector's certificates may connect and renew (a renewed-away
//!   one may not).

pub mod call;
pub mod endpoint;
pub mod handshake_rate;
pub mod lineage;
pub mod listener;
pub mod refusal;
pub mod registry;
pub mod revocation;
pub mod session;
pub mod ssh_listener;

use std::time::Duration;

use certs::CertificateAuthority;
use shared::identity::TrustDomain;

use crate::audit::AuditLog;
use crate::store::Store;
pub use registry::Registry;

/// Everything a tunnel session needs, shared by all sessions.
#[derive(Debug)]
pub struct TunnelContext {
    /// The store (connector state, status).
    pub store: Store,
    /// The CA, for renewals.
    pub ca: CertificateAuthority,
    /// Our trust domain; certificates naming another are refused.
    pub trust_domain: TrustDomain,
    /// Lifetime of renewed certificates.
    pub cert_ttl: Duration,
    /// Heartbeat interval imposed on connectors.
    pub heartbeat_interval: Duration,
    /// Online connectors.
    pub registry: std::sync::Arc<Registry>,
    /// Where refused certificates are recorded.
    pub audit: AuditLog,
    /// How many new tunnels are admitted per second.
    pub handshakes: handshake_rate::HandshakeRate,
    /// This replica, named beside the tunnels it holds.
    pub replica: crate::replica::ReplicaId,
}
