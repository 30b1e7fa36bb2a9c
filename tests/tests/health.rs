//! Truthful health through the real binaries: the systemd notification contract (READY only
//! after the tunnel is up, no WATCHDOG while the runtime is unreachable, STATUS text) with
//! a test NOTIFY_SOCKET listener, `edge-connector status`, and the exit after
//! `[tunnel] exit_after_disconnected`.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::{Connector, Process, Runtime, run, wait_for};
use nix::sys::signal::Signal;
use serde_json::Value;

/// A stand-in for systemd's notification socket.
struct NotifyListener {
    socket: UnixDatagram,
    /// Every message so far, in order, one `KEY=VALUE` line each.
    seen: Vec<String>,
}

impl NotifyListener {
    fn bind(path: &Path) -> Result<Self> {
        let socket = UnixDatagram::bind(path)?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(Self {
            socket,
            seen: Vec::new(),
        })
    }

    /// Reads what has arrived; returns the new lines.
    fn poll(&mut self) -> Vec<String> {
        let mut new = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
            new.extend(text.lines().map(str::to_owned));
        }
        self.seen.extend(new.iter().cloned());
        new
    }

    /// Waits for a line `pred` accepts; returns it and the lines that came before it.
    fn wait_line(
        &mut self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> Result<(String, Vec<String>)> {
        let start = Instant::now();
        let mut before = Vec::new();
        loop {
            for line in self.poll() {
                if pred(&line) {
                    return Ok((line, before));
                }
                before.push(line);
            }
            if start.elapsed() > limit {
                bail!("timed out after {limit:?} waiting for {what}; seen: {before:?}");
            }
        }
    }
}

/// `edge-connector status [--json]` on `state_dir`: exit code and output.
fn status(state_dir: &Path, json: bool) -> (i32, String) {
    let mut cmd = Connector::cli();
    cmd.arg("status").arg("--state-dir").arg(state_dir);
    if json {
        cmd.arg("--json");
    }
    let out = run(&mut cmd);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn status_json(state_dir: &Path) -> Result<(i32, Value)> {
    let (code, text) = status(state_dir, true);
    Ok((
        code,
        serde_json::from_str(&text).with_context(|| text.clone())?,
    ))
}

#[test]
fn notify_ready_after_tunnel_up_and_no_watchdog_without_runtime() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let c = Connector::enroll(&rt, "acme", "c1")?;
    rt.stop()?;

    let socket_path = rt.dir.path().join("notify.sock");
    let mut notify = NotifyListener::bind(&socket_path)?;
    let mut cmd = Connector::cli();
    cmd.arg("run")
        .arg("--state-dir")
        .arg(&c.state_dir)
        .env("NOTIFY_SOCKET", &socket_path)
        // Watchdog on, pinged every second (half of it); no WATCHDOG_PID: any pid is ours.
        .env("WATCHDOG_USEC", "2000000");
    let mut connector = Process::spawn(cmd, c.state_dir.with_extension("log"))?;

    // Without a runtime: a status, never READY or WATCHDOG.
    let (first, before) = notify.wait_line(Duration::from_secs(30), "a first STATUS", |l| {
        l.starts_with("STATUS=")
    })?;
    assert!(before.is_empty(), "{before:?}");
    assert!(first.starts_with("STATUS=no tunnel"), "{first}");
    let (code, report) = wait_for(Duration::from_secs(30), "a status file", || {
        status_json(&c.state_dir)
            .ok()
            .filter(|(_, r)| r["status"].is_object())
    })?;
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["verdict"], "down", "{report}");

    // The runtime comes up: READY only once it has logged the tunnel up.
    rt.start()?;
    let (_, before) = notify.wait_line(Duration::from_secs(60), "READY=1", |l| l == "READY=1")?;
    let runtime_log = rt.serve.as_ref().map(Process::log_text).unwrap_or_default();
    assert!(
        runtime_log.contains("tunnel up"),
        "READY before the runtime saw the tunnel: {runtime_log}"
    );
    assert!(
        !before.iter().any(|l| l == "WATCHDOG=1"),
        "a watchdog ping before the tunnel: {before:?}"
    );
    let statuses: Vec<&String> = notify
        .seen
        .iter()
        .filter(|l| l.starts_with("STATUS=connected"))
        .collect();
    assert!(
        statuses
            .iter()
            .any(|l| l.starts_with("STATUS=connected over quic to 127.0.0.1:")),
        "{:?}",
        notify.seen
    );
    notify.wait_line(Duration::from_secs(30), "WATCHDOG=1", |l| l == "WATCHDOG=1")?;
    let (code, report) = wait_for(Duration::from_secs(30), "status up", || {
        status_json(&c.state_dir)
            .ok()
            .filter(|(code, _)| *code == 0)
    })?;
    assert_eq!(report["verdict"], "up", "{report}");
    assert_eq!(report["status"]["transport"], "quic", "{report}");
    assert_eq!(code, 0);
    let (_, plain) = status(&c.state_dir, false);
    assert!(
        plain.starts_with("connected over quic to 127.0.0.1:"),
        "{plain}"
    );
    assert!(plain.contains("last round trip"), "{plain}");

    // The runtime dies: the status says so, and the watchdog pings stop.
    if let Some(mut serve) = rt.serve.take() {
        serve.kill();
    }
    notify.wait_line(Duration::from_secs(90), "STATUS=no tunnel", |l| {
        l.starts_with("STATUS=no tunnel")
    })?;
    // Four ping periods with nothing to ping about.
    let quiet_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < quiet_until {
        let lines = notify.poll();
        assert!(
            !lines.iter().any(|l| l == "WATCHDOG=1"),
            "watchdog pinged without a runtime: {lines:?}\n{}",
            connector.log_text()
        );
    }
    let (code, report) = status_json(&c.state_dir)?;
    assert_eq!(report["verdict"], "down", "{report}");
    assert_eq!(code, 1);

    // Stopped: STOPPING=1, and `status` says not running.
    connector.signal(Signal::SIGTERM);
    connector.wait_exit(Duration::from_secs(60))?;
    notify.poll();
    assert!(
        notify.seen.iter().any(|l| l == "STOPPING=1"),
        "{:?}",
        notify.seen
    );
    let (code, report) = status_json(&c.state_dir)?;
    assert_eq!(report["verdict"], "not-running", "{report}");
    assert_eq!(code, 3);
    Ok(())
}

