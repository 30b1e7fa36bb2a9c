//! A fleet of real `edge-connector run` processes (200 unless `E2E_WAVE_CONNECTORS` says
//! otherwise) reconnecting over QUIC after the runtime is killed with SIGKILL and restarted on
//! the same data directory and ports under a handshake rate below the wave: every connector
//! comes back, the runtime never admits beyond its rate, and nobody comes back twice.
//!
//! When a connector is back is read from its own status file (`status.json`): `state` up with
//! `since_unix_ms` after the kill is the moment its new tunnel was established, stamped by the
//! connector itself, so the poll interval does not blur it. `connector list` cannot say it: after
//! a SIGKILL the store still says "online" for every connector until the flag goes stale. The
//! runtime's side is its "tunnel up" log line (one per admitted tunnel, after the hello), which
//! gives the admissions per second and per connector.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use cloud_runtime::tunnel::handshake_rate;
use e2e::{Connector, Process, Runtime, run_ok};
use edge_connector::tunnel::{dial, supervisor};
use serde_json::Value;

/// Connectors in the wave unless `E2E_WAVE_CONNECTORS` says otherwise.
const DEFAULT_CONNECTORS: usize = 200;

/// The restarted runtime's handshakes per second: a tenth of the default wave, which
/// notices the restart within one heartbeat interval, so most are told to come back later.
const WAVE_RATE: u32 = 20;

/// The first runtime admits the whole fleet at once: the initial start is not under test.
const START_RATE: u32 = 10_000;

/// Parallel enrollments (each is a `token create` and an `enroll` process).
const ENROLL_THREADS: usize = 8;

/// The connector log line of a Busy close honoured.
const BUSY_LINE: &str = "runtime busy with other connectors' handshakes; retrying as it asked";

/// The runtime log line of a tunnel admitted and registered.
const TUNNEL_UP: &str = "tunnel up";

/// The runtime log line of a new tunnel refused by the handshake rate (debug).
const RATE_REFUSED: &str = "tunnel refused: handshake rate reached";

/// The runtime log line of a new tunnel let through by the handshake rate (debug).
const RATE_ADMITTED: &str = "tunnel admitted by the handshake rate";

