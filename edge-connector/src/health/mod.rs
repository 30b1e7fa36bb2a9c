//! The connector's own account of its tunnel, for the operator and the service manager.
//!
//! The tunnel code reports to a [`Health`] handle: an attempt failed, a tunnel came up or
//! went down (and why), the runtime was heard on the control stream, which call trackers a
//! session serves from. Each session reports through its own [`SessionHealth`], so that
//! overlapping tunnels (a renewal's make-before-break, a move between transports) count as
//! one uninterrupted connection, and a failed new tunnel does not hide a live old one.
//! Readers take a [`Snapshot`]. There are two, both without a network port:
//! - [`status_file`]: `status.json` in the state directory, rewritten atomically on every
//!   change and every [`service::STATUS_INTERVAL`]; `edge-connector status` reads it.
//! - [`service`]: the systemd contract: READY=1 once the first tunnel is up, WATCHDOG=1 only
//!   while a tunnel is healthy, STATUS= text, and an exit after
//!   `[tunnel] exit_after_disconnected` without a tunnel so that the service manager
//!   restarts the connector.
//!
//! "Healthy" means up and heard from recently: both ends heartbeat every interval and drop
//! a peer silent for [`MISSED_HEARTBEATS`] of them, so a tunnel whose runtime was heard
//! within that window works both ways. A session task that hangs stops reporting, and the
//! tunnel stops counting as healthy even before anything notices the hang.

pub mod service;
pub mod status_file;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use shared::control::{DEFAULT_HEARTBEAT_INTERVAL, MISSED_HEARTBEATS};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// Where the tunnel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelState {
    /// No tunnel yet, nothing failed yet (just started).
    Connecting,
    /// A tunnel is up.
    Up,
    /// No tunnel: the last one was lost or the last attempt failed.
    Down,
    /// The connector has stopped (written last, so `status` need not wait for staleness).
    Stopped,
}

/// The tunnel's health at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Where the tunnel stands.
    pub state: TunnelState,
    /// Why there is no tunnel (down or stopped).
    pub reason: Option<String>,
    /// The current or last tunnel's transport: `quic` or `tcp`.
    pub transport: Option<String>,
    /// The current or last tunnel's runtime address.
    pub remote: Option<String>,
    /// The proxy the current or last tunnel goes through, if any.
    pub proxy: Option<String>,
    /// Up: since when the connector has had a tunnel without a gap (a renewal's
    /// make-before-break keeps it). Otherwise: since when it has had none (or started).
    pub since: SystemTime,
    /// [`Snapshot::since`] on the monotonic clock, for timeouts.
    pub since_instant: Instant,
    /// When the runtime was last heard on the control stream.
    pub last_round_trip: Option<Instant>,
    /// Until when that counts as recent (three heartbeat intervals later).
    pub fresh_until: Option<Instant>,
    /// Failed attempts since the last tunnel was up.
    pub reconnect_attempts: u64,
    /// Tunnels up now (two while one replaces another).
    pub tunnels_up: usize,
    /// Calls running now, across every session still serving some.
    pub calls_in_flight: usize,
}

impl Snapshot {
    fn starting(now: Instant) -> Self {
        Self {
            state: TunnelState::Connecting,
            reason: None,
            transport: None,
            remote: None,
            proxy: None,
            since: SystemTime::now(),
            since_instant: now,
            last_round_trip: None,
            fresh_until: None,
            reconnect_attempts: 0,
            tunnels_up: 0,
            calls_in_flight: 0,
        }
    }

    /// Whether a tunnel is up and its runtime was heard recently.
    pub fn is_healthy(&self, now: Instant) -> bool {
        self.state == TunnelState::Up && self.fresh_until.is_some_and(|until| now < until)
    }
}

/// The handle the tunnel code reports to; cheap to clone, all clones share one state.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    state: watch::Sender<Snapshot>,
    /// Each session's call tracker; counted when read, so no call path has a hook.
    calls: Mutex<Vec<TaskTracker>>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Health").field(&self.snapshot()).finish()
    }
}

impl Health {
    /// A connector that has just started: connecting, nothing failed yet.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: watch::Sender::new(Snapshot::starting(Instant::now())),
                calls: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A report for one session: see [`SessionHealth`].
    pub fn session(&self) -> SessionHealth {
        SessionHealth {
            health: self.clone(),
            up: false,
            end: None,
        }
    }

