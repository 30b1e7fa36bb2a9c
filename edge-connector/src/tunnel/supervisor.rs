//! Keeps one tunnel up: dial, run a session, reconnect with backoff, replace the tunnel after
//! a renewal, stop for good when the runtime says so, drain on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::dial::{self, DialError};
use super::session::{self, SessionContext, SessionEnd, SessionEvent};
use crate::backoff::Backoff;
use crate::state::StateError;

/// First reconnect delay ceiling.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Reconnect delay ceiling.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Why the connector stopped for good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The state directory is unusable.
    #[error(transparent)]
    State(#[from] StateError),
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The runtime refused us for good.
    #[error("{0}")]
    Refused(String),
    /// No tunnel for `[tunnel] exit_after_disconnected`: exit so that systemd restarts us.
    #[error(transparent)]
    Disconnected(#[from] crate::health::service::Disconnected),
    /// The local policy file is unusable.
    #[error(transparent)]
    LocalPolicy(#[from] crate::local_policy::LocalPolicyError),
    /// An upstream instance cannot be set up.
    #[error(transparent)]
    Providers(#[from] crate::providers::ProviderError),
    /// The span exporter could not be built.
    #[error(transparent)]
    Telemetry(#[from] shared::trace::ExporterError),
}

struct Live {
    replaced: CancellationToken,
    events: mpsc::Receiver<SessionEvent>,
}

/// Runs until `shutdown` (then drains) or until the runtime refuses the connector.
pub async fn run(ctx: Arc<SessionContext>, shutdown: CancellationToken) -> Result<(), RunError> {
    let config = ctx.state.config()?;
    let sessions = TaskTracker::new();
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
    let mut current: Option<Live> = None;
    let mut want_new = true;
    let result = loop {
        if want_new && !shutdown.is_cancelled() {
            // Reloaded on every attempt: a renewal may have replaced it.
            let identity = ctx.state.identity()?;
            let client = dial::client_config(&identity, ctx.state.ca_der()?)?;
            let dialled = tokio::select! {
                d = dial::dial(&config.quic_endpoint, &config.server_name, &client) => d,
                _ = shutdown.cancelled() => break Ok(()),
            };
            match dialled {
                Ok(dialled) => {
                    let (tx, mut rx) = mpsc::channel(8);
                    let replaced = CancellationToken::new();
                    sessions.spawn(session::run(
                        dialled,
                        identity,
                        ctx.clone(),
                        tx,
                        replaced.clone(),
                        shutdown.clone(),
                    ));
                    match rx.recv().await {
                        Some(SessionEvent::Established) => {
                            backoff.reset();
                            want_new = false;
                            if let Some(old) = current.replace(Live {
                                replaced,
                                events: rx,
                            }) {
                                old.replaced.cancel();
                                // The old session drains and ends on its own.
                                sessions.spawn(async move {
                                    let mut events = old.events;
                                    while events.recv().await.is_some() {}
                                });
                            }
                        }
                        Some(SessionEvent::Ended(SessionEnd::Fatal(msg))) => {
                            break Err(RunError::Refused(msg));
                        }
                        Some(SessionEvent::Ended(end)) => {
                            warn!(?end, "tunnel did not come up");
                            if !pause(backoff.next_delay(), &shutdown).await {
                                break Ok(());
                            }
                        }
                        Some(SessionEvent::Renewed) | None => {}
                    }
                }
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
        match live.events.recv().await {
            Some(SessionEvent::Renewed) => want_new = true,
            Some(SessionEvent::Established) => {}
            Some(SessionEvent::Ended(_)) | None if shutdown.is_cancelled() => break Ok(()),
            ended => {
                current = None;
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

fn end_of(event: Option<SessionEvent>) -> SessionEnd {
    match event {
        Some(SessionEvent::Ended(end)) => end,
        _ => SessionEnd::Lost("session ended".into()),
    }
}

/// Sleeps unless shutdown comes first; false on shutdown.
async fn pause(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.cancelled() => false,
    }
}