fn connector_count() -> usize {
    std::env::var("E2E_WAVE_CONNECTORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_CONNECTORS)
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A connector's status file: `(state, since_unix_ms)`.
fn status(state_dir: &Path) -> Option<(String, i64)> {
    let text = std::fs::read_to_string(state_dir.join("status.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some((
        v["state"].as_str()?.to_owned(),
        v["since_unix_ms"].as_i64()?,
    ))
}

/// When the connector's current tunnel came up, if it is up and came up after `after_ms`.
fn up_since(state_dir: &Path, after_ms: i64) -> Option<i64> {
    status(state_dir)
        .and_then(|(state, since)| (state == "up" && since >= after_ms).then_some(since))
}

/// The Unix ms of a tracing line (`2026-12-06T20:40:00.123456Z  INFO ...`).
fn log_time_ms(line: &str) -> Option<i64> {
    let stamp = line.split_whitespace().next()?;
    let (date, clock) = stamp.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(str::parse::<i32>);
    let (year, month, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut c = hms.split(':').map(str::parse::<u8>);
    let (h, m, s) = (c.next()?.ok()?, c.next()?.ok()?, c.next()?.ok()?);
    let micros: u32 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    let date = time::Date::from_calendar_date(
        year,
        u8::try_from(month).ok()?.try_into().ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let t = time::Time::from_hms_micro(h, m, s, micros).ok()?;
    let at = time::PrimitiveDateTime::new(date, t).assume_utc();
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The value of `key=` in a tracing line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Lines of `log` containing `what`, with their Unix ms.
fn timed_lines<'a>(log: &'a str, what: &str) -> Vec<(i64, &'a str)> {
    log.lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| Some((log_time_ms(l)?, l)))
        .collect()
}

/// The most events within any window of `width` ms (sorted `times`).
fn max_in_window(times: &[i64], width: i64) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for (hi, t) in times.iter().enumerate() {
        while t - times[lo] >= width {
            lo += 1;
        }
        best = best.max(hi + 1 - lo);
    }
    best
}

/// Counts per bucket of `width` ms from `origin`, printed with bars.
fn histogram(title: &str, times_ms: &[i64], origin: i64, width: i64) {
    let mut buckets: BTreeMap<i64, usize> = BTreeMap::new();
    for t in times_ms {
        *buckets.entry((t - origin).max(0) / width).or_default() += 1;
    }
    let last = buckets.keys().next_back().copied().unwrap_or(0);
    let most = buckets.values().copied().max().unwrap_or(0).max(1);
    let scale = most.div_ceil(60);
    println!("{title} (bucket {width} ms, one # per {scale}):");
    for b in 0..=last {
        let n = buckets.get(&b).copied().unwrap_or(0);
        println!(
            "  {:>6.1}-{:<6.1}s {:>4} {}",
            (b * width) as f64 / 1000.0,
            ((b + 1) * width) as f64 / 1000.0,
            n,
            "#".repeat(n.div_ceil(scale))
        );
    }
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

/// A TCP load balancer in front of the runtime's HTTPS port that names each connection's
/// client in a PROXY protocol header, each a different address: the fleet enrolls as from
/// `n` hosts, not one address drawing on one bucket of the per-address enrollment limit.
struct ProxyFront {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl ProxyFront {
    fn start(upstream: u16) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for (i, client) in (0u32..).zip(listener.incoming()) {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                std::thread::spawn(move || {
                    let _ = forward(client, upstream, i);
                });
            }
        });
        Ok(Self { port, stop })
    }
}

impl Drop for ProxyFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Sends the PROXY header naming client 10.x.y.z (by `i`), then copies both ways.
fn forward(client: TcpStream, upstream: u16, i: u32) -> std::io::Result<()> {
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    let [_, a, b, c] = (i + 1).to_be_bytes();
    write!(
        server,
        "PROXY TCP4 10.{a}.{b}.{c} 127.0.0.1 40000 {upstream}\r\n"
    )?;
    let (mut from_client, mut to_server) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let (mut from_server, mut to_client) = (server, client);
    let _ = std::io::copy(&mut from_server, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

/// Enrolls connector `name` of `tenant` through `front`.
fn enroll(rt: &Runtime, front: &ProxyFront, tenant: &str, name: &str) -> Connector {
    let tok = rt.token(tenant, "15m");
    let state_dir = rt.dir.path().join(name);
    run_ok(
        Connector::cli()
            .args(["enroll", "--runtime"])
            .arg(format!("localhost:{}", front.port))
            .args([
                "--token",
                &tok.token,
                "--ca-fingerprint",
                &tok.ca_fingerprint,
            ])
            .arg("--state-dir")
            .arg(&state_dir),
    );
    Connector {
        state_dir,
        id: tok.connector_id,
        process: None,
        env: Vec::new(),
    }
}

/// Enrolls `n` connectors, alternately of acme and globex, from `ENROLL_THREADS` threads.
fn enroll_fleet(rt: &Runtime, n: usize) -> Result<Vec<Connector>> {
    let front = ProxyFront::start(rt.https_port)?;
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|s| {
        for _ in 0..ENROLL_THREADS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let tenant = if i.is_multiple_of(2) {
                        "acme"
                    } else {
                        "globex"
                    };
                    let c = enroll(rt, &front, tenant, &format!("w{i:03}"));
                    done.lock().unwrap_or_else(|p| p.into_inner()).push(c);
                }
            });
        }
    });
    Ok(done.into_inner().unwrap_or_else(|p| p.into_inner()))
}

