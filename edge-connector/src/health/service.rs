//! The running service's side of health: keeps the status file current and keeps the
//! systemd contract (`Type=notify`, `WatchdogSec=` in the unit):
//! - READY=1 once, when the first tunnel is up (so `systemctl start` returns when the
//!   connector actually serves);
//! - WATCHDOG=1 every half watchdog interval, but only while a tunnel is healthy: a
//!   connector that has lost its runtime, or whose session hangs, is restarted by systemd;
//! - STATUS= the one-line [`Status::headline`] whenever it changes, for `systemctl status`;
//! - with `[tunnel] exit_after_disconnected`, a [`Disconnected`] error after that long
//!   without a tunnel, so the connector exits non-zero and systemd restarts it.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) the notifications are no-ops; the status file is
//! written either way.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use sd_notify::NotifyState;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::status_file::Status;
use super::{Health, Snapshot, TunnelState};

/// How often the status file is rewritten when nothing changes (well within
/// [`super::status_file::STALE_AFTER`]).
pub const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// What the service task needs besides the health it watches.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// The status file (in the state directory).
    pub status_file: PathBuf,
    /// Exit after this long without a tunnel (`[tunnel] exit_after_disconnected`).
    pub exit_after_disconnected: Option<Duration>,
}

/// The connector had no tunnel for `[tunnel] exit_after_disconnected`.
#[derive(Debug, thiserror::Error)]
#[error(
    "no tunnel to the runtime for {} ([tunnel] exit_after_disconnected); last error: {reason}; exiting so that the service manager restarts the connector",
    humantime::format_duration(*after)
)]
pub struct Disconnected {
    /// The configured limit.
    pub after: Duration,
    /// Why the last attempt failed.
    pub reason: String,
}

/// One message for the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// READY=1.
    Ready,
    /// STATUS=text.
    Status(String),
    /// WATCHDOG=1.
    Watchdog,
}

/// Decides what to tell systemd, without I/O: READY once, STATUS on change, WATCHDOG only
/// while healthy.
#[derive(Debug, Default)]
pub struct Notifier {
    ready: bool,
    status: String,
}

impl Notifier {
    /// The notes due now, for `snapshot` at `now`; `watchdog` when a watchdog ping is due.
    pub fn notes(&mut self, snapshot: &Snapshot, now: Instant, watchdog: bool) -> Vec<Note> {
        let mut notes = Vec::new();
        let text = Status::of(snapshot, now, SystemTime::now()).headline();
        if text != self.status {
            self.status.clone_from(&text);
            notes.push(Note::Status(text));
        }
        if !self.ready && snapshot.state == TunnelState::Up {
            self.ready = true;
            notes.push(Note::Ready);
        }
        if watchdog && snapshot.is_healthy(now) {
            notes.push(Note::Watchdog);
        }
        notes
    }
}

fn send(notes: &[Note]) {
    if notes.is_empty() {
        return;
    }
    let states: Vec<NotifyState<'_>> = notes
        .iter()
        .map(|n| match n {
            Note::Ready => NotifyState::Ready,
            Note::Status(text) => NotifyState::Status(text),
            Note::Watchdog => NotifyState::Watchdog,
        })
        .collect();
    if let Err(e) = sd_notify::notify(&states) {
        debug!(error = %e, "cannot notify the service manager");
    }
}

/// Writes the status file off the reactor (it fsyncs); warns once per distinct failure.
async fn write_status(path: &std::path::Path, status: Status, last_error: &mut Option<String>) {
    let path = path.to_owned();
    let written = tokio::task::spawn_blocking(move || status.write(&path))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    match written {
        Ok(()) => *last_error = None,
        Err(e) if last_error.as_ref() != Some(&e) => {
            warn!(error = %e, "cannot write the status file; `edge-connector status` will call the service not running");
            *last_error = Some(e);
        }
        Err(_) => {}
    }
}

