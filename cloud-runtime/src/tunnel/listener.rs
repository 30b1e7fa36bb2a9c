//! The QUIC endpoint, and the admission of each new tunnel (QUIC or SSH).
//!
//! rustls has already verified the client certificate's chain to the runtime CA, its validity
//! period and its client-auth usage during the handshake. Here the identity inside it is
//! checked against our trust domain and the store: an unknown or revoked connector, or a
//! certificate superseded by a renewal ([`super::lineage`]), is closed before it can open a
//! stream.

use std::sync::Arc;
use std::time::Duration;

use certs::inspect::CertInfo;
use rustls_pki_types::CertificateDer;
use shared::close::CloseCode;
use shared::identity::ConnectorIdentity;
use shared::link::Link;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::lineage::{self, Admission};
use super::refusal::{close, refuse_superseded};
use super::{TunnelContext, session};
use crate::store::certificates::Lineage;

/// Time allowed for the QUIC + TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts tunnels until `shutdown`; each runs in `tracker`.
pub async fn accept_loop(
    endpoint: quinn::Endpoint,
    ctx: Arc<TunnelContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => break },
            _ = shutdown.cancelled() => break,
        };
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let peer = incoming.remote_address();
            let connecting = match incoming.accept() {
                Ok(c) => c,
                Err(e) => {
                    debug!(%peer, error = %e, "refused incoming tunnel");
                    return;
                }
            };
            let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    info!(%peer, error = %e, "tunnel handshake failed");
                    return;
                }
                Err(_) => {
                    info!(%peer, "tunnel handshake timed out");
                    return;
                }
            };
            let link = Link::Quic(conn);
            let Some(cert) = client_certificate(&link) else {
                return;
            };
            let Some((identity, cert)) = admit(&link, &ctx, cert).await else {
                return;
            };
            session::run(link, identity, cert, ctx, shutdown).await;
        });
    }
}

/// The client certificate rustls verified, or `None` (and the tunnel closed).
fn client_certificate(link: &Link) -> Option<CertInfo> {
    let Link::Quic(conn) = link else {
        return None;
    };
    let chain = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok());
    let cert = chain
        .as_ref()
        .and_then(|c| c.first())
        .and_then(|der| CertInfo::from_der(der).ok());
    if cert.is_none() {
        warn!(peer = %link.remote_address(), "tunnel without a readable client certificate");
        close(link, CloseCode::UnknownConnector, "no client certificate");
    }
    cert
}

/// Checks the identity of a verified certificate (the one rustls verified for QUIC, or the
/// one whose key signed the SSH authentication) against the store: trust domain, known
/// connector of that tenant, not revoked, not superseded. `None` and the tunnel closed with
/// the reason otherwise.
pub async fn admit(
    conn: &Link,
    ctx: &TunnelContext,
    cert: CertInfo,
) -> Option<(ConnectorIdentity, CertInfo)> {
    let peer = conn.remote_address();
    if let Some(delay) = ctx.handshakes.check() {
        debug!(%peer, retry_in_ms = delay.as_millis() as u64, "tunnel refused: handshake rate reached");
        close(conn, CloseCode::Busy, &shared::close::busy_reason(delay));
        return None;
    }
    debug!(%peer, "tunnel admitted by the handshake rate");
    let Some(identity) = cert
        .identity
        .clone()
        .filter(|id| id.trust_domain == ctx.trust_domain)
    else {
        warn!(%peer, "client certificate carries no connector identity of this trust domain");
        close(
            conn,
            CloseCode::UnknownConnector,
            "certificate names no connector of this runtime",
        );
        return None;
    };
    let row = match ctx.store.connector(&identity.connector).await {
        Ok(row) => row,
        Err(e) => {
            warn!(%peer, error = %e, "store lookup failed; refusing tunnel");
            close(conn, CloseCode::GoingAway, "runtime store unavailable");
            return None;
        }
    };
    match row {
        None => {
            warn!(%peer, connector = %identity.connector, "unknown connector");
            close(conn, CloseCode::UnknownConnector, "unknown connector");
            None
        }
        Some(row) if row.tenant != identity.tenant.as_str() => {
            warn!(%peer, connector = %identity.connector, claimed = %identity.tenant, actual = %row.tenant, "certificate names the wrong tenant");
            close(conn, CloseCode::UnknownConnector, "unknown connector");
            None
        }
        Some(row) if row.revoked_at.is_some() => {
            warn!(%peer, connector = %identity.connector, "revoked connector refused");
            close(conn, CloseCode::Revoked, "connector revoked");
            None
        }
        Some(row) => admit_certificate(conn, ctx, &row.lineage(), identity, cert).await,
    }
}

/// Applies the certificate rules of [`lineage`]: the current certificate (or, until the
/// renewed one is used, the one it replaced) proceeds; a superseded one is refused, counted
/// for `connector list` and audited.
async fn admit_certificate(
    conn: &Link,
    ctx: &TunnelContext,
    lineage: &Lineage,
    identity: ConnectorIdentity,
    cert: CertInfo,
) -> Option<(ConnectorIdentity, CertInfo)> {
    let peer = conn.remote_address();
    match lineage::admit(lineage, &cert.serial_hex) {
        Admission::Current | Admission::Previous => Some((identity, cert)),
        Admission::FirstUse => {
            if let Err(e) = ctx
                .store
                .confirm_certificate(&identity.connector, &cert.serial_hex)
                .await
            {
                warn!(%peer, error = %e, "could not record the certificate's first use; refusing tunnel");
                close(conn, CloseCode::GoingAway, "runtime store unavailable");
                return None;
            }
            info!(connector = %identity.connector, serial = %cert.serial_hex, "certificate first used; the one it renewed is superseded");
            Some((identity, cert))
        }
        Admission::Superseded => {
            refuse_superseded(conn, ctx, &identity, &cert.serial_hex).await;
            None
        }
    }
}
