//! The NATS hop between replicas (DESIGN target: under 1 ms added at p50 on loopback):
//! the same `tools/call diag.echo` load (stateless 2026-07-28 requests, development mode
//! without OAuth) (a) entering the replica that holds the connector's tunnel, and (b)
//! entering another replica, which relays each call over NATS. Two runtime replicas on one
//! PostgreSQL database, one NATS server (Debian's, started here) and the connector are
//! separate release processes; CPU per call adds the replicas, the connector, NATS and the
//! load generator.
//!
//! Run: `cargo build --release --bins && cargo bench -p e2e --bench scale_out`.

use std::time::Duration;

use anyhow::{Context, Result};
use e2e::bench::{Stats, load, print_header, print_row, step_duration};
use e2e::nats::Nats;
use e2e::postgres::Postgres;
use e2e::{Connector, Runtime, free_port, run_ok};

fn body() -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "diag.echo", "arguments": {"message": "hop"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
                  "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}}})
    .to_string()
}

fn serve_args(name: &str, nats: &Nats, http: u16) -> Vec<String> {
    [
        "--replica-id",
        name,
        "--nats-url",
        &nats.url(),
        "--dev-unauthenticated",
        "--dev-http-listen",
        &format!("127.0.0.1:{http}"),
    ]
    .map(str::to_owned)
    .to_vec()
}

async fn step(
    client: &reqwest::Client,
    url: &str,
    c: usize,
    secs: Duration,
    pids: &[u32],
) -> Stats {
    let (cl, url) = (client.clone(), url.to_owned());
    load(c, secs, pids, move || {
        let (cl, url) = (cl.clone(), url.clone());
        async move {
            let resp = cl
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", "diag.echo")
                .body(body())
                .send()
                .await;
            match resp {
                Ok(r) => r
                    .text()
                    .await
                    .is_ok_and(|t| t.contains("\"message\":\"hop\"")),
                Err(_) => false,
            }
        }
    })
    .await
}

fn main() -> Result<()> {
    let secs = step_duration();
    let pg = Postgres::start()?;
    let nats = Nats::start()?;
    let url = pg.create_database("runtime")?;
    let mut holder = Runtime::init_on(&url)?;
    run_ok(
        holder
            .cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let (http1, http2) = (free_port(), free_port());
    holder.serve_args = serve_args("rt-1", &nats, http1);
    holder.start()?;
    let mut entry = holder.replica()?;
    entry.serve_args = serve_args("rt-2", &nats, http2);
    entry.start()?;
    let mut connector = Connector::enroll(&holder, "acme", "bench")?;
    connector.start(&holder, &[])?;
    let pid = |rt: &Runtime| rt.serve.as_ref().map(|p| p.pid()).context("serving");
    let pids = [
        std::process::id(),
        pid(&holder)?,
        pid(&entry)?,
        connector.process.as_ref().context("running")?.pid(),
        nats.pid().context("NATS running")?,
    ];
    let direct_url = format!("http://localhost:{http1}/t/acme/g/eng/mcp");
    let hop_url = format!("http://localhost:{http2}/t/acme/g/eng/mcp");

    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio_rt.block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .build()?;
        // The entry replica learns the tunnel within a heartbeat.
        let mut ready = false;
        for _ in 0..50 {
            if step(&client, &hop_url, 1, Duration::from_millis(50), &[]).await.calls > 0 {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(ready, "the entry replica never routed a call to the holder");
        println!(
            "scale-out benchmark: tools/call diag.echo entering the replica holding the tunnel (holder) vs another replica relaying over NATS (nats-hop); {} s per step, 2-core machine",
            secs.as_secs()
        );
        print_header();
        for c in [1usize, 16, 64] {
            let direct = step(&client, &direct_url, c, secs, &pids).await;
            let hop = step(&client, &hop_url, c, secs, &pids).await;
            print_row("holder", c, &direct, &direct);
            print_row("nats-hop", c, &hop, &direct);
            println!(
                "{:<12} {:>5} added by the hop at p50: {} µs (target < 1,000), at p99: {} µs",
                "",
                c,
                hop.p50.saturating_sub(direct.p50).as_micros(),
                hop.p99.saturating_sub(direct.p99).as_micros()
            );
        }
        Ok(())
    })
}