    /// A tunnel is up over `via` (`quic` or `tcp`) to `remote`, through `proxy` if any.
    /// Each call must be matched by one [`Health::tunnel_down`].
    pub fn tunnel_up(&self, via: &str, remote: String, proxy: Option<String>) {
        let now = Instant::now();
        self.inner.state.send_modify(|s| {
            if s.state != TunnelState::Up {
                s.since = SystemTime::now();
                s.since_instant = now;
            }
            s.tunnels_up += 1;
            s.state = TunnelState::Up;
            s.reason = None;
            s.transport = Some(via.to_owned());
            s.remote = Some(remote);
            s.proxy = proxy;
            s.reconnect_attempts = 0;
            // The hello's answer is itself the first round trip.
            s.last_round_trip = Some(now);
            s.fresh_until = Some(now + DEFAULT_HEARTBEAT_INTERVAL * MISSED_HEARTBEATS);
        });
    }

    /// A tunnel that was up has ended, for `reason`; the connector is down when it was the
    /// last one.
    pub fn tunnel_down(&self, reason: String) {
        let now = Instant::now();
        self.inner.state.send_if_modified(|s| {
            s.tunnels_up = s.tunnels_up.saturating_sub(1);
            if s.tunnels_up > 0 || s.state != TunnelState::Up {
                return false;
            }
            s.since = SystemTime::now();
            s.since_instant = now;
            s.reconnect_attempts = 0;
            s.state = TunnelState::Down;
            s.reason = Some(reason);
            s.last_round_trip = None;
            s.fresh_until = None;
            true
        });
    }

    /// An attempt at a tunnel failed, for `reason`; ignored while another tunnel is up.
    pub fn attempt_failed(&self, reason: String) {
        self.inner.state.send_if_modified(|s| {
            if s.tunnels_up > 0 || s.state == TunnelState::Stopped {
                return false;
            }
            s.reconnect_attempts += 1;
            s.state = TunnelState::Down;
            s.reason = Some(reason);
            true
        });
    }

    /// The runtime was last heard on the control stream `at`, with heartbeats every
    /// `interval`. Not a change of state: readers see it at their next look, nobody is woken.
    pub fn round_trip(&self, at: Instant, interval: Duration) {
        self.inner.state.send_if_modified(|s| {
            if s.state == TunnelState::Up && s.last_round_trip.is_none_or(|last| at > last) {
                s.last_round_trip = Some(at);
                s.fresh_until = Some(at + interval * MISSED_HEARTBEATS);
            }
            false
        });
    }

    /// Counts the calls of `calls` (one session's tracker) as in flight; once it is closed,
    /// only while it still has any.
    pub fn track_calls(&self, calls: &TaskTracker) {
        self.trackers().push(calls.clone());
    }

    /// The connector has stopped, for `reason`.
    pub fn stopped(&self, reason: String) {
        self.inner.state.send_modify(|s| {
            s.state = TunnelState::Stopped;
            s.reason = Some(reason);
            s.fresh_until = None;
        });
    }

    /// The state now.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = self.inner.state.borrow().clone();
        snapshot.calls_in_flight = self.calls_in_flight();
        snapshot
    }

    /// Wakes on every change of state (not on round trips or calls).
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.inner.state.subscribe()
    }

    fn calls_in_flight(&self) -> usize {
        let mut trackers = self.trackers();
        // A live session's tracker stays (it may serve calls yet, and with tunnels to
        // several replicas several sessions are live); an ended session's (closed) only
        // while it still holds calls, so reconnects do not pile them up.
        trackers.retain(|t| !t.is_closed() || !t.is_empty());
        trackers.iter().map(TaskTracker::len).sum()
    }

    fn trackers(&self) -> std::sync::MutexGuard<'_, Vec<TaskTracker>> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.inner
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One session's reports: [`SessionHealth::up`] when its hello is answered,
/// [`SessionHealth::ended`] with how it ended. A session that ends before it was up is a
/// failed attempt. Dropped without `ended` (an aborted task), it still reports the end.
#[derive(Debug)]
pub struct SessionHealth {
    health: Health,
    up: bool,
    end: Option<String>,
}

impl SessionHealth {
    /// The session's tunnel is up (see [`Health::tunnel_up`]).
    pub fn up(&mut self, via: &str, remote: String, proxy: Option<String>) {
        if !self.up {
            self.up = true;
            self.health.tunnel_up(via, remote, proxy);
        }
    }

    /// The session ended, for the reason `why` (in plain words).
    pub fn ended(mut self, why: String) {
        self.end = Some(why);
    }
}

