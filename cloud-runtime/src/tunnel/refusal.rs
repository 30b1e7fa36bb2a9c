//! Closing a tunnel that is refused, at the handshake or later: the close code the connector
//! reads, and the trace a superseded certificate leaves (store counter, audit record).
//!
//! Both the listener (at the handshake) and a live session (when a renewal supersedes its
//! certificate) refuse tunnels; this module is what they share, so neither imports the other.

use shared::close::CloseCode;
use shared::identity::ConnectorIdentity;
use shared::link::Link;
use tracing::warn;

use super::TunnelContext;
use crate::audit::CertificateRefusal;
use crate::store::KEY_COPY_WARNING;

/// Closes `conn` with `code`, telling the connector `reason`.
pub fn close(conn: &Link, code: CloseCode, reason: &str) {
    conn.close(code, reason);
}

/// Refuses a tunnel presenting a superseded certificate, and leaves a trace of it.
pub async fn refuse_superseded(
    conn: &Link,
    ctx: &TunnelContext,
    identity: &ConnectorIdentity,
    serial: &str,
) {
    let peer = conn.remote_address();
    warn!(%peer, tenant = %identity.tenant, connector = %identity.connector, serial,
          "superseded certificate refused: possible key copy");
    close(
        conn,
        CloseCode::Superseded,
        "certificate superseded by a renewal",
    );
    if let Err(e) = ctx
        .store
        .record_superseded(&identity.connector, serial)
        .await
    {
        warn!(error = %e, "could not record the superseded certificate");
    }
    ctx.audit
        .submit(
            CertificateRefusal {
                tenant: identity.tenant.as_str(),
                connector: identity.connector.as_str(),
                action: "tunnel.handshake",
                serial,
                reason: format!(
                    "{KEY_COPY_WARNING}: certificate superseded by a renewal the connector has used, presented from {peer}"
                ),
            }
            .record(),
        )
        .await;
}
