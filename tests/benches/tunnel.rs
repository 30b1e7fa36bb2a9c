//! Tunnel benchmark: diagnostic calls through runtime → tunnel → connector process, over QUIC
//! and over SSH on TCP side by side, at several concurrencies, beside the same tool called
//! in-process (no tunnel), in one run; or, with `--soak`, a long run at a moderate rate that
//! watches the connector's memory.
//!
//! The runtime runs inside this process (its library's `server::start`, as `serve` does) and
//! serves both transports; two connectors (the real release binary) run at once, one per
//! transport, on separate tenants (`acme` over QUIC, `globex` over TCP). The runtime's CPU
//! figure includes the load generator; CPU per call is user + system time from /proc of the
//! runtime and the one connector under load. Last, two `bench_connector`s (the connector
//! library serving its diagnostic tools over QUIC) run the same steps, one without the
//! connector's own audit log and one with it, so the log's cost per call shows as a ratio.
//!
//! Run: `cargo build --release --bins && cargo bench -p e2e --bench tunnel`
//! (`BENCH_SECS` sets seconds per step, default 3).
//! Soak: `cargo bench -p e2e --bench tunnel -- --soak 10m [--soak-transport tcp|quic|both]
//! [--soak-rate CALLS_PER_S]` (defaults: both, 2000 calls/s per transport, 16 concurrent).
//! The audit log's rows alone: `cargo bench -p e2e --bench tunnel -- --audit-only`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cloud_runtime::tunnel::call::NoPeer;
use cloud_runtime::tunnel::registry::{CallSpec, Registry};
use e2e::bench::{
    CONCURRENCY, Stats, load, print_header, print_row, start_connector, start_runtime_in_process,
    step_duration,
};
use e2e::{Connector, PendingConnector, Runtime, run_ok};
use edge_connector::tools::{CallContext, ToolContext, Toolbox};
use shared::call::Call;
use shared::identity::TenantId;
use shared::trace::{Kind, Tracing};
use shared::wire;

/// Concurrent callers of the soak, per transport.
const SOAK_CONCURRENCY: usize = 16;
/// How often the soak samples the connectors' RSS for the fit.
const SOAK_SAMPLE: Duration = Duration::from_secs(10);
/// How often the soak prints a line, and the warm-up the fit leaves out.
const SOAK_REPORT: Duration = Duration::from_secs(60);

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
        interactive: false,
        binding: Default::default(),
        user_proof: String::new(),
        approval: String::new(),
    };
    Call::try_from(req).unwrap_or_else(|e| panic!("{e}"))
}

/// One call in flight; true if it succeeded.
type BoxedCall = Pin<Box<dyn Future<Output = bool> + Send>>;

/// One transport under test: its connector, on a tenant of its own.
struct Side {
    /// Row label.
    label: &'static str,
    /// `--transport` value.
    transport: &'static str,
    tenant: &'static str,
    pid: u32,
    /// Kept so the connector process lives as long as the side.
    connector: PendingConnector,
}

impl Side {
    fn start(
        rt: &Runtime,
        label: &'static str,
        transport: &'static str,
        tenant: &'static str,
    ) -> Result<Self> {
        let mut connector = Connector::enroll_offline(rt, tenant, &format!("bench-{transport}"))?;
        let pid = start_connector(rt, &mut connector, transport)?;
        Ok(Self {
            label,
            transport,
            tenant,
            pid,
            connector,
        })
    }

    /// The benchmark connector over QUIC, with its audit log or without.
    fn start_bench(rt: &Runtime, audit: bool, tenant: &'static str) -> Result<Self> {
        let label = if audit { "audit-on" } else { "audit-off" };
        run_ok(rt.cli().args(["tenant", "create", tenant]));
        let mut connector = Connector::enroll_offline(rt, tenant, &format!("bench-{label}"))?;
        connector.enroll_now(rt)?;
        connector.start_bench(rt, audit)?;
        let pid = connector
            .process()
            .map(|p| p.pid())
            .context("bench connector did not start")?;
        Ok(Self {
            label,
            transport: "quic",
            tenant,
            pid,
            connector,
        })
    }

    /// One `diag.ping` through this side's tunnel; true if it succeeded.
    fn call(&self, registry: Arc<Registry>) -> impl Fn() -> BoxedCall + Send + Sync + 'static {
        let tenant_name = self.tenant;
        let tenant: TenantId = tenant_name.parse().unwrap_or_else(|e| panic!("{e}"));
        move || {
            let reg = registry.clone();
            let t = tenant.clone();
            Box::pin(async move {
                let spec = CallSpec {
                    call_id: reg.new_call_id(),
                    tool: "diag.ping".into(),
                    arguments_json: b"{}".to_vec(),
                    timeout: Duration::from_secs(10),
                    caller: wire::Caller {
                        tenant: tenant_name.into(),
                        user: "bench".into(),
                        agent: "bench".into(),
                    },
                    site: shared::policy::Site::default(),
                    traceparent: String::new(),
                    binding: Default::default(),
                    user_proof: String::new(),
                    approval: String::new(),
                };
                matches!(reg.call(&t, None, spec, &NoPeer).await.outcome, Ok(out) if !out.is_error)
            })
        }
    }
}

