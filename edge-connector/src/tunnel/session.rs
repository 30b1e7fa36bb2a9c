//! One tunnel's life on the connector: hello, heartbeats, certificate renewal, serving calls,
//! and an orderly drain.
//!
//! The session reports to its supervisor through [`SessionEvent`]s. After a renewal it keeps
//! serving until the supervisor has a tunnel up with the new certificate and cancels
//! `replaced`; only then does it drain (make before break), so calls never find the
//! connector absent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use certs::csr::ConnectorKey;
use certs::inspect::CertInfo;
use shared::close::CloseCode;
use shared::control::{Control, Event};
use shared::frame::MAX_FRAME_LEN;
use shared::io::{FrameReader, write_frame};
use shared::link::LinkError;
use shared::wire::{self, ControlFrame, RejectReason};
use tokio::sync::{OwnedMutexGuard, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use shared::policy::AllowRule;
use shared::trace::Tracing;

use super::calls;
use super::slots::Slot;
use crate::local_policy::Enforced;
use crate::state::{Identity, StateDir};
use crate::toolset::ToolSet;

/// What a session tells its supervisor.
#[derive(Debug)]
pub enum SessionEvent {
    /// The runtime accepted our hello.
    Established,
    /// A renewed certificate is on disk; dial a new tunnel with it.
    Renewed,
    /// The session is over.
    Ended(SessionEnd),
}

/// How a session ended.
#[derive(Debug, Clone)]
pub enum SessionEnd {
    /// Drained on request (shutdown or replaced).
    Drained,
    /// The runtime is going away; reconnect within this window.
    GoAway(Duration),
    /// The runtime takes no new tunnels right now; try again after this delay.
    Busy(Duration),
    /// The tunnel was lost; reconnect with backoff.
    Lost(String),
    /// The runtime refuses us for good (revoked, upgrade required, unknown); a human must act.
    Fatal(String),
}

/// Reads the proxy password at dial time, so a password changed in the vault is used at
/// the next connection.
pub type ProxyPassword =
    Arc<dyn Fn() -> Result<Option<secrecy::SecretString>, String> + Send + Sync>;

/// How the connector reaches the runtime.
#[derive(Clone)]
pub struct TunnelSettings {
    /// The `[tunnel]` section: transport, proxy, proxy user.
    pub config: crate::config::TunnelConfig,
    /// Reads the egress proxy's password (the vault entry `proxy/password`) when the TCP
    /// transport dials through a proxy that asks for one.
    pub proxy_password: ProxyPassword,
}

impl TunnelSettings {
    /// `config`, with no proxy password to be had (a proxy that asks for one refuses).
    pub fn without_password(config: crate::config::TunnelConfig) -> Self {
        Self {
            config,
            proxy_password: Arc::new(|| Ok(None)),
        }
    }
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionEnd::Drained => f.write_str("drained (shutting down or replaced)"),
            SessionEnd::GoAway(_) => f.write_str("the runtime went away (restart or upgrade)"),
            SessionEnd::Busy(after) => write!(
                f,
                "the runtime is busy with other connectors' handshakes; retrying in {} ms",
                after.as_millis()
            ),
            SessionEnd::Lost(reason) => write!(f, "tunnel lost: {reason}"),
            SessionEnd::Fatal(reason) => f.write_str(reason),
        }
    }
}

/// Shared by all sessions of a connector.
pub struct SessionContext {
    /// Where the identity lives (renewals are written there).
    pub state: StateDir,
    /// Which transport to use, and how.
    pub tunnel: TunnelSettings,
    /// Our tools, behind the local policy.
    pub tools: Arc<Enforced>,
    /// The connector's own audit log around the local policy (refusals, outcomes), when
    /// it keeps one.
    pub audit: Option<Arc<crate::audit_gate::Witness>>,
    /// Spans of calls.
    pub tracing: Arc<Tracing>,
    /// How long in-flight calls get to finish on drain.
    pub drain_timeout: Duration,
    /// Where the tunnel's state is reported (status file, systemd).
    pub health: crate::health::Health,
}

