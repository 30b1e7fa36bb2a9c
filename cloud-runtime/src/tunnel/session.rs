//! One tunnel's life on the runtime: drive the control stream, register the connector,
//! answer renewals (once per certificate, see [`super::lineage`]), enforce certificate
//! expiry, give way to a newer tunnel of the same connector, clean up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use certs::inspect::CertInfo;
use shared::clock::now_ms;
use shared::close::CloseCode;
use shared::control::{Control, Event, RuntimeSettings};
use shared::frame::MAX_FRAME_LEN;
use shared::identity::ConnectorIdentity;
use shared::io::{FrameReader, write_frame};
use shared::link::{Link, SendStream};
use shared::wire::{ControlFrame, RejectReason};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::TunnelContext;
use super::lineage::{self, RenewalRefusal, Validity};
use super::refusal::refuse_superseded;
use super::registry::{ConnectorHandle, OVERLAP};
use crate::audit::CertificateRefusal;

/// How long connectors get to spread their reconnects after a go-away.
pub const GO_AWAY_WINDOW: Duration = Duration::from_secs(5);

/// How often a heartbeat refreshes `last_seen` in the store.
const TOUCH_INTERVAL: Duration = Duration::from_secs(5);

/// Runs an authenticated tunnel until it ends.
pub async fn run(
    conn: Link,
    identity: ConnectorIdentity,
    cert: CertInfo,
    ctx: Arc<TunnelContext>,
    shutdown: CancellationToken,
) {
    let session_id = hex::encode(rand::random::<[u8; 8]>());
    let mut handle: Option<Arc<ConnectorHandle>> = None;
    let code = drive(
        &conn,
        &identity,
        &cert,
        &ctx,
        &shutdown,
        &session_id,
        &mut handle,
    )
    .await;
    if let Some(h) = &handle {
        ctx.registry.remove(h);
        if let Err(e) = ctx
            .store
            .mark_offline(&identity.connector, &session_id)
            .await
        {
            warn!(error = %e, "could not record the connector offline");
        }
    }
    if let Some((code, reason)) = code {
        conn.close(code, reason);
    }
    info!(tenant = %identity.tenant, connector = %identity.connector, session = %session_id, "tunnel closed");
}

