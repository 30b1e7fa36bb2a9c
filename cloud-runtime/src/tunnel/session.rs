//! One tunnel's life on the runtime: drive the control stream, register the connector,
//! answer renewals, enforce certificate expiry, clean up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use certs::inspect::CertInfo;
use shared::close::CloseCode;
use shared::control::{Control, Event, RuntimeSettings};
use shared::frame::MAX_FRAME_LEN;
use shared::identity::ConnectorIdentity;
use shared::io::{FrameReader, write_frame};
use shared::wire::{ControlFrame, RejectReason};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::TunnelContext;
use super::registry::ConnectorHandle;
use crate::store::now_ms;

/// How long connectors get to spread their reconnects after a go-away.
pub const GO_AWAY_WINDOW: Duration = Duration::from_secs(5);

/// How often a heartbeat refreshes `last_seen` in the store.
const TOUCH_INTERVAL: Duration = Duration::from_secs(5);

/// Runs an authenticated tunnel until it ends.
pub async fn run(
    conn: quinn::Connection,
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
        conn.close(quinn::VarInt::from_u32(code.code()), reason.as_bytes());
    }
    info!(tenant = %identity.tenant, connector = %identity.connector, session = %session_id, "tunnel closed");
}

/// The control loop. Returns the close code to send, or `None` when the connection is
/// already closed.
async fn drive(
    conn: &quinn::Connection,
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

    loop {
        while let Some(ev) = ctl.poll_event() {
            match ev {
                Event::Accepted(hello) => {
                    let h = Arc::new(ConnectorHandle::new(
                        identity.clone(),
                        session_id.to_owned(),
                        hello.build_version.clone(),
                        hello.tools,
                        hello.local_policy.clone(),
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
                            "quic",
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
                    info!(tenant = %identity.tenant, connector = %identity.connector, version = %hello.build_version,
                          protocol = hello.version, remote = %conn.remote_address(), "tunnel up");
                }
                Event::Rejected { reason, message } => {
                    warn!(connector = %identity.connector, ?reason, %message, "hello refused");
                    flush(&mut ctl, &mut send).await;
                    let _ = send.finish();
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
                    let result = renew(ctx, identity, &csr_der).await;
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
                        let _ = ctx.store.touch(&identity.connector, session_id).await;
                    }
                }
                Ok(None) => return Some((CloseCode::Normal, "control stream closed")),
                Err(e) => {
                    warn!(connector = %identity.connector, error = %e, "bad control stream");
                    return Some((CloseCode::ProtocolError, "malformed control frame"));
                }
            },
            _ = tokio::time::sleep_until(deadline.into()) => ctl.handle_timeout(Instant::now()),
            _ = &mut expiry => {
                info!(connector = %identity.connector, "client certificate expired; closing tunnel");
                return Some((CloseCode::CertificateExpired, "certificate expired"));
            }
            _ = shutdown.cancelled(), if !going_away => {
                going_away = true;
                ctl.drain("runtime shutting down", GO_AWAY_WINDOW);
            }
            _ = conn.closed() => return None,
        }
    }
}

/// Writes queued control frames; false if the stream is gone.
async fn flush(ctl: &mut Control, send: &mut quinn::SendStream) -> bool {
    while let Some(f) = ctl.poll_transmit() {
        if write_frame(send, &f).await.is_err() {
            return false;
        }
    }
    true
}

/// Signs a renewal CSR for the tunnel's own identity (never another).
async fn renew(
    ctx: &TunnelContext,
    identity: &ConnectorIdentity,
    csr_der: &[u8],
) -> Result<String, String> {
    let issued = ctx
        .ca
        .sign_connector(csr_der, identity, ctx.cert_ttl)
        .map_err(|e| e.to_string())?;
    let not_after = issued.not_after.unix_timestamp().saturating_mul(1000);
    ctx.store
        .record_renewal(&identity.connector, &issued.serial_hex, not_after)
        .await
        .map_err(|e| {
            warn!(error = %e, "could not record renewal");
            "runtime could not record the renewal".to_owned()
        })?;
    info!(connector = %identity.connector, serial = %issued.serial_hex, "certificate renewed");
    Ok(issued.chain_pem)
}