#[test]
fn connector_exits_non_zero_after_exit_after_disconnected() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c2")?;
    let config = c.state_dir.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n\n[tunnel]\nexit_after_disconnected = \"3s\"\n",
            c.state_dir.display().to_string()
        ),
    )?;
    c.start_configured(&rt, &config)?;
    wait_for(Duration::from_secs(30), "status up", || {
        status_json(&c.state_dir)
            .ok()
            .filter(|(code, _)| *code == 0)
    })?;

    if let Some(mut serve) = rt.serve.take() {
        serve.kill();
    }
    let Some(connector) = c.process.as_mut() else {
        bail!("the connector is not running");
    };
    let exit = connector.wait_exit(Duration::from_secs(120))?;
    let log = connector.log_text();
    assert!(!exit.success(), "{exit:?}\n{log}");
    assert!(
        log.contains("no tunnel to the runtime for 3s ([tunnel] exit_after_disconnected)"),
        "{log}"
    );
    let (code, report) = status_json(&c.state_dir)?;
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["status"]["state"], "stopped", "{report}");
    Ok(())
}

#[test]
fn status_says_why_a_revoked_connector_stopped() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c3")?;
    c.start(&rt, &[])?;
    e2e::run_ok(rt.cli().args(["connector", "revoke", &c.id]));
    let Some(connector) = c.process.as_mut() else {
        bail!("the connector is not running");
    };
    let exit = connector.wait_exit(Duration::from_secs(60))?;
    assert!(!exit.success());
    let (code, report) = status_json(&c.state_dir)?;
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["status"]["state"], "stopped", "{report}");
    let reason = report["status"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("revoked"), "{report}");
    let (_, plain) = status(&c.state_dir, false);
    assert!(plain.starts_with("stopped: "), "{plain}");
    Ok(())
}