/// When to renew a certificate: at two thirds of its lifetime.
pub fn renewal_due(cert: &CertInfo) -> Instant {
    let now_wall = time::OffsetDateTime::now_utc();
    let lifetime = cert.not_after - cert.not_before;
    let renew_wall = cert.not_before + lifetime * 2 / 3;
    let wait = Duration::try_from(renew_wall - now_wall).unwrap_or(Duration::ZERO);
    Instant::now() + wait
}

fn hello(ctx: &SessionContext, identity: &Identity, slot: u32) -> wire::Hello {
    wire::Hello {
        min_version: *shared::version::SUPPORTED.start(),
        max_version: *shared::version::SUPPORTED.end(),
        connector_id: identity.identity.connector.to_string(),
        build_version: env!("CARGO_PKG_VERSION").to_owned(),
        capabilities: vec![
            shared::call::CALL_ACK.into(),
            "renewal".into(),
            "drain".into(),
            "local-policy".into(),
            "authorize".into(),
        ],
        tools: ctx.tools.specs(),
        local_policy: ctx.tools.rules().0.iter().map(AllowRule::to_wire).collect(),
        audit_key: ctx
            .audit
            .as_ref()
            .map(|w| w.public_key().to_string())
            .unwrap_or_default(),
        slot,
    }
}

/// Runs a session on an established connection until it ends; the end is also sent as
/// [`SessionEvent::Ended`].
pub async fn run(
    tunnel: super::dial::Tunnel,
    identity: Identity,
    ctx: Arc<SessionContext>,
    events: mpsc::Sender<SessionEvent>,
    replaced: CancellationToken,
    shutdown: CancellationToken,
    slot: Arc<Slot>,
) {
    let conn = tunnel.link.clone();
    let mut health = ctx.health.session();
    let end = drive(
        &tunnel,
        &identity,
        &ctx,
        &slot,
        &events,
        &replaced,
        &shutdown,
        &mut health,
    )
    .await;
    health.ended(end.to_string());
    let (code, reason) = match &end {
        SessionEnd::Drained => (CloseCode::Normal, "drained"),
        _ => (CloseCode::Normal, "closing"),
    };
    conn.close(code, reason);
    tunnel.wait_idle(Duration::from_secs(1)).await;
    let _ = events.send(SessionEvent::Ended(end)).await;
}

/// The end of a session whose control stream failed: the runtime's close of the connection
/// when there is one (a busy runtime's "retry after" or a revocation often surfaces first as
/// a failed read or write on the stream), else the stream's own error.
fn stream_failed(conn: &shared::link::Link, error: impl std::fmt::Display) -> SessionEnd {
    match conn.close_reason() {
        Some(closed) => close_reason(&closed),
        None => SessionEnd::Lost(format!("control stream: {error}")),
    }
}

