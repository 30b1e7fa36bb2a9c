//! MCP benchmark: `tools/call diag.ping` through the whole product path, MCP client →
//! runtime (Streamable HTTP, stateless 2026-07-28 requests) → QUIC tunnel → connector
//! process, beside the same call made straight on the tunnel (no MCP layer), in one run, so
//! the MCP layer's own cost shows as a ratio.
//!
//! The runtime and the HTTP load generator share this process; the connector is the real
//! release binary. The runtime is in loopback development mode (no OAuth), so the rows
//! measure transport and MCP handling; `mcp-https` adds TLS.
//!
//! Run: `cargo build --release --bins && cargo bench -p e2e --bench mcp`.

use std::time::Duration;

use anyhow::Result;
use cloud_runtime::server::McpServeOptions;
use cloud_runtime::tunnel::call::NoPeer;
use cloud_runtime::tunnel::registry::CallSpec;
use e2e::bench::{CONCURRENCY, load, print_header, print_row, start_in_process, step_duration};
use e2e::{Connector, Runtime, free_port, run_ok};
use shared::identity::TenantId;
use shared::wire;

fn body() -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "diag.ping", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
                  "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}}})
    .to_string()
}

async fn mcp_call(client: &reqwest::Client, url: &str, body: &str) -> bool {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "diag.ping")
        .body(body.to_owned())
        .send()
        .await;
    match resp {
        Ok(r) => r
            .text()
            .await
            .is_ok_and(|t| t.contains("\"isError\":false")),
        Err(_) => false,
    }
}

fn main() -> Result<()> {
    let secs = step_duration();
    let rt = Runtime::init()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
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
        let (runtime, cpid) = start_in_process(&rt, &mut connector, mcp, None).await?;
        let me = std::process::id();
        let tenant: TenantId = "acme".parse()?;
        let registry = runtime.registry.clone();
        let http = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
        let ca = reqwest::Certificate::from_pem(&std::fs::read(rt.data_dir().join("ca.pem"))?)?;
        let https = reqwest::Client::builder().tls_certs_only([ca]).pool_max_idle_per_host(512).build()?;
        let http_url = format!("http://localhost:{http_port}/t/acme/g/eng/mcp");
        let https_url = format!("https://localhost:{}/t/acme/g/eng/mcp", rt.https_port);

        println!("MCP benchmark: tools/call diag.ping, {} s per step, 2-core machine (ratios vs the tunnel alone)", secs.as_secs());
        print_header();
        for &c in &CONCURRENCY {
            let reg = registry.clone();
            let t = tenant.clone();
            let tunnel = load(c, secs, &[me, cpid], move || {
                let reg = reg.clone();
                let t = t.clone();
                async move {
                    let spec = CallSpec {
                        call_id: reg.new_call_id(),
                        tool: "diag.ping".into(),
                        arguments_json: b"{}".to_vec(),
                        timeout: Duration::from_secs(10),
                        caller: wire::Caller { tenant: "acme".into(), user: "bench".into(), agent: "bench".into() },
                        site: shared::policy::Site::default(),
                        traceparent: String::new(),
                        binding: Default::default(),
                        user_proof: String::new(),
                        approval: String::new(),
                    };
                    matches!(reg.call(&t, None, spec, &NoPeer).await.outcome, Ok(out) if !out.is_error)
                }
            })
            .await;
            let (client, url) = (http.clone(), http_url.clone());
            let over_http = load(c, secs, &[me, cpid], move || {
                let (client, url) = (client.clone(), url.clone());
                async move { mcp_call(&client, &url, &body()).await }
            })
            .await;
            let (client, url) = (https.clone(), https_url.clone());
            let over_https = load(c, secs, &[me, cpid], move || {
                let (client, url) = (client.clone(), url.clone());
                async move { mcp_call(&client, &url, &body()).await }
            })
            .await;
            print_row("tunnel", c, &tunnel, &tunnel);
            print_row("mcp-http", c, &over_http, &tunnel);
            print_row("mcp-https", c, &over_https, &tunnel);
        }
        drop(connector);
        runtime.shutdown().await;
        Ok(())
    })
}
