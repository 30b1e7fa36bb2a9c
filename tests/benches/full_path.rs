//! Full-path benchmark (DESIGN targets: ≤ 1 ms added at p50, ≥ 3,000 calls/s at 64
//! concurrent): `tools/call github_whoami` from an MCP client → runtime (Streamable HTTP,
//! stateless 2026-07-28 requests, policy decision, audit records) → QUIC tunnel → connector
//! (local policy, vault, rate-limit bookkeeping) → fake GitHub Enterprise (`GET /user`),
//! beside the same `GET /user` sent straight to the fake upstream, in one run.
//!
//! The runtime and the load generator share this process; the connector and the fake
//! upstream are the release binaries. CPU per call adds all three processes. The runtime is
//! in loopback development mode (no OAuth; the OAuth check is a signature verification the
//! `mcp` benchmark's HTTPS row already includes).
//!
//! Run: `cargo build --release --bins && cargo bench -p e2e --bench full_path`.

use anyhow::Result;
use cloud_runtime::server::McpServeOptions;
use e2e::bench::{load, print_header, print_row, start_in_process, step_duration};
use e2e::{Connector, DEV_USER_ID, FakeUpstream, Runtime, free_port, run_ok};

const PAT: &str = "ghp_aliceFakeToken000000000000000000000";

fn body() -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "github_whoami", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
                  "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}}})
    .to_string()
}

fn main() -> Result<()> {
    let secs = step_duration();
    let rt = Runtime::init()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let ghes = FakeUpstream::start(rt.dir.path(), "github", &["--rate-limit", "100000000"])?;
    let fake_pid = ghes.process.pid();
    let api = ghes.api_url();
    let mut connector = Connector::enroll_offline(&rt, "acme", "bench")?;
    let http_port = free_port();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio_rt.block_on(async move {
        let mcp = McpServeOptions {
            dev_unauthenticated: true,
            dev_http_listen: Some(format!("127.0.0.1:{http_port}").parse()?),
            ..Default::default()
        };
        let configure = |c: &Connector| {
            c.configure(
                &format!("[[provider]]\nname = \"ghes\"\nkind = \"github\"\napi_url = \"{api}\"\n"),
                "version = 1\n[[allow]]\ntools = [\"github_*\"]\n",
                // The development principal is `dev-user`: give it alice's token.
                &[(&format!("user/ghes/{DEV_USER_ID}"), PAT)],
            )
        };
        let (runtime, cpid) = start_in_process(&rt, &mut connector, mcp, Some(&configure)).await?;
        let me = std::process::id();
        let pids = [me, cpid, fake_pid];
        let client = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
        let mcp_url = format!("http://localhost:{http_port}/t/acme/g/eng/mcp");
        let direct_url = format!("{}/user", ghes.api_url());

        println!(
            "full-path benchmark: github_whoami via MCP → runtime → tunnel → connector → fake GHES, vs GET /user straight to the fake; {} s per step, 2-core machine",
            secs.as_secs()
        );
        print_header();
        let mut at64 = None;
        for c in [1usize, 16, 64] {
            let (cl, url) = (client.clone(), direct_url.clone());
            let direct = load(c, secs, &pids, move || {
                let (cl, url) = (cl.clone(), url.clone());
                async move {
                    match cl.get(&url).bearer_auth(PAT).send().await {
                        Ok(r) if r.status().is_success() => r.text().await.is_ok_and(|t| t.contains("alice")),
                        _ => false,
                    }
                }
            })
            .await;
            let (cl, url) = (client.clone(), mcp_url.clone());
            let full = load(c, secs, &pids, move || {
                let (cl, url) = (cl.clone(), url.clone());
                async move {
                    let resp = cl
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("accept", "application/json, text/event-stream")
                        .header("mcp-protocol-version", "2026-07-28")
                        .header("mcp-method", "tools/call")
                        .header("mcp-name", "github_whoami")
                        .body(body())
                        .send()
                        .await;
                    match resp {
                        Ok(r) => r.text().await.is_ok_and(|t| t.contains("\"login\":\"alice\"")),
                        Err(_) => false,
                    }
                }
            })
            .await;
            print_row("direct", c, &direct, &direct);
            print_row("full-path", c, &full, &direct);
            println!(
                "{:<12} {:>5} added at p50: {} µs, at p99: {} µs",
                "",
                c,
                full.p50.saturating_sub(direct.p50).as_micros(),
                full.p99.saturating_sub(direct.p99).as_micros()
            );
            if c == 64 {
                at64 = Some(full.rate());
            }
        }
        if let Some(rate) = at64 {
            println!("full path at 64 concurrent: {rate:.0} calls/s (target ≥ 3,000)");
        }
        drop(connector);
        runtime.shutdown().await;
        Ok(())
    })
}