/// Runs until `stop`, or until `exit_after_disconnected` passes without a tunnel (then
/// cancels `stop` itself and returns [`Disconnected`]).
pub async fn run(
    health: Health,
    options: ServiceOptions,
    stop: CancellationToken,
) -> Result<(), Disconnected> {
    // Left by a service killed mid-write. The service is the file's only writer (a second
    // connector on the same directory would at worst fail one write and retry).
    shared::fs::remove_stale_temporaries(&options.status_file);
    let mut changes = health.subscribe();
    let watchdog = sd_notify::watchdog_enabled();
    let period = watchdog.map_or(STATUS_INTERVAL, |w| (w / 2).min(STATUS_INTERVAL));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut notifier = Notifier::default();
    let mut last_write: Option<Instant> = None;
    let mut write_error = None;
    let mut changed = true;
    let result = loop {
        let snapshot = health.snapshot();
        // The runtime's clock (the same as std's, except in tests with paused time).
        let now = tokio::time::Instant::now().into_std();
        if changed || last_write.is_none_or(|at| now >= at + STATUS_INTERVAL) {
            let status = Status::of(&snapshot, now, SystemTime::now());
            write_status(&options.status_file, status, &mut write_error).await;
            last_write = Some(now);
        }
        send(&notifier.notes(&snapshot, now, watchdog.is_some()));
        let give_up_at = options
            .exit_after_disconnected
            .filter(|_| snapshot.state != TunnelState::Up)
            .map(|after| snapshot.since_instant + after);
        if let (Some(at), Some(after)) = (give_up_at, options.exit_after_disconnected)
            && now >= at
        {
            break Err(Disconnected {
                after,
                reason: snapshot
                    .reason
                    .unwrap_or_else(|| "none yet (still connecting)".to_owned()),
            });
        }
        changed = false;
        tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            r = changes.changed() => changed = r.is_ok(),
            _ = ticks.tick() => {}
            _ = sleep_until(give_up_at) => {}
        }
    };
    match &result {
        // A reason given by whoever stopped the connector stands.
        Ok(()) if health.snapshot().state == TunnelState::Stopped => {}
        Ok(()) => health.stopped("shutting down".to_owned()),
        Err(e) => health.stopped(e.to_string()),
    }
    let now = tokio::time::Instant::now().into_std();
    write_status(
        &options.status_file,
        Status::of(&health.snapshot(), now, SystemTime::now()),
        &mut write_error,
    )
    .await;
    send(&notifier.notes(&health.snapshot(), now, false));
    if let Err(e) = sd_notify::notify(&[NotifyState::Stopping]) {
        debug!(error = %e, "cannot notify the service manager");
    }
    stop.cancel();
    result
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(notes: &[Note]) -> Vec<&str> {
        notes
            .iter()
            .filter_map(|n| match n {
                Note::Status(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn notifier_says_ready_once_and_only_after_a_tunnel_is_up() {
        let h = Health::new();
        let mut n = Notifier::default();
        let now = Instant::now();
        let first = n.notes(&h.snapshot(), now, true);
        assert_eq!(
            statuses(&first),
            ["no tunnel yet: connecting to the runtime"]
        );
        assert!(!first.contains(&Note::Ready) && !first.contains(&Note::Watchdog));
        h.attempt_failed("refused".into());
        assert!(!n.notes(&h.snapshot(), now, true).contains(&Note::Ready));

        h.tunnel_up("quic", "rt:4433".into(), None);
        let up = n.notes(&h.snapshot(), Instant::now(), true);
        assert!(up.contains(&Note::Ready), "{up:?}");
        assert_eq!(
            statuses(&up),
            ["connected over quic to rt:4433, 0 calls in flight"]
        );
        h.tunnel_down("lost".into());
        h.tunnel_up("quic", "rt:4433".into(), None);
        assert!(
            !n.notes(&h.snapshot(), Instant::now(), true)
                .contains(&Note::Ready)
        );
    }

    #[test]
    fn notifier_pings_the_watchdog_only_while_healthy() {
        let h = Health::new();
        let mut n = Notifier::default();
        h.tunnel_up("quic", "rt:4433".into(), None);
        let heard = Instant::now();
        h.round_trip(heard, Duration::from_secs(1));
        assert!(
            n.notes(&h.snapshot(), heard, true)
                .contains(&Note::Watchdog)
        );
        assert!(
            !n.notes(&h.snapshot(), heard, false)
                .contains(&Note::Watchdog),
            "no watchdog configured, no ping"
        );
        let silent = heard + Duration::from_secs(3);
        assert!(
            !n.notes(&h.snapshot(), silent, true)
                .contains(&Note::Watchdog)
        );
        h.tunnel_down("tunnel lost: runtime unresponsive".into());
        let down = n.notes(&h.snapshot(), Instant::now(), true);
        assert!(!down.contains(&Note::Watchdog));
        assert_eq!(
            statuses(&down),
            ["no tunnel: tunnel lost: runtime unresponsive"]
        );
        assert!(
            statuses(&n.notes(&h.snapshot(), Instant::now(), true)).is_empty(),
            "an unchanged status is not repeated"
        );
    }

    #[tokio::test]
    async fn service_exits_after_exit_after_disconnected_without_a_tunnel() {
        let dir = tempfile::tempdir().unwrap();
        let h = Health::new();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            h.clone(),
            ServiceOptions {
                status_file: dir.path().join("status.json"),
                exit_after_disconnected: Some(Duration::from_millis(200)),
            },
            stop.clone(),
        ));
        h.attempt_failed("cannot connect".into());
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.after, Duration::from_millis(200));
        assert_eq!(err.reason, "cannot connect");
        assert!(stop.is_cancelled(), "the connector is told to stop");
        assert_eq!(h.snapshot().state, TunnelState::Stopped);
    }

    #[tokio::test]
    async fn service_stop_keeps_the_reason_the_connector_stopped_for() {
        let dir = tempfile::tempdir().unwrap();
        let killed_mid_write = dir.path().join(".status.json.tmp-0123456789abcdef");
        std::fs::write(&killed_mid_write, "{").unwrap();
        let h = Health::new();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            h.clone(),
            ServiceOptions {
                status_file: dir.path().join("status.json"),
                exit_after_disconnected: None,
            },
            stop.clone(),
        ));
        h.stopped("the runtime revoked this connector".into());
        stop.cancel();
        assert!(task.await.unwrap().is_ok());
        assert!(
            !killed_mid_write.exists(),
            "a stale temporary is cleaned up"
        );
        let report = super::super::status_file::Report::read(dir.path(), SystemTime::now());
        let status = report.status.unwrap();
        assert_eq!(status.state, TunnelState::Stopped);
        assert_eq!(
            status.reason.as_deref(),
            Some("the runtime revoked this connector")
        );
    }

    #[tokio::test]
    async fn service_keeps_running_while_a_tunnel_is_up() {
        let dir = tempfile::tempdir().unwrap();
        let h = Health::new();
        h.tunnel_up("quic", "rt:4433".into(), None);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            h.clone(),
            ServiceOptions {
                status_file: dir.path().join("status.json"),
                exit_after_disconnected: Some(Duration::from_millis(200)),
            },
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!task.is_finished());
        stop.cancel();
        assert!(task.await.unwrap().is_ok());
    }
}
