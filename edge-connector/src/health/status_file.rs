//! `status.json` in the state directory: what the running service last knew about its tunnel,
//! for `edge-connector status` (a file, not a port: the connector listens on nothing).
//!
//! The service rewrites it atomically (mode 0640, through [`shared::fs::write_atomic`]) on
//! every change and every [`super::service::STATUS_INTERVAL`]; a file older than
//! [`STALE_AFTER`] means the service is not running. The one-line [`Status::headline`] is
//! also the STATUS= text systemd shows.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use shared::fs::{FsError, WriteOptions};

use super::{Snapshot, TunnelState};

/// The file's name in the state directory.
pub const FILE_NAME: &str = "status.json";

/// A status file older than this was left by a service that is no longer running.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// Larger than any status file the service writes.
const MAX_LEN: u64 = 64 * 1024;

/// What the service writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Where the tunnel stands.
    pub state: TunnelState,
    /// Whether a tunnel is up and its runtime was heard recently.
    pub healthy: bool,
    /// Why there is no tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `quic` or `tcp`, of the current or last tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// The runtime's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// The proxy the tunnel goes through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Up: connected without a gap since; otherwise: without a tunnel since. Unix ms.
    pub since_unix_ms: u64,
    /// When the runtime was last heard on the control stream, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_round_trip_unix_ms: Option<u64>,
    /// Calls running.
    pub calls_in_flight: usize,
    /// Failed attempts since the last tunnel.
    pub reconnect_attempts: u64,
    /// The service's process id.
    pub pid: u32,
    /// When this was written, Unix ms.
    pub updated_unix_ms: u64,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

impl Status {
    /// The status of `snapshot`, taken at `now` (monotonic) and `wall` (the same moment).
    pub fn of(snapshot: &Snapshot, now: Instant, wall: SystemTime) -> Self {
        // Instants have no calendar meaning: place the round trip by its age.
        let last_round_trip_unix_ms = snapshot
            .last_round_trip
            .map(|at| unix_ms(wall - now.saturating_duration_since(at)));
        Self {
            state: snapshot.state,
            healthy: snapshot.is_healthy(now),
            reason: snapshot.reason.clone(),
            transport: snapshot.transport.clone(),
            remote: snapshot.remote.clone(),
            proxy: snapshot.proxy.clone(),
            since_unix_ms: unix_ms(snapshot.since),
            last_round_trip_unix_ms,
            calls_in_flight: snapshot.calls_in_flight,
            reconnect_attempts: snapshot.reconnect_attempts,
            pid: std::process::id(),
            updated_unix_ms: unix_ms(wall),
        }
    }

    fn via(&self) -> String {
        let mut text = format!(
            "connected over {}",
            self.transport.as_deref().unwrap_or("an unknown transport")
        );
        if let Some(remote) = &self.remote {
            text.push_str(&format!(" to {remote}"));
        }
        if let Some(proxy) = &self.proxy {
            text.push_str(&format!(" via {proxy}"));
        }
        text
    }

    fn no_tunnel(&self) -> String {
        let mut text = match &self.reason {
            Some(reason) => format!("no tunnel: {reason}"),
            None => "no tunnel yet: connecting to the runtime".to_owned(),
        };
        if self.reconnect_attempts > 0 {
            text.push_str(&format!(
                " ({})",
                plural(
                    usize::try_from(self.reconnect_attempts).unwrap_or(usize::MAX),
                    "failed attempt",
                    "failed attempts"
                )
            ));
        }
        text
    }

    /// One line: "connected over quic to HOST:PORT, 3 calls in flight" or "no tunnel: WHY".
    /// systemd shows it as the service's STATUS=.
    pub fn headline(&self) -> String {
        match self.state {
            TunnelState::Up => format!(
                "{}, {} in flight",
                self.via(),
                plural(self.calls_in_flight, "call", "calls")
            ),
            TunnelState::Stopped => match &self.reason {
                Some(reason) => format!("stopped: {reason}"),
                None => "stopped".to_owned(),
            },
            TunnelState::Connecting | TunnelState::Down => self.no_tunnel(),
        }
    }

