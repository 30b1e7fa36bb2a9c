//! The MCP endpoint over Streamable HTTP, driven by hand: sessions, revisions, the tools of a
//! real connector through the tunnel, cancellation, and each kind of bad input getting the
//! specification's error while other sessions carry on.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use e2e::mcp_client::message;
use e2e::{Connector, Runtime, free_port, run_ok, wait_for};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

struct Mcp {
    client: Client,
    url: String,
    session: Option<String>,
    version: &'static str,
}

impl Mcp {
    fn new(url: String, version: &'static str) -> Self {
        Self {
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            url,
            session: None,
            version,
        }
    }

    fn post_raw(&self, body: String) -> Response {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", self.version);
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        req.body(body)
            .send()
            .unwrap_or_else(|e| panic!("POST {}: {e}", self.url))
    }

    fn request(&self, id: i64, method: &str, params: Value) -> (u16, Value) {
        let resp = self.post_raw(
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        );
        let status = resp.status().as_u16();
        let body = resp.text().unwrap_or_default();
        (
            status,
            message(&body, id).unwrap_or_else(|| json!({"raw": body})),
        )
    }

    fn initialize(&mut self) -> Value {
        let resp = self.post_raw(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": self.version, "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}})
            .to_string(),
        );
        self.session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let result = message(&resp.text().unwrap_or_default(), 0).unwrap_or_default();
        let ack = self
            .post_raw(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string());
        assert_eq!(ack.status().as_u16(), 202);
        result
    }
}

struct Env {
    rt: Runtime,
    http: u16,
    connector: Connector,
}

fn env() -> Result<Env> {
    let mut rt = Runtime::init()?;
    let http = free_port();
    rt.serve_args = vec![
        "--dev-unauthenticated".into(),
        "--dev-http-listen".into(),
        format!("127.0.0.1:{http}"),
    ];
    rt.start()?;
    run_ok(rt.cli().args([
        "gateway",
        "create",
        "--tenant",
        "acme",
        "eng",
        "--instructions",
        "Engineering tools",
    ]));
    run_ok(rt.cli().args([
        "gateway",
        "create",
        "--tenant",
        "acme",
        "ping-only",
        "--tools",
        "diag.ping",
    ]));
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "globex", "eng"]),
    );
    let mut connector = Connector::enroll(&rt, "acme", "c1")?;
    connector.start(&rt, &[])?;
    Ok(Env {
        rt,
        http,
        connector,
    })
}

fn url(env: &Env, tenant: &str, gateway: &str) -> String {
    format!("http://localhost:{}/t/{tenant}/g/{gateway}/mcp", env.http)
}