/// What the command line asks for (`cargo bench` adds `--bench`, which is ignored).
struct Args {
    soak: Option<Duration>,
    soak_transports: Vec<&'static str>,
    soak_rate: u32,
    /// `--audit-only`: just the audit log's cost, not the transports.
    audit_only: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        soak: None,
        soak_transports: vec!["quic", "tcp"],
        soak_rate: 2000,
        audit_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--soak" => {
                let v = it
                    .next()
                    .context("--soak needs a duration (10m, 90s, 1h)")?;
                args.soak = Some(parse_duration(&v)?);
            }
            "--soak-transport" => {
                args.soak_transports = match it.next().as_deref() {
                    Some("tcp") => vec!["tcp"],
                    Some("quic") => vec!["quic"],
                    Some("both") => vec!["quic", "tcp"],
                    other => bail!("--soak-transport takes tcp, quic or both, not {other:?}"),
                };
            }
            "--audit-only" => args.audit_only = true,
            "--soak-rate" => {
                let v = it.next().context("--soak-rate needs calls per second")?;
                args.soak_rate = v.parse().with_context(|| format!("--soak-rate {v:?}"))?;
                if args.soak_rate == 0 {
                    bail!("--soak-rate must be above 0");
                }
            }
            _ => {}
        }
    }
    Ok(args)
}