    /// The plain summary `edge-connector status` prints, with times relative to `now`.
    pub fn render(&self, now: SystemTime) -> String {
        let at = |ms: u64| {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        };
        let ago = |ms: u64| {
            let age = unix_ms(now).saturating_sub(ms) / 1000;
            format!("{age} s ago")
        };
        match self.state {
            TunnelState::Up => {
                let round_trip = self.last_round_trip_unix_ms.map_or_else(
                    || "no round trip yet".to_owned(),
                    |ms| format!("last round trip {}", ago(ms)),
                );
                let warning = if self.healthy {
                    ""
                } else {
                    " (the runtime has not answered lately: the tunnel may be dead)"
                };
                format!(
                    "{} since {}, {round_trip}, {} in flight{warning}\n",
                    self.via(),
                    at(self.since_unix_ms),
                    plural(self.calls_in_flight, "call", "calls")
                )
            }
            TunnelState::Stopped => format!("{}\n", self.headline()),
            TunnelState::Connecting | TunnelState::Down => {
                format!("{} since {}\n", self.no_tunnel(), at(self.since_unix_ms))
            }
        }
    }

    /// Replaces `path` with this status, atomically, mode 0640.
    pub fn write(&self, path: &Path) -> Result<(), FsError> {
        // Strings and numbers only: serialising cannot fail.
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        shared::fs::write_atomic(path, &bytes, &WriteOptions::mode(0o640))
    }
}

/// What `edge-connector status` concludes; its exit code follows LSB `status` conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A tunnel is up and answering: exit 0.
    Up,
    /// The service runs without a (working) tunnel: exit 1.
    Down,
    /// No fresh status: the service is not running: exit 3.
    NotRunning,
}

impl Verdict {
    /// The exit code of `edge-connector status`.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Up => 0,
            Verdict::Down => 1,
            Verdict::NotRunning => 3,
        }
    }
}

/// `edge-connector status` in full: the verdict, why, and the file's content.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The conclusion.
    pub verdict: Verdict,
    /// Why the status is unknown (no file, stale, unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The status file's path.
    pub file: PathBuf,
    /// What the service wrote, when readable.
    pub status: Option<Status>,
}

impl Report {
    /// Reads the status file of the state directory `state_dir` and judges it at `now`.
    pub fn read(state_dir: &Path, now: SystemTime) -> Self {
        let file = state_dir.join(FILE_NAME);
        let parsed = match shared::fs::read_file(&file, MAX_LEN) {
            Ok(bytes) => serde_json::from_slice::<Status>(&bytes)
                .map_err(|e| format!("{} is unreadable ({e})", file.display())),
            Err(e) if e.is_not_found() => Err(format!(
                "{} does not exist: the service is not running (or has never started)",
                file.display()
            )),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(status) => Self::judge(file, status, now),
            Err(detail) => Self {
                verdict: Verdict::NotRunning,
                detail: Some(detail),
                file,
                status: None,
            },
        }
    }

    fn judge(file: PathBuf, status: Status, now: SystemTime) -> Self {
        let age = Duration::from_millis(unix_ms(now).saturating_sub(status.updated_unix_ms));
        let (verdict, detail) = if status.state == TunnelState::Stopped {
            (Verdict::NotRunning, None)
        } else if age > STALE_AFTER {
            (
                Verdict::NotRunning,
                Some(format!(
                    "the status was last written {} s ago: the service is not running",
                    age.as_secs()
                )),
            )
        } else if status.state == TunnelState::Up && status.healthy {
            (Verdict::Up, None)
        } else {
            (Verdict::Down, None)
        };
        Self {
            verdict,
            detail,
            file,
            status: Some(status),
        }
    }