#[test]
fn sessions_tools_and_revisions() -> Result<()> {
    let env = env()?;
    let mut mcp = Mcp::new(url(&env, "acme", "eng"), "2025-11-25");
    let init = mcp.initialize();
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(init["result"]["instructions"], "Engineering tools");
    assert!(mcp.session.is_some(), "2025-11-25 has sessions");

    let (_, list) = mcp.request(1, "tools/list", json!({}));
    let tools = list["result"]["tools"].as_array().context("tools")?;
    let echo = tools
        .iter()
        .find(|t| t["name"] == "diag.echo")
        .context("diag.echo listed")?;
    assert!(echo["outputSchema"].is_object());
    assert_eq!(echo["annotations"]["readOnlyHint"], true);
    assert_eq!(echo["annotations"]["destructiveHint"], false);

    let (_, call) = mcp.request(
        2,
        "tools/call",
        json!({"name": "diag.echo", "arguments": {"message": "through the tunnel"}}),
    );
    assert_eq!(call["result"]["isError"], false, "{call}");
    assert_eq!(
        call["result"]["structuredContent"]["message"],
        "through the tunnel"
    );
    assert_eq!(
        call["result"]["structuredContent"]["connector_id"],
        env.connector.id.as_str()
    );
    assert_eq!(call["result"]["content"][0]["text"], "through the tunnel");

    // A tool error is an isError result; a protocol error is a JSON-RPC error.
    let (_, bad_args) = mcp.request(
        3,
        "tools/call",
        json!({"name": "diag.echo", "arguments": {"nope": 1}}),
    );
    assert_eq!(bad_args["result"]["isError"], true, "{bad_args}");
    let (_, unknown) = mcp.request(
        4,
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    );
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let (_, pong) = mcp.request(5, "ping", json!({}));
    assert_eq!(pong["result"], json!({}));

    // A gateway shows only its collection.
    let mut narrow = Mcp::new(url(&env, "acme", "ping-only"), "2025-11-25");
    narrow.initialize();
    let (_, list) = narrow.request(1, "tools/list", json!({}));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["diag.ping"]);
    let (_, hidden) = narrow.request(
        2,
        "tools/call",
        json!({"name": "diag.echo", "arguments": {"message": "x"}}),
    );
    assert_eq!(
        hidden["error"]["code"], -32602,
        "a tool outside the gateway is unknown there"
    );

    // A session belongs to its gateway: elsewhere it is unknown.
    let mut stray = Mcp::new(url(&env, "acme", "ping-only"), "2025-11-25");
    stray.session = mcp.session.clone();
    assert_eq!(stray.request(1, "tools/list", json!({})).0, 404);

    // DELETE ends the session; afterwards it is unknown.
    let del = mcp
        .client
        .delete(&mcp.url)
        .header("mcp-session-id", mcp.session.clone().unwrap_or_default())
        .send()?;
    assert!(del.status().is_success(), "{}", del.status());
    assert_eq!(mcp.request(6, "tools/list", json!({})).0, 404);

    // The older revision negotiates its own version.
    let mut old = Mcp::new(url(&env, "acme", "eng"), "2025-06-18");
    assert_eq!(old.initialize()["result"]["protocolVersion"], "2025-06-18");
    let (_, call) = old.request(
        1,
        "tools/call",
        json!({"name": "diag.ping", "arguments": {}}),
    );
    assert_eq!(call["result"]["structuredContent"]["tenant"], "acme");

    // The stateless revision: no initialize, no session, per-request metadata.
    let stateless = Mcp::new(url(&env, "acme", "eng"), "2026-07-28");
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"}});
    let resp = stateless
        .client
        .post(&stateless.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "diag.echo")
        .body(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                     "params": {"name": "diag.echo", "arguments": {"message": "stateless"}, "_meta": meta}}).to_string())
        .send()?;
    assert!(
        resp.headers().get("mcp-session-id").is_none(),
        "no session in 2026-07-28"
    );
    let body = resp.text()?;
    assert_eq!(
        message(&body, 9).context(body.clone())?["result"]["structuredContent"]["message"],
        "stateless"
    );

    // And the same endpoint over HTTPS with the runtime's certificate.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(env.rt.data_dir().join("ca.pem"))?)?;
    let mut tls = Mcp::new(
        format!("https://localhost:{}/t/acme/g/eng/mcp", env.rt.https_port),
        "2025-11-25",
    );
    tls.client = Client::builder().tls_certs_only([ca]).build()?;
    assert_eq!(tls.initialize()["result"]["serverInfo"]["name"], "mcp-edge");
    Ok(())
}

