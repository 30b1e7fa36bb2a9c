//! Keeps each slot's tunnel up ([`super::slots`]): dial (QUIC, or SSH over TCP where UDP is
//! blocked), run a session, reconnect with backoff, replace the tunnel after a renewal or
//! when QUIC works again, stop for good when the runtime says so, drain on shutdown. Slots
//! run side by side; the runtime refusing the connector on one stops them all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::link::Via;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::dial::{self, DialError, Tunnel};
use super::session::{self, SessionContext, SessionEnd, SessionEvent};
use super::slots::Slot;
use super::ssh_dial::{self, SshDialError};
use crate::RunError;
use crate::backoff::Backoff;
use crate::config::{ReplicaAddress, Transport};
use crate::connect_proxy as proxy;
use crate::egress::{ProxyEnv, split_host_port};
use crate::state::{ConnectorConfig, Identity, StateError};

/// First reconnect delay ceiling.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Reconnect delay ceiling.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// In `auto`, how long a QUIC handshake may go unanswered before the connector takes TCP.
pub const QUIC_PROBE: Duration = Duration::from_secs(3);
/// In `auto` on TCP, the first wait before QUIC is tried again; it doubles up to
/// [`QUIC_RETRY_CAP`] while UDP stays blocked.
pub const QUIC_RETRY_BASE: Duration = Duration::from_secs(5);
/// The longest wait between two QUIC attempts while on TCP.
pub const QUIC_RETRY_CAP: Duration = Duration::from_secs(300);