    /// The plain text `edge-connector status` prints.
    pub fn render(&self, now: SystemTime) -> String {
        match (&self.status, &self.detail) {
            (_, Some(detail)) => format!("status unknown: {detail}\n"),
            (Some(status), None) => status.render(now),
            (None, None) => "status unknown\n".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;

    fn up(calls: usize) -> Status {
        let h = Health::new();
        h.tunnel_up("quic", "rt.example.com:4433".into(), None);
        let mut s = Status::of(&h.snapshot(), Instant::now(), SystemTime::now());
        s.calls_in_flight = calls;
        s
    }

    #[test]
    fn status_headline_says_transport_remote_proxy_and_calls() {
        assert_eq!(
            up(3).headline(),
            "connected over quic to rt.example.com:4433, 3 calls in flight"
        );
        assert_eq!(
            up(1).headline(),
            "connected over quic to rt.example.com:4433, 1 call in flight"
        );
        let h = Health::new();
        h.tunnel_up(
            "tcp",
            "rt.example.com:443".into(),
            Some("proxy.corp:3128".into()),
        );
        let s = Status::of(&h.snapshot(), Instant::now(), SystemTime::now());
        assert_eq!(
            s.headline(),
            "connected over tcp to rt.example.com:443 via proxy.corp:3128, 0 calls in flight"
        );
    }

    #[test]
    fn status_headline_without_a_tunnel_gives_the_reason() {
        let h = Health::new();
        let s = Status::of(&h.snapshot(), Instant::now(), SystemTime::now());
        assert_eq!(s.headline(), "no tunnel yet: connecting to the runtime");
        h.attempt_failed("cannot connect to rt:4433: handshake timed out".into());
        h.attempt_failed("cannot connect to rt:4433: handshake timed out".into());
        let s = Status::of(&h.snapshot(), Instant::now(), SystemTime::now());
        assert_eq!(
            s.headline(),
            "no tunnel: cannot connect to rt:4433: handshake timed out (2 failed attempts)"
        );
    }

    #[test]
    fn status_plain_summary_has_since_and_round_trip_age() {
        let s = up(3);
        let now = UNIX_EPOCH + Duration::from_millis(s.updated_unix_ms + 2_000);
        let text = s.render(now);
        assert!(
            text.starts_with("connected over quic to rt.example.com:4433 since "),
            "{text}"
        );
        assert!(
            text.contains(", last round trip 2 s ago, 3 calls in flight"),
            "{text}"
        );
    }

    #[test]
    fn status_file_round_trips_and_is_private_to_its_group() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = up(2);
        s.write(&dir.path().join(FILE_NAME)).unwrap();
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o037,
            0,
            "no group write, nothing for others: {mode:o}"
        );
        let report = Report::read(dir.path(), SystemTime::now());
        assert_eq!(report.verdict, Verdict::Up);
        assert_eq!(report.status, Some(s));
    }

    #[test]
    fn status_verdicts_up_down_and_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Report::read(dir.path(), SystemTime::now());
        assert_eq!(missing.verdict, Verdict::NotRunning);
        assert_eq!(missing.verdict.exit_code(), 3);

        let fresh = up(0);
        let now = UNIX_EPOCH + Duration::from_millis(fresh.updated_unix_ms);
        assert_eq!(
            Report::judge(PathBuf::new(), fresh.clone(), now).verdict,
            Verdict::Up
        );
        let stale = Report::judge(PathBuf::new(), fresh.clone(), now + STALE_AFTER * 2);
        assert_eq!(stale.verdict, Verdict::NotRunning);
        assert!(stale.render(now).contains("not running"));

        let silent = Status {
            healthy: false,
            ..fresh.clone()
        };
        let report = Report::judge(PathBuf::new(), silent, now);
        assert_eq!(
            (report.verdict, report.verdict.exit_code()),
            (Verdict::Down, 1)
        );

        let stopped = Status {
            state: TunnelState::Stopped,
            ..fresh
        };
        assert_eq!(
            Report::judge(PathBuf::new(), stopped, now).verdict,
            Verdict::NotRunning
        );

        std::fs::write(dir.path().join(FILE_NAME), "{not json").unwrap();
        assert_eq!(
            Report::read(dir.path(), SystemTime::now()).verdict,
            Verdict::NotRunning
        );
    }
}