fn close_reason(err: &LinkError) -> SessionEnd {
    if let LinkError::Closed { code, reason } = err {
        let reason = reason.clone();
        match CloseCode::from_code(*code) {
            Some(code) if code.is_fatal() => {
                return SessionEnd::Fatal(match code {
                    CloseCode::Revoked => {
                        "the runtime revoked this connector; re-enroll it with a new join token"
                            .to_owned()
                    }
                    CloseCode::UpgradeRequired => {
                        "the runtime requires a newer protocol version; upgrade the edge-connector"
                            .to_owned()
                    }
                    CloseCode::Superseded => {
                        "the runtime refused this certificate: it was replaced by a renewal that another copy of this \
                         connector has used (a copied key or a restored backup); check where else it runs, then \
                         revoke it and re-enroll with a new join token"
                            .to_owned()
                    }
                    _ => format!("the runtime refused this connector: {reason}"),
                });
            }
            Some(CloseCode::GoingAway) => return SessionEnd::GoAway(Duration::from_secs(5)),
            Some(CloseCode::Busy) => {
                return SessionEnd::Busy(
                    shared::close::retry_after(&reason).unwrap_or(Duration::from_secs(5)),
                );
            }
            _ => return SessionEnd::Lost(format!("runtime closed the tunnel: {reason}")),
        }
    }
    SessionEnd::Lost(err.to_string())
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    tunnel: &super::dial::Tunnel,
    identity: &Identity,
    ctx: &SessionContext,
    slot: &Slot,
    events: &mpsc::Sender<SessionEvent>,
    replaced: &CancellationToken,
    shutdown: &CancellationToken,
    health: &mut crate::health::SessionHealth,
) -> SessionEnd {
    let conn = &tunnel.link;
    let (mut send, recv) = match conn.open_bi().await {
        Ok(s) => s,
        Err(e) => return close_reason(&e),
    };
    let mut reader = FrameReader::new(recv, MAX_FRAME_LEN);
    let mut ctl = Control::connector(hello(ctx, identity, slot.index), Instant::now());

    let calls = TaskTracker::new();
    ctx.health.track_calls(&calls);
    // However the session ends, its tracker takes no more calls, so the health count
    // forgets it once its calls are done.
    let _close_calls = CloseOnDrop(calls.clone());
    let draining = CancellationToken::new();
    let acceptor = tokio::spawn(calls::accept(
        conn.clone(),
        ctx.tools.clone(),
        ctx.audit.clone(),
        ctx.tracing.clone(),
        identity.identity.tenant.clone(),
        calls.clone(),
        draining.clone(),
    ));
    let _abort_acceptor = AbortOnDrop(acceptor);

    let mut renew_at = Some(renewal_due(&identity.cert));
    // The new key and the right to renew, held until the runtime answers.
    let mut pending_key: Option<(ConnectorKey, OwnedMutexGuard<()>)> = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut go_away: Option<Duration> = None;

    loop {
        while let Some(ev) = ctl.poll_event() {
            match ev {
                Event::Established {
                    version,
                    server_time_unix_ms,
                    replica,
                } => {
                    let skew_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos()
                        / 1_000_000
                        - i128::from(server_time_unix_ms);
                    info!(connector = %identity.identity.connector, protocol = version, remote = %conn.remote_address(),
                          slot = slot.index, %replica, clock_skew_ms = skew_ms as i64, "tunnel up");
                    slot.reached(&replica);
                    health.up(
                        conn.via().as_str(),
                        conn.remote_address().to_string(),
                        tunnel.proxy.clone(),
                    );
                    let _ = events.send(SessionEvent::Established).await;
                }
                Event::Rejected { reason, message } => {
                    return match reason {
                        RejectReason::UpgradeRequired | RejectReason::IdentityMismatch => {
                            SessionEnd::Fatal(message)
                        }
                        _ => SessionEnd::Lost(message),
                    };
                }
                Event::GoAway { reconnect_within } => {
                    info!(
                        within_ms = reconnect_within.as_millis() as u64,
                        "runtime going away"
                    );
                    go_away = Some(reconnect_within);
                    start_drain(
                        &mut ctl,
                        &draining,
                        &calls,
                        &mut drain_deadline,
                        ctx.drain_timeout,
                        "runtime going away",
                    );
                }
                Event::RenewalAnswered { result, .. } => match (result, pending_key.take()) {
                    (Ok(chain), Some((key, _renewing))) => {
                        match install_renewal(ctx, identity, &chain, &key) {
                            Ok(serial) => {
                                info!(serial = %serial, "certificate renewed");
                                slot.renewed();
                                let _ = events.send(SessionEvent::Renewed).await;
                            }
                            Err(e) => {
                                warn!(error = %e, "renewed certificate rejected; retrying in a minute");
                                renew_at = Some(Instant::now() + Duration::from_secs(60));
                            }
                        }
                    }
                    (Err(e), _) => {
                        warn!(error = %e, "certificate renewal refused; retrying in a minute");
                        renew_at = Some(Instant::now() + Duration::from_secs(60));
                    }
                    (Ok(_), None) => warn!("renewal answer without a pending request ignored"),
                },
                Event::PeerLost(lost) => {
                    return SessionEnd::Lost(format!("runtime unresponsive ({lost:?})"));
                }
                Event::Accepted(_) | Event::PeerDraining | Event::RenewalRequested { .. } => {}
            }
        }
        if ctl.is_established() {
            ctx.health
                .round_trip(ctl.last_heard(), ctl.heartbeat_interval());
        }
        while let Some(f) = ctl.poll_transmit() {
            if let Err(e) = write_frame(&mut send, &f).await {
                return stream_failed(conn, e);
            }
        }
        if ctl.is_closed() {
            return SessionEnd::Lost("control stream closed".into());
        }
        let timer = ctl
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
        let renew_ready = renew_at.filter(|_| ctl.is_established() && drain_deadline.is_none());
        tokio::select! {
            frame = reader.next::<ControlFrame>() => match frame {
                Ok(Some(f)) => if let Err(e) = ctl.handle_frame(f, Instant::now()) {
                    warn!(error = %e, "runtime broke the control protocol");
                    return SessionEnd::Lost(e.to_string());
                },
                Ok(None) => return SessionEnd::Lost("runtime closed the control stream".into()),
                Err(e) => return stream_failed(conn, e),
            },
            _ = tokio::time::sleep_until(timer.into()) => ctl.handle_timeout(Instant::now()),
            _ = sleep_until_opt(renew_ready) => {
                renew_at = None;
                // One renewal per connector: another slot's renewal replaces this tunnel.
                let Some(renewing) = slot.try_renew() else {
                    renew_at = Some(Instant::now() + Duration::from_secs(60));
                    continue;
                };
                // This tunnel is about to be replaced with one on the renewed certificate.
                if renewed_since(ctx, &identity.cert.serial_hex) {
                    continue;
                }
                match ConnectorKey::generate().and_then(|k| k.csr_der(&identity.identity).map(|csr| (k, csr))) {
                    Ok((key, csr)) => {
                        if ctl.request_renewal(csr).is_some() {
                            info!("requesting certificate renewal");
                            pending_key = Some((key, renewing));
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "could not make a renewal CSR; retrying in a minute");
                        renew_at = Some(Instant::now() + Duration::from_secs(60));
                    }
                }
            }
            _ = replaced.cancelled(), if drain_deadline.is_none() => {
                start_drain(&mut ctl, &draining, &calls, &mut drain_deadline, ctx.drain_timeout, "replaced by a renewed tunnel");
            }
            _ = shutdown.cancelled(), if drain_deadline.is_none() => {
                start_drain(&mut ctl, &draining, &calls, &mut drain_deadline, ctx.drain_timeout, "shutting down");
            }
            _ = calls.wait(), if drain_deadline.is_some() => {
                info!("in-flight calls finished");
                return go_away.map_or(SessionEnd::Drained, SessionEnd::GoAway);
            }
            _ = sleep_until_opt(drain_deadline) => {
                warn!(abandoned = calls.len(), "drain timeout; abandoning in-flight calls");
                return go_away.map_or(SessionEnd::Drained, SessionEnd::GoAway);
            }
            err = conn.closed() => return close_reason(&err),
        }
    }
}