#[test]
fn bad_input_gets_the_specified_errors_and_other_sessions_carry_on() -> Result<()> {
    let env = env()?;
    let mut good = Mcp::new(url(&env, "acme", "eng"), "2025-11-25");
    good.initialize();
    let raw = |body: &str, headers: &[(&str, &str)]| -> (u16, String) {
        let mut req = good
            .client
            .post(&good.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match req.body(body.to_owned()).send() {
            Ok(resp) => (resp.status().as_u16(), resp.text().unwrap_or_default()),
            // Refusing an oversize body early can close the connection while the client is
            // still sending; that is a refusal too (0 here, checked below).
            Err(e) => (0, e.to_string()),
        }
    };

    let (status, body) = raw("{not json", &[]);
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body)?["error"]["code"],
        -32700
    );
    let (status, body) = raw(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, &[]);
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body)?["error"]["code"],
        -32600
    );
    let (status, _) = raw(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        &[("mcp-protocol-version", "1999-01-01")],
    );
    assert_eq!(status, 400, "unknown protocol version");
    let (status, _) = raw(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        &[
            ("mcp-session-id", "forged"),
            ("mcp-protocol-version", "2025-11-25"),
        ],
    );
    assert_eq!(status, 404, "unknown session");
    let (status, _) = raw(&format!(r#"{{"pad":"{}"}}"#, "a".repeat(5_000_000)), &[]);
    assert!(
        status == 413 || status == 0,
        "oversize body accepted: {status}"
    );
    let (status, _) = raw(
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        &[("host", "evil.example")],
    );
    assert_eq!(status, 403, "foreign Host (DNS rebinding)");
    let (status, _) = raw(
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        &[("origin", "https://evil.example")],
    );
    assert_eq!(status, 403, "foreign Origin");
    let unknown_gateway = good
        .client
        .post(url(&env, "acme", "nope"))
        .body("{}")
        .send()?;
    assert_eq!(unknown_gateway.status().as_u16(), 404);
    let bad_tenant = good
        .client
        .post(url(&env, "Not_A_Tenant", "eng"))
        .body("{}")
        .send()?;
    assert_eq!(bad_tenant.status().as_u16(), 404);

    // Slow loris: headers that never finish are cut off by the server.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", env.http))?;
    slow.write_all(b"POST /t/acme/g/eng/mcp HTTP/1.1\r\nHost: localhost\r\n")?;
    slow.set_read_timeout(Some(Duration::from_secs(30)))?;
    let t0 = Instant::now();
    let mut buf = [0u8; 1024];
    let n = slow.read(&mut buf).unwrap_or(0);
    println!(
        "slow client cut off after {:?} ({} bytes of answer)",
        t0.elapsed(),
        n
    );
    assert!(
        t0.elapsed() < Duration::from_secs(25),
        "server kept a slow client open"
    );

    // Through all of that, the good session still works.
    let (_, call) = good.request(
        7,
        "tools/call",
        json!({"name": "diag.ping", "arguments": {}}),
    );
    assert_eq!(call["result"]["isError"], false, "{call}");
    Ok(())
}

#[test]
fn cancellation_reaches_the_connector_and_no_connector_is_retryable() -> Result<()> {
    let env = env()?;

    // A tenant without an online connector: a clear, retryable tool error.
    let mut lonely = Mcp::new(url(&env, "globex", "eng"), "2025-11-25");
    lonely.initialize();
    let (_, call) = lonely.request(
        1,
        "tools/call",
        json!({"name": "diag.echo", "arguments": {"message": "x"}}),
    );
    assert_eq!(call["result"]["isError"], true, "{call}");
    let text = call["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("no connector of tenant globex is online") && text.contains("retry"),
        "{text}"
    );

    // Cancel a long call: the runtime resets its stream and the connector drops the tool.
    let mut mcp = Mcp::new(url(&env, "acme", "eng"), "2025-11-25");
    mcp.initialize();
    let (client, u, session) = (
        mcp.client.clone(),
        mcp.url.clone(),
        mcp.session.clone().unwrap_or_default(),
    );
    let long = std::thread::spawn(move || {
        client
            .post(&u)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", session)
            .timeout(Duration::from_secs(15))
            .body(json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
                         "params": {"name": "diag.echo", "arguments": {"message": "slow", "delay_ms": 20000}}}).to_string())
            .send()
            .and_then(|r| r.text())
    });
    std::thread::sleep(Duration::from_millis(700));
    let cancel = mcp.post_raw(json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                     "params": {"requestId": 42, "reason": "user changed their mind"}}).to_string());
    assert_eq!(cancel.status().as_u16(), 202);
    wait_for(
        Duration::from_secs(10),
        "connector to drop the call",
        || {
            env.connector
                .log()
                .contains("call cancelled by the runtime")
                .then_some(())
        },
    )
    .with_context(|| env.connector.log())?;
    let body = long
        .join()
        .map_err(|_| anyhow::anyhow!("call thread panicked"))?
        .unwrap_or_default();
    assert!(
        !body.contains("\"slow\""),
        "a cancelled call must not deliver its result: {body}"
    );
    Ok(())
}