#[test]
fn a_fleet_killed_runtime_restart_all_come_back_once_within_the_rate_and_no_second_wave()
-> Result<()> {
    let n = connector_count();
    let suite = Instant::now();
    let mut rt = Runtime::init()?;
    // Enrollment comes through the load balancer in front of HTTPS (see [`ProxyFront`]).
    rt.serve_args = vec![
        "--tunnel-handshake-rate".into(),
        START_RATE.to_string(),
        "--trusted-proxy".into(),
        "127.0.0.1/32".into(),
    ];
    rt.start()?;

    let mut fleet = enroll_fleet(&rt, n)?;
    let enrolled = suite.elapsed();
    for c in &mut fleet {
        let mut cmd = Connector::cli();
        cmd.args(["run", "--transport", "quic", "--state-dir"])
            .arg(&c.state_dir);
        c.process = Some(Process::spawn(cmd, c.state_dir.with_extension("log"))?);
    }
    let up_limit = Duration::from_secs(60);
    e2e::wait_for(up_limit, "the whole fleet online", || {
        fleet
            .iter()
            .all(|c| up_since(&c.state_dir, 0).is_some())
            .then_some(())
    })
    .with_context(|| {
        fleet
            .iter()
            .filter(|c| up_since(&c.state_dir, 0).is_none())
            .map(|c| c.log())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let online = rt.connectors();
    ensure!(
        online.iter().filter(|r| r["status"] == "online").count() == n,
        "connector list disagrees with the status files: {online:?}"
    );
    let started = suite.elapsed();

    // The runtime dies without a word; the new one starts on the same data and ports.
    if let Some(mut p) = rt.serve.take() {
        p.kill();
    }
    let killed_ms = unix_ms(SystemTime::now());
    rt.serve_args = vec!["--tunnel-handshake-rate".into(), WAVE_RATE.to_string()];
    rt.serve_env = vec![(
        "RUST_LOG".into(),
        "info,cloud_runtime::tunnel::listener=debug".into(),
    )];
    let restart_ms = unix_ms(SystemTime::now());
    rt.start()?;

    // Back within: the loss noticed (a QUIC keep-alive answered by the new runtime's stateless
    // reset, or at worst the idle timeout), one backoff step at its cap, and the wave's spread:
    // the longest wait the runtime asks of a refused connector when the whole fleet waits
    // (plus the connector's tenth of jitter).
    let spread = handshake_rate::spread_bound(
        u32::try_from(n).unwrap_or(u32::MAX),
        std::num::NonZeroU32::new(WAVE_RATE).context("rate")?,
    );
    let bound = dial::IDLE_TIMEOUT + supervisor::BACKOFF_CAP + spread + spread / 10;
    let mut back_ms: Vec<Option<i64>> = vec![None; n];
    let poll_start = Instant::now();
    while back_ms.iter().any(Option::is_none) && poll_start.elapsed() < bound {
        for (i, c) in fleet.iter().enumerate() {
            if back_ms[i].is_none() {
                back_ms[i] = up_since(&c.state_dir, killed_ms);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let late: Vec<&Connector> = fleet
        .iter()
        .zip(&back_ms)
        .filter(|(_, b)| b.is_none())
        .map(|(c, _)| c)
        .collect();
    ensure!(
        late.is_empty(),
        "{} of {n} connectors not back within {bound:?}; first: {}\n{}",
        late.len(),
        late[0].id,
        late[0].log()
    );
    let wave_done = suite.elapsed();
    // Each learnt of the restart from the restarted runtime (its stateless reset of the old
    // connection), not from its silence.
    for c in &fleet {
        ensure!(
            !c.log().contains("HeartbeatTimeout"),
            "{} noticed the restart only by missed heartbeats:\n{}",
            c.id,
            c.log()
        );
    }
    // The restarted runtime cleared the online flags at start: online now means back.
    let rows = rt.connectors();
    ensure!(
        rows.iter().filter(|r| r["status"] == "online").count() == n,
        "connector list disagrees with the status files: {rows:?}"
    );

    // No second wave: for as long as a tunnel that came up but then failed would take to be
    // declared lost, every connector keeps the tunnel it came back with.
    let watch = shared::control::DEFAULT_HEARTBEAT_INTERVAL * shared::control::MISSED_HEARTBEATS;
    std::thread::sleep(watch);
    for (c, back) in fleet.iter().zip(&back_ms) {
        let now = status(&c.state_dir);
        ensure!(
            now.as_ref()
                .is_some_and(|(s, since)| s == "up" && Some(*since) == *back),
            "{} reconnected again after the wave: {now:?}\n{}",
            c.id,
            c.log()
        );
    }
    for c in &mut fleet {
        let p = c.process.as_mut().context("running")?;
        ensure!(p.try_wait().is_none(), "{} exited:\n{}", c.id, c.log());
    }

    // The runtime's account: one admission per connector since the restart, none replaced.
    let log = rt.serve.as_ref().context("serve")?.log_text();
    let ups = timed_lines(&log, TUNNEL_UP);
    let mut per_connector: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, line) in &ups {
        *per_connector
            .entry(field(line, "connector").unwrap_or("?"))
            .or_default() += 1;
    }
    for c in &fleet {
        let admitted = per_connector.get(c.id.as_str()).copied().unwrap_or(0);
        ensure!(
            admitted == 1,
            "{} admitted {admitted} times after the restart",
            c.id
        );
    }
    ensure!(
        ups.len() == n,
        "{} tunnels admitted for {n} connectors",
        ups.len()
    );
    ensure!(
        !log.contains("replaced by a newer tunnel") && !log.contains("tunnel closed"),
        "a tunnel was replaced or closed after the wave:\n{log}"
    );

    // Never beyond the rate: the limiter lets `rate` through per second after a burst of as
    // many, so no window of one second holds more than twice the rate. Timed at the rate
    // check itself (its debug line), not at the hello that follows.
    let mut admitted: Vec<i64> = timed_lines(&log, RATE_ADMITTED)
        .iter()
        .map(|(t, _)| *t)
        .collect();
    admitted.sort_unstable();
    let busiest = max_in_window(&admitted, 1000);
    let ceiling = 2 * WAVE_RATE as usize;

    // The report.
    let mut delays: Vec<i64> = back_ms.iter().flatten().map(|t| t - restart_ms).collect();
    delays.sort_unstable();
    let refusals = timed_lines(&log, RATE_REFUSED);
    let busy_per_connector: Vec<usize> = fleet
        .iter()
        .map(|c| c.log().matches(BUSY_LINE).count())
        .collect();
    let told_busy = busy_per_connector.iter().filter(|b| **b > 0).count();
    let most_busy = busy_per_connector.iter().copied().max().unwrap_or(0);
    println!("{n} connectors (QUIC), runtime killed -9 and restarted at {WAVE_RATE} handshakes/s:");
    histogram(
        "reconnect time after the restart",
        &back_ms.iter().flatten().copied().collect::<Vec<_>>(),
        restart_ms,
        1000,
    );
    println!(
        "p50 {} ms, p90 {} ms, max {} ms (bound {} ms)",
        percentile(&delays, 0.5),
        percentile(&delays, 0.9),
        delays.last().copied().unwrap_or(0),
        bound.as_millis()
    );
    println!(
        "told Busy: {told_busy} of {n} connectors, {} Busy closes honoured in all (at most {most_busy} for one); \
         the runtime logged {} refusals",
        busy_per_connector.iter().sum::<usize>(),
        refusals.len()
    );
    histogram(
        "handshakes admitted per second",
        &admitted,
        restart_ms,
        1000,
    );
    histogram(
        "handshakes refused per second",
        &refusals.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        restart_ms,
        1000,
    );
    println!(
        "busiest second (sliding): {busiest} admitted (ceiling {ceiling}); no reconnect in the {watch:?} after"
    );
    println!(
        "wall time: enrolled in {enrolled:?}, all online at {started:?}, wave over at {wave_done:?}, suite {:?}",
        suite.elapsed()
    );
    ensure!(
        busiest <= ceiling,
        "{busiest} tunnels admitted within one second at {WAVE_RATE}/s"
    );
    ensure!(
        told_busy > 0 || n <= WAVE_RATE as usize,
        "a wave beyond the rate was never told to wait"
    );
    // Every refusal reached its connector as "retry after" and was honoured as such (none
    // mistaken for a lost tunnel and retried on the short backoff instead).
    ensure!(
        busy_per_connector.iter().sum::<usize>() == refusals.len(),
        "the runtime refused {} handshakes, the connectors honoured {} retry-afters",
        refusals.len(),
        busy_per_connector.iter().sum::<usize>()
    );
    Ok(())
}