/// The control loop. Returns the close code to send, or `None` when the connection is
/// already closed.
async fn drive(
    conn: &Link,
    identity: &ConnectorIdentity,
    cert: &CertInfo,
    ctx: &TunnelContext,
    shutdown: &CancellationToken,
    session_id: &str,
    handle: &mut Option<Arc<ConnectorHandle>>,
) -> Option<(CloseCode, &'static str)> {
    let accepted = tokio::time::timeout(shared::control::HELLO_TIMEOUT, conn.accept_bi()).await;
    let (mut send, recv) = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return None,
        Err(_) => return Some((CloseCode::ProtocolError, "no control stream")),
    };
    let mut reader = FrameReader::new(recv, MAX_FRAME_LEN);
    let mut ctl = Control::runtime(
        RuntimeSettings {
            expected_connector_id: identity.connector.to_string(),
            versions: shared::version::SUPPORTED,
            heartbeat_interval: ctx.heartbeat_interval,
            unix_time_ms: u64::try_from(now_ms()).unwrap_or(0),
            replica: ctx.replica.as_str().to_owned(),
        },
        Instant::now(),
    );
    // The tunnel lives no longer than the certificate that opened it; by then the connector
    // has renewed and reconnected with the new one.
    let remaining = (cert.not_after - time::OffsetDateTime::now_utc())
        .try_into()
        .unwrap_or(Duration::ZERO);
    let expiry = tokio::time::sleep(remaining);
    tokio::pin!(expiry);
    let mut last_touch = Instant::now();
    let mut going_away = false;
    let mut retire_at: Option<Instant> = None;

    loop {
        while let Some(ev) = ctl.poll_event() {
            match ev {
                Event::Accepted(hello) => {
                    // The renewed certificate may have been used since this handshake; then
                    // this tunnel must not take over from the one that used it.
                    if !still_admitted(conn, ctx, identity, cert).await {
                        return None;
                    }
                    let h = Arc::new(ConnectorHandle::new(
                        identity.clone(),
                        session_id.to_owned(),
                        hello.slot,
                        conn.via().as_str(),
                        cert.serial_hex.clone(),
                        hello.build_version.clone(),
                        hello.tools,
                        hello.local_policy.clone(),
                        super::call::Ack::of(&hello.capabilities),
                        conn.clone(),
                    ));
                    ctx.registry.insert(h.clone());
                    *handle = Some(h);
                    if let Err(e) = ctx
                        .store
                        .mark_online(
                            &identity.connector,
                            session_id,
                            &hello.build_version,
                            conn.via().as_str(),
                            &ctx.replica,
                        )
                        .await
                    {
                        warn!(error = %e, "could not record the connector online");
                    }
                    let rules: Vec<serde_json::Value> = hello
                        .local_policy
                        .0
                        .iter()
                        .map(|r| {
                            let w = r.to_wire();
                            serde_json::json!({"tools": w.tools, "repos": w.repos, "instance": w.instance})
                        })
                        .collect();
                    if let Err(e) = ctx
                        .store
                        .record_local_policy(
                            &identity.connector,
                            &serde_json::Value::from(rules).to_string(),
                        )
                        .await
                    {
                        warn!(error = %e, "could not record the connector's local policy");
                    }
                    // Kept to check the receipts this connector signs.
                    if crate::audit::receipts::is_audit_key(&hello.audit_key)
                        && let Err(e) = ctx
                            .store
                            .record_audit_key(identity.connector.as_str(), &hello.audit_key)
                            .await
                    {
                        warn!(error = %e, "could not record the connector's audit key");
                    }
                    info!(tenant = %identity.tenant, connector = %identity.connector, version = %hello.build_version,
                          protocol = hello.version, slot = hello.slot, remote = %conn.remote_address(), audit_key = %hello.audit_key, "tunnel up");
                }
                Event::Rejected { reason, message } => {
                    warn!(connector = %identity.connector, ?reason, %message, "hello refused");
                    flush(&mut ctl, &mut send).await;
                    send.finish();
                    // Give the reject frame a moment to reach the connector before the close.
                    let _ = tokio::time::timeout(Duration::from_millis(500), send.stopped()).await;
                    return Some(match reason {
                        RejectReason::UpgradeRequired => {
                            (CloseCode::UpgradeRequired, "upgrade required")
                        }
                        RejectReason::IdentityMismatch => {
                            (CloseCode::IdentityMismatch, "identity mismatch")
                        }
                        _ => (CloseCode::ProtocolError, "hello refused"),
                    });
                }
                Event::PeerDraining => {
                    info!(connector = %identity.connector, "connector draining");
                    if let Some(h) = handle {
                        h.set_draining();
                    }
                }
                Event::RenewalRequested {
                    request_id,
                    csr_der,
                } => {
                    let result = renew(conn, ctx, identity, cert, &csr_der).await;
                    ctl.answer_renewal(request_id, result);
                }
                Event::PeerLost(lost) => {
                    warn!(connector = %identity.connector, ?lost, "connector lost");
                    return Some((CloseCode::ProtocolError, "peer lost"));
                }
                Event::Established { .. }
                | Event::GoAway { .. }
                | Event::RenewalAnswered { .. } => {}
            }
        }
        if !flush(&mut ctl, &mut send).await {
            return None;
        }
        let deadline = ctl
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
        tokio::select! {
            frame = reader.next::<ControlFrame>() => match frame {
                Ok(Some(f)) => {
                    if let Err(e) = ctl.handle_frame(f, Instant::now()) {
                        warn!(connector = %identity.connector, error = %e, "control protocol violation");
                        return Some((CloseCode::ProtocolError, "control protocol violation"));
                    }
                    if handle.is_some() && last_touch.elapsed() >= TOUCH_INTERVAL {
                        last_touch = Instant::now();
                        let _ = ctx
                            .store
                            .touch(&identity.connector, session_id, conn.via().as_str(), &ctx.replica)
                            .await;
                    }
                }
                Ok(None) => return Some((CloseCode::Normal, "control stream closed")),
                Err(e) => {
                    warn!(connector = %identity.connector, error = %e, "bad control stream");
                    return Some((CloseCode::ProtocolError, "malformed control frame"));
                }
            },
            _ = tokio::time::sleep_until(deadline.into()) => ctl.handle_timeout(Instant::now()),
            _ = retired(handle.as_deref()), if retire_at.is_none() => {
                info!(connector = %identity.connector, overlap_ms = OVERLAP.as_millis() as u64, "replaced by a newer tunnel; closing after the overlap");
                retire_at = Some(Instant::now() + OVERLAP);
            }
            _ = sleep_until_opt(retire_at) => {
                return Some((CloseCode::Normal, "replaced by a newer tunnel"));
            }
            _ = &mut expiry => {
                info!(connector = %identity.connector, "client certificate expired; closing tunnel");
                return Some((CloseCode::CertificateExpired, "certificate expired"));
            }
            _ = shutdown.cancelled(), if !going_away => {
                going_away = true;
                // New calls go to the connector's tunnel at another replica, if it has one.
                if let Some(h) = handle.as_deref() {
                    h.set_draining();
                }
                ctl.drain("runtime shutting down", GO_AWAY_WINDOW);
            }
            _ = conn.closed() => return None,
        }
    }
}