fn start_drain(
    ctl: &mut Control,
    draining: &CancellationToken,
    calls: &TaskTracker,
    deadline: &mut Option<Instant>,
    timeout: Duration,
    reason: &str,
) {
    info!(in_flight = calls.len(), reason, "draining");
    ctl.drain(reason, Duration::ZERO);
    draining.cancel();
    calls.close();
    *deadline = Some(Instant::now() + timeout);
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Checks a renewed chain (same identity, our new key) and writes it with the key.
fn install_renewal(
    ctx: &SessionContext,
    identity: &Identity,
    chain_pem: &str,
    key: &ConnectorKey,
) -> Result<String, String> {
    let leaf = CertInfo::from_pem(chain_pem).map_err(|e| e.to_string())?;
    if leaf.identity.as_ref() != Some(&identity.identity) {
        return Err("renewed certificate names another identity".into());
    }
    if leaf.spki_der != key.spki_der() {
        return Err("renewed certificate is not for our new key".into());
    }
    ctx.state
        .save_identity(chain_pem, key)
        .map_err(|e| e.to_string())?;
    Ok(leaf.serial_hex)
}

/// Whether the certificate on disk is no longer the one with `serial` (another slot
/// renewed it).
pub(super) fn renewed_since(ctx: &SessionContext, serial: &str) -> bool {
    ctx.state
        .identity()
        .is_ok_and(|now| now.cert.serial_hex != serial)
}

struct CloseOnDrop(TaskTracker);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