impl Drop for SessionHealth {
    fn drop(&mut self) {
        let reason = self
            .end
            .take()
            .unwrap_or_else(|| "the session stopped".to_owned());
        if self.up {
            self.health.tunnel_down(reason);
        } else {
            self.health.attempt_failed(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_starts_connecting_and_unhealthy() {
        let h = Health::new();
        let s = h.snapshot();
        assert_eq!(s.state, TunnelState::Connecting);
        assert!(!s.is_healthy(Instant::now()));
    }

    #[test]
    fn health_failed_attempts_count_until_a_tunnel_is_up() {
        let h = Health::new();
        h.attempt_failed("cannot connect".into());
        h.session().ended("tunnel lost: hello timed out".into());
        let s = h.snapshot();
        assert_eq!(s.state, TunnelState::Down);
        assert_eq!(s.reconnect_attempts, 2);
        assert_eq!(s.reason.as_deref(), Some("tunnel lost: hello timed out"));

        let mut session = h.session();
        session.up("quic", "rt.example.com:4433".into(), None);
        let s = h.snapshot();
        assert_eq!(s.state, TunnelState::Up);
        assert_eq!(s.reconnect_attempts, 0);
        assert_eq!(s.reason, None);
        drop(session);
        let s = h.snapshot();
        assert_eq!(s.state, TunnelState::Down, "an aborted session still ends");
        assert_eq!(s.reason.as_deref(), Some("the session stopped"));
    }

    #[test]
    fn health_overlapping_tunnels_are_one_connection() {
        let h = Health::new();
        let mut old = h.session();
        old.up("quic", "a:1".into(), None);
        let first = h.snapshot().since_instant;
        // A renewal: the new tunnel fails once, then comes up, then the old one drains.
        h.attempt_failed("cannot connect".into());
        h.session().ended("tunnel lost: refused".into());
        assert_eq!(
            h.snapshot().state,
            TunnelState::Up,
            "the old tunnel still serves"
        );
        let mut new = h.session();
        new.up("tcp", "a:443".into(), Some("proxy:3128".into()));
        old.ended("drained (shutting down or replaced)".into());
        let s = h.snapshot();
        assert_eq!(s.state, TunnelState::Up);
        assert_eq!(s.since_instant, first, "make-before-break is no gap");
        assert_eq!(s.transport.as_deref(), Some("tcp"));
        assert_eq!(s.tunnels_up, 1);

        new.ended("tunnel lost: runtime unresponsive".into());
        let down = h.snapshot();
        assert_eq!(down.state, TunnelState::Down);
        assert_eq!(
            down.reason.as_deref(),
            Some("tunnel lost: runtime unresponsive")
        );
        assert!(down.since_instant >= first);
        assert_eq!(
            down.reconnect_attempts, 0,
            "losing a tunnel is not a failed attempt"
        );
        assert!(!down.is_healthy(Instant::now()));
        h.attempt_failed("refused".into());
        assert_eq!(h.snapshot().since_instant, down.since_instant);
    }

    #[test]
    fn health_is_unhealthy_once_the_runtime_is_silent_for_three_intervals() {
        let h = Health::new();
        h.tunnel_up("tcp", "a:443".into(), Some("proxy.corp:3128".into()));
        let heard = Instant::now();
        let interval = Duration::from_secs(1);
        h.round_trip(heard, interval);
        let s = h.snapshot();
        assert!(s.is_healthy(heard + interval * 2));
        assert!(!s.is_healthy(heard + interval * MISSED_HEARTBEATS));
        // An older report never moves the time back.
        h.round_trip(heard - interval, interval);
        assert_eq!(h.snapshot().last_round_trip, Some(heard));
    }

    #[test]
    fn health_round_trip_while_down_is_ignored_and_wakes_nobody() {
        let h = Health::new();
        let mut changes = h.subscribe();
        changes.mark_unchanged();
        h.round_trip(Instant::now(), Duration::from_secs(5));
        assert!(!changes.has_changed().unwrap_or(true));
        assert_eq!(h.snapshot().last_round_trip, None);
        h.attempt_failed("x".into());
        assert!(changes.has_changed().unwrap_or(false));
    }

    #[tokio::test]
    async fn health_counts_calls_across_sessions_and_forgets_ended_idle_ones() {
        let h = Health::new();
        // A live session (another replica's tunnel) with no call now.
        let idle = TaskTracker::new();
        h.track_calls(&idle);
        let old = TaskTracker::new();
        let gate = tokio_util::sync::CancellationToken::new();
        let g = gate.clone();
        old.spawn(async move { g.cancelled().await });
        h.track_calls(&old);
        let new = TaskTracker::new();
        h.track_calls(&new);
        let g = gate.clone();
        new.spawn(async move { g.cancelled().await });
        assert_eq!(h.snapshot().calls_in_flight, 2);
        gate.cancel();
        old.close();
        old.wait().await;
        new.close();
        new.wait().await;
        assert_eq!(h.snapshot().calls_in_flight, 0);
        assert_eq!(
            h.trackers().len(),
            1,
            "only the live session's tracker is kept"
        );
        idle.spawn(std::future::ready(()));
        idle.close();
        idle.wait().await;
        assert_eq!(h.snapshot().calls_in_flight, 0);
        assert!(h.trackers().is_empty());
    }
}