/// Why no tunnel could be dialled this time.
#[derive(Debug, thiserror::Error)]
enum AttemptFailed {
    #[error(transparent)]
    Quic(#[from] DialError),
    #[error(transparent)]
    Ssh(#[from] SshDialError),
    #[error("QUIC: {quic}; SSH over TCP: {ssh}")]
    Both { quic: DialError, ssh: SshDialError },
    #[error(transparent)]
    State(#[from] StateError),
}

struct Live {
    via: Via,
    replaced: CancellationToken,
    events: mpsc::Receiver<SessionEvent>,
}

/// Says once, in plain words, that UDP seems blocked and what to ask for.
#[derive(Default)]
struct UdpNotice {
    told: bool,
}

impl UdpNotice {
    fn blocked(&mut self, quic: &str, tcp: &str, error: &DialError) {
        if !std::mem::replace(&mut self.told, true) {
            warn!(
                %error,
                "UDP to {quic} seems blocked: the QUIC handshake got no answer. Working over SSH on TCP to {tcp} \
                 instead. For the faster transport, ask the firewall team to allow outbound UDP from this host \
                 to {quic} (replies on the same flow); nothing inbound is needed."
            );
        }
    }

    fn cleared(&mut self) {
        if std::mem::take(&mut self.told) {
            info!("QUIC works again; moving the tunnel back from TCP");
        }
    }
}

/// One QUIC attempt to `target` within `timeout`.
async fn quic(
    config: &ConnectorConfig,
    target: &ReplicaAddress,
    identity: &Identity,
    ca: rustls_pki_types::CertificateDer<'static>,
    timeout: Duration,
) -> Result<Tunnel, DialError> {
    let client = dial::client_config(identity, ca)?;
    let d = dial::dial(&target.quic, &config.server_name, &client, timeout).await?;
    Ok(d.into())
}

/// One SSH-over-TCP attempt to `target`, through the egress proxy when one applies.
async fn ssh(
    ctx: &SessionContext,
    config: &ConnectorConfig,
    target: &ReplicaAddress,
    identity: &Identity,
) -> Result<Tunnel, SshDialError> {
    let endpoint = target.tcp.as_deref().ok_or_else(|| {
        SshDialError::NoHostKey(format!(
            "no TCP endpoint for the runtime at {} (none named at enrollment or in [[tunnel.replica]])",
            target.quic
        ))
    })?;
    let expected = ssh_dial::host_key(config.ssh_host_key.as_deref())?;
    let key = ssh_dial::client_key(&identity.key)?;
    let (host, port) = split_host_port(endpoint)
        .ok_or_else(|| SshDialError::Tcp(format!("{endpoint:?} is not host:port")))?;
    let route = proxy::route_for(
        &ctx.tunnel.config,
        &ProxyEnv::from_process(),
        host,
        port,
        || (ctx.tunnel.proxy_password)(),
    )?;
    let proxy_name = route.as_ref().map(|r| r.authority().to_owned());
    let (stream, remote) = match route {
        Some(route) => {
            let stream = proxy::connect(&route, host, port, dial::HANDSHAKE_TIMEOUT).await?;
            let remote = stream
                .peer_addr()
                .map_err(|e| SshDialError::Tcp(e.to_string()))?;
            info!(proxy = %route.describe(), "SSH tunnel through the egress proxy");
            (stream, remote)
        }
        None => ssh_dial::tcp(endpoint, dial::HANDSHAKE_TIMEOUT).await?,
    };
    let link = ssh_dial::connect(
        stream,
        remote,
        expected,
        identity.identity.connector.as_str(),
        key,
        dial::HANDSHAKE_TIMEOUT,
    )
    .await?;
    Ok(Tunnel::ssh(link, proxy_name))
}

/// Dials `target` by the configured transport: `auto` tries QUIC briefly, then TCP.
async fn dial_any(
    ctx: &SessionContext,
    slot: &Slot,
    identity: &Identity,
    notice: &mut UdpNotice,
) -> Result<Tunnel, AttemptFailed> {
    let config = ctx.state.config()?;
    let target = &slot.target(&config);
    let ca = ctx.state.ca_der()?;
    match ctx.tunnel.config.transport {
        Transport::Quic => Ok(quic(&config, target, identity, ca, dial::HANDSHAKE_TIMEOUT).await?),
        Transport::Tcp => Ok(ssh(ctx, &config, target, identity).await?),
        Transport::Auto => {
            let Some(tcp) = target.tcp.clone() else {
                return Ok(quic(&config, target, identity, ca, dial::HANDSHAKE_TIMEOUT).await?);
            };
            match quic(&config, target, identity, ca, QUIC_PROBE).await {
                Ok(t) => {
                    notice.cleared();
                    Ok(t)
                }
                Err(quic_err) => {
                    notice.blocked(&target.quic, &tcp, &quic_err);
                    ssh(ctx, &config, target, identity)
                        .await
                        .map_err(|ssh| AttemptFailed::Both {
                            quic: quic_err,
                            ssh,
                        })
                }
            }
        }
    }
}

/// Runs a session on `tunnel` and waits for its first word: established, or ended.
async fn start(
    tunnel: Tunnel,
    identity: Identity,
    ctx: &Arc<SessionContext>,
    slot: &Arc<Slot>,
    sessions: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<Live, SessionEnd> {
    let via = tunnel.link.via();
    let (tx, mut rx) = mpsc::channel(8);
    let replaced = CancellationToken::new();
    sessions.spawn(session::run(
        tunnel,
        identity,
        ctx.clone(),
        tx,
        replaced.clone(),
        shutdown.clone(),
        slot.clone(),
    ));
    loop {
        match rx.recv().await {
            Some(SessionEvent::Established) => {
                return Ok(Live {
                    via,
                    replaced,
                    events: rx,
                });
            }
            Some(SessionEvent::Ended(end)) => return Err(end),
            Some(SessionEvent::Renewed) => {}
            None => return Err(SessionEnd::Lost("session ended".into())),
        }
    }
}

/// Makes `new` the slot's current tunnel; the one it replaces drains and ends on its own.
fn install(slot: &Slot, current: &mut Option<Live>, new: Live, sessions: &TaskTracker) {
    info!(transport = %new.via, slot = slot.index, "tunnel in service");
    if let Some(old) = current.replace(new) {
        old.replaced.cancel();
        sessions.spawn(async move {
            let mut events = old.events;
            while events.recv().await.is_some() {}
        });
    }
}

/// Runs until `shutdown` (then drains) or until the runtime refuses the connector: one
/// tunnel per slot ([`Slot::all`]).
pub async fn run(ctx: Arc<SessionContext>, shutdown: CancellationToken) -> Result<(), RunError> {
    ctx.state.config()?;
    let mut slots = Slot::all(&ctx.tunnel.config);
    if let [slot] = &slots[..] {
        return run_slot(ctx.clone(), slot.clone(), shutdown).await;
    }
    info!(
        tunnels = slots.len(),
        "keeping a tunnel to each runtime replica in [[tunnel.replica]]"
    );
    let stop = shutdown.child_token();
    let mut running = tokio::task::JoinSet::new();
    for slot in slots.drain(..) {
        running.spawn(run_slot(ctx.clone(), slot, stop.clone()));
    }
    let mut result = Ok(());
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop.cancel();
                if result.is_ok() {
                    result = Err(e);
                }
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    result
}

/// Keeps `slot`'s tunnel up until `shutdown` (then drains) or until the runtime refuses
/// the connector.
async fn run_slot(
    ctx: Arc<SessionContext>,
    slot: Arc<Slot>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let sessions = TaskTracker::new();
    let mut renewals = slot.renewals();
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
    let mut quic_retry = Backoff::new(QUIC_RETRY_BASE, QUIC_RETRY_CAP);
    let mut notice = UdpNotice::default();
    let mut current: Option<Live> = None;
    let mut want_new = true;
    let mut quic_again_at: Option<Instant> = None;
    let result = loop {
        if want_new && !shutdown.is_cancelled() {
            // Reloaded on every attempt: a renewal may have replaced it (and this attempt
            // uses the newest, so earlier renewals need no further attempt).
            renewals.mark_unchanged();
            let identity = ctx.state.identity()?;
            let serial = identity.cert.serial_hex.clone();
            let dialled = tokio::select! {
                d = dial_any(&ctx, &slot, &identity, &mut notice) => d,
                _ = shutdown.cancelled() => break Ok(()),
            };
            match dialled {
                Ok(tunnel) => {
                    match start(tunnel, identity, &ctx, &slot, &sessions, &shutdown).await {
                        Ok(live) => {
                            backoff.reset();
                            want_new = false;
                            quic_again_at = (live.via == Via::Tcp
                                && ctx.tunnel.config.transport == Transport::Auto)
                                .then(|| Instant::now() + quic_retry.next_delay());
                            install(&slot, &mut current, live, &sessions);
                        }
                        // Another slot's renewal took effect while this one dialled with
                        // the certificate it replaced: dial again with the new one.
                        Err(SessionEnd::Fatal(_)) if session::renewed_since(&ctx, &serial) => {
                            info!(
                                slot = slot.index,
                                "dialled with the certificate another tunnel just renewed; dialling again"
                            );
                        }
                        Err(SessionEnd::Fatal(msg)) => break Err(RunError::Refused(msg)),
                        Err(SessionEnd::Busy(after)) => {
                            if !busy(after, &shutdown).await {
                                break Ok(());
                            }
                        }
                        Err(end) => {
                            warn!(?end, "tunnel did not come up");
                            if !pause(backoff.next_delay(), &shutdown).await {
                                break Ok(());
                            }
                        }
                    }
                }
                Err(AttemptFailed::State(e)) => break Err(e.into()),
                Err(AttemptFailed::Quic(e @ DialError::Tls(_))) => break Err(e.into()),
                Err(e) => {
                    ctx.health.attempt_failed(e.to_string());
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot reach the runtime");
                    if !pause(delay, &shutdown).await {
                        break Ok(());
                    }
                }
            }
            continue;
        }
        let Some(live) = current.as_mut() else {
            if shutdown.is_cancelled() {
                break Ok(());
            }
            want_new = true;
            continue;
        };
        let event = tokio::select! {
            e = live.events.recv() => e,
            // Another slot renewed the certificate: dial with it (make before break).
            Ok(()) = renewals.changed(), if !shutdown.is_cancelled() => {
                want_new = true;
                continue;
            }
            () = sleep_until_opt(quic_again_at), if !shutdown.is_cancelled() => {
                quic_again_at = None;
                if let Some(live) = try_quic_again(&ctx, &slot, &sessions, &shutdown).await {
                    notice.cleared();
                    quic_retry.reset();
                    install(&slot, &mut current, live, &sessions);
                } else {
                    quic_again_at = Some(Instant::now() + quic_retry.next_delay());
                }
                continue;
            }
        };
        match event {
            Some(SessionEvent::Renewed) => want_new = true,
            Some(SessionEvent::Established) => {}
            Some(SessionEvent::Ended(_)) | None if shutdown.is_cancelled() => break Ok(()),
            ended => {
                current = None;
                quic_again_at = None;
                want_new = true;
                match end_of(ended) {
                    SessionEnd::Fatal(msg) => break Err(RunError::Refused(msg)),
                    SessionEnd::GoAway(within) => {
                        let delay = Duration::from_nanos(rand::random_range(
                            0..=u64::try_from(within.as_nanos()).unwrap_or(u64::MAX),
                        ));
                        info!(
                            reconnect_in_ms = delay.as_millis() as u64,
                            "runtime went away"
                        );
                        if !pause(delay, &shutdown).await {
                            break Ok(());
                        }
                    }
                    SessionEnd::Busy(after) => {
                        if !busy(after, &shutdown).await {
                            break Ok(());
                        }
                    }
                    SessionEnd::Lost(reason) => {
                        let delay = backoff.next_delay();
                        warn!(%reason, retry_in_ms = delay.as_millis() as u64, "tunnel lost");
                        if !pause(delay, &shutdown).await {
                            break Ok(());
                        }
                    }
                    SessionEnd::Drained => {}
                }
            }
        }
    };
    sessions.close();
    sessions.wait().await;
    result
}

/// While on TCP in `auto`: one QUIC attempt; a tunnel that comes up replaces the TCP one
/// (make before break: the TCP tunnel drains its calls).
async fn try_quic_again(
    ctx: &Arc<SessionContext>,
    slot: &Arc<Slot>,
    sessions: &TaskTracker,
    shutdown: &CancellationToken,
) -> Option<Live> {
    let identity = ctx.state.identity().ok()?;
    let config = ctx.state.config().ok()?;
    let ca = ctx.state.ca_der().ok()?;
    let tunnel = match quic(&config, &slot.target(&config), &identity, ca, QUIC_PROBE).await {
        Ok(t) => t,
        Err(e) => {
            info!(error = %e, "QUIC still unreachable; staying on TCP");
            return None;
        }
    };
    match start(tunnel, identity, ctx, slot, sessions, shutdown).await {
        Ok(live) => Some(live),
        Err(end) => {
            info!(?end, "QUIC tunnel did not come up; staying on TCP");
            None
        }
    }
}

fn end_of(event: Option<SessionEvent>) -> SessionEnd {
    match event {
        Some(SessionEvent::Ended(end)) => end,
        _ => SessionEnd::Lost("session ended".into()),
    }
}

/// Waits as long as a busy runtime asked (plus up to a tenth more, so connectors told the
/// same delay do not return together); false on shutdown.
async fn busy(after: Duration, shutdown: &CancellationToken) -> bool {
    let delay = after + after.mul_f64(rand::random::<f64>() / 10.0);
    info!(
        retry_in_ms = delay.as_millis() as u64,
        "runtime busy with other connectors' handshakes; retrying as it asked"
    );
    pause(delay, shutdown).await
}

/// Sleeps unless shutdown comes first; false on shutdown.
async fn pause(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.cancelled() => false,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