/// `90s`, `10m`, `1h` (a bare number is seconds).
fn parse_duration(v: &str) -> Result<Duration> {
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = num.parse().with_context(|| format!("duration {v:?}"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("duration {v:?}: use s, m or h"),
    };
    Ok(Duration::from_secs(secs))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let rt = Runtime::init()?;
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio_rt.block_on(async move {
        let runtime = start_runtime_in_process(&rt, Default::default()).await?;
        let registry = runtime.registry.clone();
        let quic = Side::start(&rt, "tunnel", "quic", "acme")?;
        let tcp = Side::start(&rt, "tunnel-tcp", "tcp", "globex")?;
        match args.soak {
            Some(duration) => {
                let sides: Vec<&Side> = [&quic, &tcp]
                    .into_iter()
                    .filter(|s| args.soak_transports.contains(&s.transport))
                    .collect();
                soak(&registry, &sides, duration, args.soak_rate).await;
            }
            None => {
                if !args.audit_only {
                    compare(&registry, &quic, &tcp).await?;
                }
                let off = Side::start_bench(&rt, false, "initech")?;
                let on = Side::start_bench(&rt, true, "umbrella")?;
                audit_cost(&registry, &off, &on).await;
            }
        }
        drop((quic, tcp));
        runtime.shutdown().await;
        Ok(())
    })
}

/// The short benchmark: in-process, QUIC and SSH/TCP at each concurrency, then the two
/// transports side by side, then the connectors' memory.
async fn compare(registry: &Arc<Registry>, quic: &Side, tcp: &Side) -> Result<()> {
    let secs = step_duration();
    let me = std::process::id();
    let identity = format!(
        "spiffe://localhost/tenant/acme/connector/{}",
        quic.connector.connector_id
    )
    .parse()?;
    let tracing = Arc::new(Tracing::new("bench", "0", None)?);
    let toolbox = Arc::new(Toolbox::new(
        ToolContext {
            identity,
            version: "bench",
        },
        Arc::default(),
    ));

    println!(
        "tunnel benchmark: diag.ping, {} s per step, 2-core machine",
        secs.as_secs()
    );
    let idle = [quic, tcp]
        .map(|s| ["VmRSS", "RssAnon", "RssFile"].map(|f| proc_status_kb(s.pid, f).unwrap_or(0)));
    let idle_pss_uss = pss_uss_kb(quic.pid);
    print_header();
    let mut peaks = Vec::new();
    let mut pairs = Vec::new();
    for &c in &CONCURRENCY {
        let tb = toolbox.clone();
        let tr = tracing.clone();
        let base = load(c, secs, &[me], move || {
            let tb = tb.clone();
            let tracing = tr.clone();
            async move {
                let call = ping_call();
                let (tx, _rx) = tokio::sync::mpsc::channel(1);
                let ctx = CallContext::new(
                    tx,
                    false,
                    tracing.clone(),
                    tracing.start("bench", Kind::Server, None),
                );
                tb.dispatch(&call, &ctx).await.is_ok()
            }
        })
        .await;
        print_row("in-process", c, &base, &base);
        let mut both = Vec::new();
        for side in [quic, tcp] {
            reset_peak_rss(side.pid);
            let s = load(c, secs, &[me, side.pid], side.call(registry.clone())).await;
            peaks.push((side.label, c, proc_status_kb(side.pid, "VmHWM")));
            print_row(side.label, c, &s, &base);
            both.push(s);
        }
        pairs.push((c, both));
    }

    println!("QUIC vs SSH/TCP: cpu is runtime (with the load generator) + connector");
    println!(
        "{:>5} {:<9} {:>10} {:>10} {:>10} {:>12}",
        "conc", "transport", "calls/s", "p50 µs", "p99 µs", "cpu µs/call"
    );
    for (c, both) in &pairs {
        if let [q, t] = both.as_slice() {
            print_transport_row(*c, "quic", q);
            print_transport_row(*c, "ssh/tcp", t);
            println!(
                "{:>5} {:<9} {:>9.2}x {:>9.2}x {:>9.2}x {:>11.2}x",
                c,
                "tcp/quic",
                t.rate() / q.rate(),
                ratio(t.p50, q.p50),
                ratio(t.p99, q.p99),
                t.cpu_per_call_us() / q.cpu_per_call_us()
            );
        }
    }

    // RssFile is mapped code (the binary, libc) shared with the page cache; RssAnon is
    // the connector's own heap and stacks.
    let [quic_idle, tcp_idle] = idle;
    println!(
        "connector RSS idle after connecting: {} kB (target ≤ 8 MB): {} kB anonymous, {} kB mapped files",
        quic_idle[0], quic_idle[1], quic_idle[2]
    );
    println!(
        "connector PSS idle: {} kB, USS idle: {} kB",
        idle_pss_uss.0, idle_pss_uss.1
    );
    println!(
        "connector (ssh/tcp) RSS idle after connecting: {} kB: {} kB anonymous, {} kB mapped files",
        tcp_idle[0], tcp_idle[1], tcp_idle[2]
    );
    for (label, c, peak) in peaks {
        match label {
            "tunnel" => println!(
                "connector peak RSS at {c} concurrent: {} kB (target ≤ 16 MB at 64)",
                peak.unwrap_or(0)
            ),
            _ => println!(
                "connector (ssh/tcp) peak RSS at {c} concurrent: {} kB",
                peak.unwrap_or(0)
            ),
        }
    }
    Ok(())
}

/// The connector's own audit log on and off, same library, same tools, same tunnel: what
/// the record costs per call (issue target: CPU per call within 10% with it on).
async fn audit_cost(registry: &Arc<Registry>, off: &Side, on: &Side) {
    let secs = step_duration();
    let me = std::process::id();
    println!(
        "connector audit log off vs on (bench_connector over QUIC; cpu is runtime with the load generator + connector)"
    );
    print_header();
    for &c in &CONCURRENCY {
        let a = load(c, secs, &[me, off.pid], off.call(registry.clone())).await;
        let b = load(c, secs, &[me, on.pid], on.call(registry.clone())).await;
        print_row(off.label, c, &a, &a);
        print_row(on.label, c, &b, &a);
        println!(
            "{:<12} {:>5} audit on/off: cpu per call {:.3}x, calls/s {:.3}x, p50 {:.2}x",
            "",
            c,
            b.cpu_per_call_us() / a.cpu_per_call_us(),
            b.rate() / a.rate(),
            ratio(b.p50, a.p50)
        );
    }
}

fn print_transport_row(c: usize, name: &str, s: &Stats) {
    println!(
        "{:>5} {:<9} {:>10.0} {:>10} {:>10} {:>12.1}",
        c,
        name,
        s.rate(),
        s.p50.as_micros(),
        s.p99.as_micros(),
        s.cpu_per_call_us()
    );
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// Calls and latencies of one soak side since the last report.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: usize,
}

/// Calls `sides` at `rate` calls/s each for `duration`, printing each connector's RSS every
/// minute, then the RSS slope fitted over the samples after the first minute.
async fn soak(registry: &Arc<Registry>, sides: &[&Side], duration: Duration, rate: u32) {
    let names: Vec<&str> = sides.iter().map(|s| s.transport).collect();
    println!(
        "tunnel soak: diag.ping over {}, {} s, {rate} calls/s per transport from {SOAK_CONCURRENCY} callers, 2-core machine",
        names.join(" and "),
        duration.as_secs()
    );
    let start = Instant::now();
    let deadline = start + duration;
    let tallies: Vec<Arc<Mutex<Tally>>> = sides.iter().map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    // Each caller paces itself at its share of the rate, staggered so the calls spread out.
    let period = Duration::from_secs_f64(SOAK_CONCURRENCY as f64 / f64::from(rate));
    for (side, tally) in sides.iter().zip(&tallies) {
        for i in 0..SOAK_CONCURRENCY {
            let f = side.call(registry.clone());
            let tally = tally.clone();
            let first =
                tokio::time::Instant::from_std(start) + period * i as u32 / SOAK_CONCURRENCY as u32;
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(first, period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while Instant::now() < deadline {
                    tick.tick().await;
                    let t = Instant::now();
                    let ok = f().await;
                    let mut g = tally.lock().unwrap_or_else(|e| e.into_inner());
                    if ok {
                        g.latencies.push(t.elapsed());
                    } else {
                        g.errors += 1;
                    }
                }
            }));
        }
    }

    let mut samples: Vec<Vec<(f64, f64)>> = sides.iter().map(|_| Vec::new()).collect();
    let mut next_report = start + SOAK_REPORT.min(duration);
    let mut since_report = start;
    loop {
        let now = Instant::now();
        let next = (now + SOAK_SAMPLE).min(deadline).min(next_report);
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        let t = start.elapsed().as_secs_f64();
        for (side, s) in sides.iter().zip(&mut samples) {
            if let Some(kb) = proc_status_kb(side.pid, "VmRSS") {
                s.push((t, kb as f64));
            }
        }
        let now = Instant::now();
        if now >= next_report || now >= deadline {
            let window = now.duration_since(since_report).as_secs_f64();
            for (side, tally) in sides.iter().zip(&tallies) {
                let Tally {
                    mut latencies,
                    errors,
                } = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
                latencies.sort();
                let p99 = latencies
                    .get(((latencies.len() as f64 - 1.0) * 0.99).round().max(0.0) as usize)
                    .copied()
                    .unwrap_or_default();
                println!(
                    "soak {:>5.0} s {:<8} connector VmRSS {:>6} kB  {:>6.0} calls/s  p99 {:>6} µs  errors {}",
                    t,
                    side.transport,
                    proc_status_kb(side.pid, "VmRSS").unwrap_or(0),
                    latencies.len() as f64 / window,
                    p99.as_micros(),
                    errors
                );
            }
            since_report = now;
            next_report += SOAK_REPORT;
        }
        if now >= deadline {
            break;
        }
    }
    for t in tasks {
        let _ = t.await;
    }

    let warmup = SOAK_REPORT.min(duration / 2).as_secs_f64();
    for (side, s) in sides.iter().zip(&samples) {
        let kept: Vec<(f64, f64)> = s.iter().copied().filter(|(t, _)| *t >= warmup).collect();
        match slope_percent_per_hour(&kept) {
            Some(pct) => println!(
                "soak {:<8} connector RSS slope after {:.0} s: {pct:+.2} %/h (least squares over {} samples every {} s; target flat, under 1 %/h)",
                side.transport,
                warmup,
                kept.len(),
                SOAK_SAMPLE.as_secs()
            ),
            None => println!("soak {:<8} too few RSS samples for a slope", side.transport),
        }
    }
}

