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
use std::time::Duration;

use anyhow::Result;
use cloud_runtime::tunnel::call::NoPeer;
use cloud_runtime::tunnel::registry::CallSpec;
use e2e::bench::{CONCURRENCY, load, print_header, print_row, start_in_process, step_duration};
use e2e::{Connector, Runtime};
use edge_connector::tools::{CallContext, ToolContext, Toolbox};
use shared::call::Call;
use shared::identity::TenantId;
use shared::trace::{Kind, Tracing};
use shared::wire;

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
    };
    Call::try_from(req).unwrap_or_else(|e| panic!("{e}"))
}

fn main() -> Result<()> {
    let secs = step_duration();
    let rt = Runtime::init()?;
    let mut connector = Connector::enroll_offline(&rt, "acme", "bench")?;
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio_rt.block_on(async move {
        let (runtime, cpid) = start_in_process(&rt, &mut connector, Default::default(), None).await?;
        let me = std::process::id();
        let tenant: TenantId = "acme".parse()?;
        let registry = runtime.registry.clone();

        let identity = format!(
            "spiffe://localhost/tenant/acme/connector/{}",
            connector.connector_id
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
        let idle = ["VmRSS", "RssAnon", "RssFile"].map(|f| proc_status_kb(cpid, f).unwrap_or(0));
        print_header();
        let mut peaks = Vec::new();
        for &c in &CONCURRENCY {
            let tb = toolbox.clone();
            let tr = tracing.clone();
            let base = load(c, secs, &[me], move || {
                let tb = tb.clone();
                let tracing = tr.clone();
                async move {
                    let call = ping_call();
                    let (tx, _rx) = tokio::sync::mpsc::channel(1);
                    let ctx = CallContext::new(tx, false, tracing.clone(), tracing.start("bench", Kind::Server, None));
                    tb.dispatch(&call, &ctx).await.is_ok()
                }
            })
            .await;
            let reg = registry.clone();
            let t = tenant.clone();
            reset_peak_rss(cpid);
            let tunnel = load(c, secs, &[me, cpid], move || {
                let reg = reg.clone();
                let t = t.clone();
                async move {
                    let spec = CallSpec {
                        call_id: reg.new_call_id(),
                        tool: "diag.ping".into(),
                        arguments_json: b"{}".to_vec(),
                        timeout: Duration::from_secs(10),
                        caller: wire::Caller {
                            tenant: "acme".into(),
                            user: "bench".into(),
                            agent: "bench".into(),
                        },
                        site: shared::policy::Site::default(),
                        traceparent: String::new(),
                        binding: Default::default(),
                    };
                    matches!(reg.call(&t, None, spec, &NoPeer).await.outcome, Ok(out) if !out.is_error)
                }
            })
            .await;
            peaks.push((c, proc_status_kb(cpid, "VmHWM")));
            print_row("in-process", c, &base, &base);
            print_row("tunnel", c, &tunnel, &base);
        }
        // RssFile is mapped code (the binary, libc) shared with the page cache; RssAnon is
        // the connector's own heap and stacks.
        println!(
            "connector RSS idle after connecting: {} kB (target ≤ 8 MB): {} kB anonymous, {} kB mapped files",
            idle[0], idle[1], idle[2]
        );
        for (c, peak) in peaks {
            println!("connector peak RSS at {c} concurrent: {} kB (target ≤ 16 MB at 64)", peak.unwrap_or(0));
        }
        drop(connector);
        runtime.shutdown().await;
        Ok(())
    })
}

/// A field of `/proc/PID/status` in kB (`VmRSS`, `VmHWM`), if the process is there.
fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the connector's peak RSS so each step reports its own (see proc(5), clear_refs).
fn reset_peak_rss(pid: u32) {
    if let Err(e) = std::fs::write(format!("/proc/{pid}/clear_refs"), "5") {
        eprintln!("cannot reset the connector's peak RSS: {e}");
    }
}
