//! Load generation and measurement shared by the benchmarks: closed-loop workers, latency
//! percentiles, and CPU time of the processes involved read from /proc.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Concurrencies every benchmark steps through.
pub const CONCURRENCY: [usize; 4] = [1, 16, 64, 256];

/// User + system CPU time of a process, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may contain spaces; the numeric fields start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are stat fields 14 and 15, i.e. 11 and 12 after the ')'.
    let hz = 100; // USER_HZ on Linux
    Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / hz)
}

/// The outcome of one load step.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Successful calls.
    pub calls: usize,
    /// Failed calls.
    pub errors: usize,
    /// Wall time of the step.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// CPU time of the measured processes during the step.
    pub cpu: Duration,
}

impl Stats {
    /// Calls per second.
    pub fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU microseconds per call.
    pub fn cpu_per_call_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.calls.max(1) as f64
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

/// Runs `concurrency` workers calling `f` back to back for `secs`, measuring the CPU of
/// `pids`.
pub async fn load<F, Fut>(concurrency: usize, secs: Duration, pids: &[u32], f: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let f = Arc::new(f);
    let cpu0: Duration = pids.iter().map(|p| cpu_time(*p)).sum();
    let start = Instant::now();
    let deadline = start + secs;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if f().await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    let cpu = pids
        .iter()
        .map(|p| cpu_time(*p))
        .sum::<Duration>()
        .saturating_sub(cpu0);
    all.sort();
    Stats {
        calls: all.len(),
        errors,
        elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        cpu,
    }
}

/// Prints the table header.
pub fn print_header() {
    println!(
        "{:<12} {:>5} {:>10} {:>10} {:>10} {:>8} {:>12} {:>9}",
        "path", "conc", "calls/s", "p50 µs", "p99 µs", "errors", "cpu µs/call", "vs base"
    );
}

/// Prints one row, with its rate as a ratio of `base`'s.
pub fn print_row(name: &str, concurrency: usize, s: &Stats, base: &Stats) {
    println!(
        "{:<12} {:>5} {:>10.0} {:>10} {:>10} {:>8} {:>12.1} {:>8.3}x",
        name,
        concurrency,
        s.rate(),
        s.p50.as_micros(),
        s.p99.as_micros(),
        s.errors,
        s.cpu_per_call_us(),
        s.rate() / base.rate()
    );
}

/// Seconds per load step, from `BENCH_SECS` (default 3).
pub fn step_duration() -> Duration {
    Duration::from_secs(
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    )
}

/// Writes an enrolled connector's configuration; returns its path.
pub type Configure<'a> = &'a dyn Fn(&crate::Connector) -> anyhow::Result<std::path::PathBuf>;

/// Starts the runtime of `rt` inside this process (as `serve` would), serving the tunnel over
/// QUIC and over SSH on TCP (on a free loopback port).
pub async fn start_runtime_in_process(
    rt: &crate::Runtime,
    mcp: cloud_runtime::server::McpServeOptions,
) -> anyhow::Result<cloud_runtime::server::Runtime> {
    let runtime = cloud_runtime::server::start(cloud_runtime::server::ServeOptions {
        data_dir: cloud_runtime::data_dir::DataDir::new(rt.data_dir())
            .with_database(Some(rt.database_url().parse()?)),
        replica_id: cloud_runtime::replica::ReplicaId::of_this_host(),
        nats: None,
        key_encryption_key: None,
        quic_listen: format!("127.0.0.1:{}", rt.quic_port).parse()?,
        https_listen: format!("127.0.0.1:{}", rt.https_port).parse()?,
        quic_advertise: None,
        tunnel_handshake_rate: std::num::NonZeroU32::MAX,
        ssh_listen: Some(format!("127.0.0.1:{}", crate::free_port()).parse()?),
        ssh_advertise: None,
        cert_ttl: Duration::from_secs(24 * 3600),
        heartbeat_interval: Duration::from_secs(5),
        mcp,
        otlp_endpoint: None,
        metrics_listen: None,
        debug_frame_log: None,
        https: Default::default(),
    })
    .await?;
    Ok(runtime)
}

/// Enrolls `connector` against the running runtime of `rt` and starts it, as the packages
/// run it (`run --config`, vault, local policy allowing the diagnostic tools), on
/// `transport` (`quic`, `tcp`); returns its process id once the runtime lists it online.
///
/// Its audit log removes its oldest files at a 128 MiB bound: at 2,000 calls/s a soak
/// writes about 1.5 GB an hour, and at the default bound (1 GiB, then refuse calls) it would
/// stop serving after about ten minutes, as it should.
pub fn start_connector(
    rt: &crate::Runtime,
    connector: &mut crate::PendingConnector,
    transport: &str,
) -> anyhow::Result<u32> {
    connector.enroll_now(rt)?;
    let configure = |c: &crate::Connector| {
        c.configure(
            &format!(
                "[tunnel]\ntransport = \"{transport}\"\n\n[audit]\nmax_file_bytes = 16777216\n\
                 max_total_bytes = 134217728\non_full = \"rotate\"\n"
            ),
            "version = 1\n[[allow]]\ntools = [\"diag.*\"]\n",
            &[],
        )
    };
    connector.start_configured(rt, &configure)?;
    connector
        .process()
        .map(|p| p.pid())
        .ok_or_else(|| anyhow::anyhow!("connector did not start"))
}

/// Starts the runtime of `rt` inside this process (as `serve` would) and brings `connector`
/// up against it (with the configuration `configure` writes after enrollment, if any);
/// returns the runtime and the connector's process id.
pub async fn start_in_process(
    rt: &crate::Runtime,
    connector: &mut crate::PendingConnector,
    mcp: cloud_runtime::server::McpServeOptions,
    configure: Option<Configure<'_>>,
) -> anyhow::Result<(cloud_runtime::server::Runtime, u32)> {
    let runtime = start_runtime_in_process(rt, mcp).await?;
    connector.enroll_now(rt)?;
    match configure {
        Some(f) => connector.start_configured(rt, f)?,
        None => connector.start(rt, &[])?,
    }
    let pid = connector
        .process()
        .map(|p| p.pid())
        .ok_or_else(|| anyhow::anyhow!("connector did not start"))?;
    Ok((runtime, pid))
}