/// Writes queued control frames; false if the stream is gone.
async fn flush(ctl: &mut Control, send: &mut SendStream) -> bool {
    while let Some(f) = ctl.poll_transmit() {
        if write_frame(send, &f).await.is_err() {
            return false;
        }
    }
    true
}

/// Resolves when a newer tunnel of the connector has replaced this one.
async fn retired(handle: Option<&ConnectorHandle>) {
    match handle {
        Some(h) => h.retired().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Whether the tunnel's certificate still passes the handshake rules; if not, the tunnel
/// is refused as at the handshake.
async fn still_admitted(
    conn: &Link,
    ctx: &TunnelContext,
    identity: &ConnectorIdentity,
    cert: &CertInfo,
) -> bool {
    match ctx.store.connector(&identity.connector).await {
        Ok(Some(row)) => {
            if lineage::admit(&row.lineage(), &cert.serial_hex).admitted() {
                return true;
            }
            refuse_superseded(conn, ctx, identity, &cert.serial_hex).await;
            false
        }
        // Revoked or removed meanwhile: the revocation watcher closes it; unreadable
        // store: keep what the handshake decided.
        Ok(None) | Err(_) => true,
    }
}

/// Signs a renewal CSR for the tunnel's own identity (never another), if the tunnel's
/// certificate may renew ([`lineage::may_renew`]): once, and not too early.
async fn renew(
    conn: &Link,
    ctx: &TunnelContext,
    identity: &ConnectorIdentity,
    cert: &CertInfo,
    csr_der: &[u8],
) -> Result<String, String> {
    let row = ctx
        .store
        .connector(&identity.connector)
        .await
        .map_err(|e| {
            warn!(error = %e, "could not read the connector for a renewal");
            "runtime could not check the renewal".to_owned()
        })?
        .ok_or_else(|| "unknown connector".to_owned())?;
    let validity = Validity {
        not_before: cert.not_before,
        not_after: cert.not_after,
    };
    let now = time::OffsetDateTime::now_utc();
    if let Err(refusal) = lineage::may_renew(&row.lineage(), &cert.serial_hex, validity, now) {
        return Err(refuse_renewal(conn, ctx, identity, cert, refusal).await);
    }
    let issued = ctx
        .ca
        .sign_connector(csr_der, identity, ctx.cert_ttl)
        .map_err(|e| e.to_string())?;
    let not_after = issued.not_after.unix_timestamp().saturating_mul(1000);
    let recorded = ctx
        .store
        .renew_certificate(
            &identity.connector,
            &cert.serial_hex,
            &issued.serial_hex,
            not_after,
        )
        .await
        .map_err(|e| {
            warn!(error = %e, "could not record renewal");
            "runtime could not record the renewal".to_owned()
        })?;
    if !recorded {
        // Another tunnel renewed this certificate first (or the connector was revoked):
        // the certificate just signed was never recorded, so it cannot connect.
        return Err(
            refuse_renewal(conn, ctx, identity, cert, RenewalRefusal::AlreadyRenewed).await,
        );
    }
    if let Err(e) = ctx
        .store
        .record_certificate(&identity.connector, &issued.serial_hex, &issued.cert_der)
        .await
    {
        // The tunnel over QUIC still works; SSH waits for the next renewal.
        warn!(error = %e, "could not keep the renewed certificate for SSH authentication");
    }
    info!(connector = %identity.connector, serial = %issued.serial_hex, "certificate renewed");
    Ok(issued.chain_pem)
}

/// Logs a refused renewal and, for an already-renewed certificate, audits it; returns the
/// message for the connector.
async fn refuse_renewal(
    conn: &Link,
    ctx: &TunnelContext,
    identity: &ConnectorIdentity,
    cert: &CertInfo,
    refusal: RenewalRefusal,
) -> String {
    let peer = conn.remote_address();
    warn!(%peer, connector = %identity.connector, serial = %cert.serial_hex, reason = %refusal, "renewal refused");
    if refusal == RenewalRefusal::AlreadyRenewed {
        ctx.audit
            .submit(
                CertificateRefusal {
                    tenant: identity.tenant.as_str(),
                    connector: identity.connector.as_str(),
                    action: "tunnel.renewal",
                    serial: &cert.serial_hex,
                    reason: format!("certificate already renewed, renewal asked again from {peer}"),
                }
                .record(),
            )
            .await;
    }
    refusal.to_string()
}
