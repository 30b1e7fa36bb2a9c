//! Tunnel benchmark: diagnostic calls through runtime → QUIC tunnel → connector process, at
//! several concurrencies, beside the same tool called in-process (no tunnel), in one run.
//!
//! The runtime runs inside this process (its library's `server::start`, as `serve` does), so
//! the runtime's CPU figure includes the load generator; the connector is the real release
//! binary. CPU per call is user + system time from /proc of both processes.
//!
//! Run: `cargo build --release --bins && cargo bench -p e2e --bench tunnel`
//! (`BENCH_SECS` sets seconds per step, default 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cloud_runtime::data_dir::DataDir;
use cloud_runtime::server::{self, ServeOptions};
use cloud_runtime::tunnel::call::NoPeer;
use cloud_runtime::tunnel::registry::CallSpec;
use e2e::{Connector, Runtime};
use edge_connector::tools::{CallContext, ToolContext, Toolbox};
use shared::call::Call;
use shared::identity::TenantId;
use shared::wire;

const CONCURRENCY: [usize; 4] = [1, 16, 64, 256];

/// User + system CPU time of a process, from /proc/<pid>/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat; here 0-based after the ')' at 11 and 12.
    let hz = 100; // USER_HZ on Linux
    Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / hz)
}

struct Stats {
    calls: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    cpu: Duration,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

/// Runs `concurrency` workers calling `f` until `secs` pass.
async fn load<F, Fut>(concurrency: usize, secs: Duration, pids: &[u32], f: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
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
    let cpu: Duration = pids
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

fn ping_call() -> Call {
    let req = wire::CallRequest {
        call_id: 1,
        tool: "diag.ping".into(),
        arguments_json: b"{}".to_vec(),
        timeout_ms: 10_000,
        traceparent: String::new(),
        tracestate: String::new(),
        caller: Some(wire::Caller {
            tenant: "acme".into(),
            user: "bench".into(),
            agent: "bench".into(),
        }),
    };
    Call::try_from(req).unwrap_or_else(|e| panic!("{e}"))
}

fn main() -> Result<()> {
    let secs = Duration::from_secs(
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let rt = Runtime::init()?;
    let mut connector = Connector::enroll_offline(&rt, "acme", "bench")?;
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio_rt.block_on(async move {
        let runtime = server::start(ServeOptions {
            data_dir: DataDir::new(rt.data_dir()),
            quic_listen: format!("127.0.0.1:{}", rt.quic_port).parse()?,
            https_listen: format!("127.0.0.1:{}", rt.https_port).parse()?,
            quic_advertise: None,
            cert_ttl: Duration::from_secs(24 * 3600),
            heartbeat_interval: Duration::from_secs(5),
            mcp: Default::default(),
        })
        .await?;
        connector.enroll_now(&rt)?;
        connector.start(&rt, &[])?;
        let cpid = connector
            .process()
            .map(|p| p.pid())
            .context("connector pid")?;
        let me = std::process::id();
        let tenant: TenantId = "acme".parse()?;
        let registry = runtime.registry.clone();

        let identity = format!(
            "spiffe://localhost/tenant/acme/connector/{}",
            connector.connector_id
        )
        .parse()?;
        let toolbox = Arc::new(Toolbox::new(ToolContext {
            identity,
            version: "bench",
        }));

        println!(
            "tunnel benchmark: diag.ping, {} s per step, 2-core machine",
            secs.as_secs()
        );
        println!(
            "{:<10} {:>5} {:>10} {:>10} {:>10} {:>10} {:>12} {:>8}",
            "path", "conc", "calls/s", "p50 µs", "p99 µs", "errors", "cpu µs/call", "vs base"
        );
        for &c in &CONCURRENCY {
            let tb = toolbox.clone();
            let base = load(c, secs, &[me], move || {
                let tb = tb.clone();
                async move {
                    let call = ping_call();
                    let (tx, _rx) = tokio::sync::mpsc::channel(1);
                    let ctx = CallContext::new(tx);
                    tb.dispatch(&call, &ctx).await.is_ok()
                }
            })
            .await;
            let reg = registry.clone();
            let t = tenant.clone();
            let tunnel = load(c, secs, &[me, cpid], move || {
                let reg = reg.clone();
                let t = t.clone();
                async move {
                    let spec = CallSpec {
                        tool: "diag.ping".into(),
                        arguments_json: b"{}".to_vec(),
                        timeout: Duration::from_secs(10),
                        caller: wire::Caller {
                            tenant: "acme".into(),
                            user: "bench".into(),
                            agent: "bench".into(),
                        },
                        traceparent: String::new(),
                    };
                    matches!(reg.call(&t, None, spec, &NoPeer).await, Ok(out) if !out.is_error)
                }
            })
            .await;
            for (name, s) in [("in-process", &base), ("tunnel", &tunnel)] {
                let cpu_per_call = s.cpu.as_secs_f64() * 1e6 / s.calls.max(1) as f64;
                let ratio = if name == "tunnel" {
                    format!("{:.3}x", tunnel.rate() / base.rate())
                } else {
                    "1x".into()
                };
                println!(
                    "{:<10} {:>5} {:>10.0} {:>10} {:>10} {:>10} {:>12.1} {:>8}",
                    name,
                    c,
                    s.rate(),
                    s.p50.as_micros(),
                    s.p99.as_micros(),
                    s.errors,
                    cpu_per_call,
                    ratio
                );
            }
        }
        let rss = std::fs::read_to_string(format!("/proc/{cpid}/status")).unwrap_or_default();
        if let Some(line) = rss.lines().find(|l| l.starts_with("VmHWM")) {
            println!(
                "connector peak RSS: {}",
                line.trim_start_matches("VmHWM:").trim()
            );
        }
        drop(connector);
        runtime.shutdown().await;
        Ok(())
    })
}