/// The least-squares slope of `(seconds, kB)` samples, in percent of their mean per hour.
fn slope_percent_per_hour(samples: &[(f64, f64)]) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let n = samples.len() as f64;
    let mx = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let my = samples.iter().map(|s| s.1).sum::<f64>() / n;
    let sxx: f64 = samples.iter().map(|s| (s.0 - mx).powi(2)).sum();
    let sxy: f64 = samples.iter().map(|s| (s.0 - mx) * (s.1 - my)).sum();
    if sxx <= 0.0 || my <= 0.0 {
        return None;
    }
    Some(sxy / sxx * 3600.0 / my * 100.0)
}

/// A field of `/proc/PID/status` in kB (`VmRSS`, `VmHWM`), if the process is there.
fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    proc_kb(pid, "status", field)
}

/// A `Field:  N kB` line of `/proc/PID/<file>`, if the process is there.
fn proc_kb(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = text.lines().find(|l| l.split(':').next() == Some(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The process's proportional set size (shared pages divided among the processes that map
/// them) and unique set size (pages no other process maps), in kB: what it costs the host
/// beside RSS, which counts the whole of every shared library it touches.
fn pss_uss_kb(pid: u32) -> (u64, u64) {
    let field = |f| proc_kb(pid, "smaps_rollup", f).unwrap_or(0);
    (
        field("Pss"),
        field("Private_Clean") + field("Private_Dirty"),
    )
}

/// Resets the connector's peak RSS so each step reports its own (see proc(5), clear_refs).
fn reset_peak_rss(pid: u32) {
    if let Err(e) = std::fs::write(format!("/proc/{pid}/clear_refs"), "5") {
        eprintln!("cannot reset the connector's peak RSS: {e}");
    }
}
