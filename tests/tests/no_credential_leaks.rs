//! DESIGN invariant 2, checked on a full run: a user signs in (OAuth), connects their GitHub
//! Enterprise account just in time (GitHub App, through the runtime's connect page), calls
//! tools that read and write, has their token expire and refreshed, and is denied a call;
//! another user works with an admin-provided token. Then every log line (runtime and
//! connector, at debug level), every audit record (the runtime's and the connector's own
//! signed log), everything exported over OTLP, and every
//! tunnel frame (the runtime's `--debug-frame-log`) is searched for every credential of the
//! run: the upstream access and refresh tokens, the PAT, the OAuth client secret, the vault
//! key, the MCP access and refresh tokens, the agent key, the user's sign-in secret and the
//! join token. None may appear.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::oauth_client::{OAuthClient, field};
use e2e::otlp::OtlpReceiver;
use e2e::{Connector, FakeUpstream, Runtime, run_ok, user_id, wait_for};
use edge_connector::config::Config;
use edge_connector::vault::{EntryName, Vault};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const CLIENT_ID: &str = "Iv23liLeakTestApp001";
const CLIENT_SECRET: &str = "leak-test-github-app-secret-5d1f";
const BOB_PAT: &str = "ghp_bobFakeToken00000000000000000000000";

fn meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
           "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"}})
}

/// A stateless tools/call; returns the JSON-RPC message.
fn call(
    http: &reqwest::blocking::Client,
    url: &str,
    token: &str,
    agent_key: &str,
    params: Value,
) -> Result<Value> {
    let mut params = params;
    params["_meta"] = meta();
    let name = params["name"].as_str().unwrap_or_default().to_owned();
    let body = http
        .post(url)
        .bearer_auth(token)
        .header("X-MCP-Agent-Key", agent_key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", name)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}))
        .send()?
        .text()?;
    e2e::mcp_client::message(&body, 1).context(body)
}

/// Plays the user's browser from the connect link to "Connected".
fn connect(browser: &reqwest::blocking::Client, link: &str) -> Result<()> {
    let resp = browser.get(link).send()?;
    anyhow::ensure!(resp.status() == 303, "connect page: {}", resp.status());
    let consent = resp.headers()["location"].to_str()?.to_owned();
    let page = browser.get(&consent).send()?.text()?;
    let action = page
        .split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .context("consent form")?
        .replace("&amp;", "&");
    let mut form: Vec<(String, String)> = page
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|s| {
            let (name, rest) = s.split_once("\" value=\"")?;
            Some((
                name.to_owned(),
                rest.split('"').next()?.replace("&amp;", "&"),
            ))
        })
        .collect();
    form.push(("username".into(), "alice".into()));
    form.push(("decision".into(), "authorize".into()));
    let target = url::Url::parse(&consent)?.join(&action)?;
    let resp = browser.post(target).form(&form).send()?;
    let back = resp.headers()["location"].to_str()?.to_owned();
    let done = browser.get(&back).send()?;
    let status = done.status();
    let text = done.text()?;
    anyhow::ensure!(
        status == 200 && text.contains("Connected"),
        "callback: {status} {text}"
    );
    Ok(())
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

#[test]
fn no_credential_reaches_a_log_an_audit_record_telemetry_or_the_tunnel() -> Result<()> {
    let otlp = OtlpReceiver::start()?;
    let mut rt = Runtime::init()?;
    let frames = rt.dir.path().join("frames.bin");
    rt.serve_args = vec![
        "--otlp-endpoint".into(),
        otlp.endpoint(),
        "--debug-frame-log".into(),
        frames.display().to_string(),
    ];
    rt.serve_env = vec![("RUST_LOG".into(), "debug".into())];
    rt.start()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let alice = run_ok(rt.cli().args([
        "user", "add", "--tenant", "acme", "alice", "--groups", "eng",
    ]));
    let bob = run_ok(
        rt.cli()
            .args(["user", "add", "--tenant", "acme", "bob", "--groups", "eng"]),
    );
    let agent = run_ok(rt.cli().args([
        "agent", "create", "--tenant", "acme", "claude", "--role", "triage",
    ]));
    let (alice_secret, bob_secret) = (field(&alice, "(shown once):"), field(&bob, "(shown once):"));
    let agent_key = field(&agent, "X-MCP-Agent-Key):");
    let ghes = FakeUpstream::start(rt.dir.path(), "github", &[])?;
    ghes.control(
        "oauth/clients",
        &json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "kind": "github-app",
                "redirect_uri": format!("https://localhost:{}/connect/callback", rt.https_port)}),
    )?;
    let tok = rt.token("acme", "15m");
    let state_dir = rt.dir.path().join("c1");
    run_ok(
        Connector::cli()
            .args([
                "enroll",
                "--runtime",
                &rt.https_endpoint(),
                "--token",
                &tok.token,
                "--ca-fingerprint",
                &tok.ca_fingerprint,
                "--state-dir",
            ])
            .arg(&state_dir),
    );
    let mut connector = Connector {
        state_dir,
        id: tok.connector_id.clone(),
        process: None,
        env: vec![("RUST_LOG".into(), "debug".into())],
    };
    let config_path = connector.configure(
        &format!(
            "[telemetry]\notlp_endpoint = \"{}\"\n\n[[provider]]\nname = \"ghes\"\nkind = \"github\"\napi_url = \"{}\"\n[provider.oauth]\nclient_id = \"{CLIENT_ID}\"\napp = \"github-app\"\n",
            otlp.endpoint(),
            ghes.api_url()
        ),
        "version = 1\n[[allow]]\ntools = [\"github_*\", \"diag.*\"]\n",
        &[
            ("provider/ghes/client_secret", CLIENT_SECRET),
            (&format!("user/ghes/{}", user_id(&bob)), BOB_PAT),
        ],
    )?;
    connector.start_configured(&rt, &config_path)?;

    let base = format!("https://localhost:{}", rt.https_port);
    let url = format!("{base}/t/acme/g/eng/mcp");
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    let browser = OAuthClient::new(base.clone(), &ca)?;
    let tokens = browser.access_token(&url, "alice", &alice_secret)?;
    let mcp_token = tokens["access_token"]
        .as_str()
        .context("access token")?
        .to_owned();
    let mcp_refresh = tokens["refresh_token"]
        .as_str()
        .context("refresh token")?
        .to_owned();
    let http = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
        .build()?;

    // Just in time: the first call asks alice to connect; her browser does; the retry works.
    let first = call(
        &http,
        &url,
        &mcp_token,
        &agent_key,
        json!({"name": "github_whoami", "arguments": {}}),
    )?;
    let link = first["result"]["inputRequests"]
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|r| r["params"]["url"].as_str())
        .context(first.to_string())?
        .to_owned();
    connect(&browser.http, &link)?;
    let me = call(
        &http,
        &url,
        &mcp_token,
        &agent_key,
        json!({"name": "github_whoami", "arguments": {}}),
    )?;
    assert_eq!(me["result"]["structuredContent"]["login"], "alice", "{me}");
    let config = Config::load(&config_path)?;
    let vault = Vault::open(&config)?;
    let name = EntryName::user_token("ghes", &user_id(&alice))?;
    let connected = vault.get(&name)?.context("alice's token")?;
    let mut secrets: Vec<(String, String)> = vec![
        (
            "upstream access token".into(),
            connected.secret.expose_secret().to_owned(),
        ),
        (
            "upstream refresh token".into(),
            connected
                .refresh
                .as_ref()
                .context("refresh")?
                .expose_secret()
                .to_owned(),
        ),
    ];
    // Reads, a write, and a denial (the triage role is open in this suite's policy, so
    // restrict it first).
    for (tool, args) in [
        (
            "github_get_issue",
            json!({"owner": "acme", "repo": "widgets", "number": 1}),
        ),
        (
            "github_list_issues",
            json!({"owner": "acme", "repo": "widgets"}),
        ),
        (
            "github_comment_on_issue",
            json!({"owner": "acme", "repo": "widgets", "number": 1, "body": "checked"}),
        ),
    ] {
        let r = call(
            &http,
            &url,
            &mcp_token,
            &agent_key,
            json!({"name": tool, "arguments": args}),
        )?;
        assert_eq!(r["result"]["isError"], false, "{tool}: {r}");
    }
    // The token expires: the connector refreshes it (new access and refresh tokens).
    ghes.control("tokens/expire", &json!({"user": "alice"}))?;
    let r = call(
        &http,
        &url,
        &mcp_token,
        &agent_key,
        json!({"name": "github_whoami", "arguments": {}}),
    )?;
    assert_eq!(r["result"]["structuredContent"]["login"], "alice", "{r}");
    let refreshed = vault.get(&name)?.context("refreshed token")?;
    assert_ne!(
        refreshed.secret.expose_secret(),
        connected.secret.expose_secret(),
        "refreshed"
    );
    secrets.push((
        "refreshed access token".into(),
        refreshed.secret.expose_secret().to_owned(),
    ));
    secrets.push((
        "refreshed refresh token".into(),
        refreshed
            .refresh
            .as_ref()
            .context("refresh")?
            .expose_secret()
            .to_owned(),
    ));
    // Bob works with an admin-provided token.
    let bob_mcp = OAuthClient::new(base, &ca)?.access_token(&url, "bob", &bob_secret)?;
    let r = call(
        &http,
        &url,
        bob_mcp["access_token"].as_str().unwrap_or_default(),
        &agent_key,
        json!({"name": "github_whoami", "arguments": {}}),
    )?;
    assert_eq!(r["result"]["structuredContent"]["login"], "bob", "{r}");
    rt.apply_policy("acme", "version = 1\n[roles.triage]\nallow = [{ tools = [\"github_whoami\"] }]\n[groups.eng]\nallow = [{ tools = [\"*\"] }]\n");
    let denied = wait_for(Duration::from_secs(5), "the new policy in force", || {
        call(&http, &url, &mcp_token, &agent_key,
             json!({"name": "github_get_issue", "arguments": {"owner": "acme", "repo": "widgets", "number": 2}}))
        .ok()
        .filter(|r| r["result"]["isError"] == true)
    })?;
    assert!(
        denied.to_string().contains("denied by the agent layer"),
        "{denied}"
    );

    // Let the exporters flush, then stop both processes so their logs are complete.
    wait_for(Duration::from_secs(20), "telemetry from both sides", || {
        let s = otlp.spans();
        (s.iter().any(|x| x.service == "edge-connector") && !otlp.logs().is_empty()).then_some(())
    })?;
    std::thread::sleep(Duration::from_secs(6));
    if let Some(mut p) = connector.process.take() {
        p.signal(nix::sys::signal::Signal::SIGTERM);
        p.wait_exit(Duration::from_secs(20))?;
    }
    let runtime_log = rt
        .serve
        .as_ref()
        .map(|p| p.log.clone())
        .context("runtime log")?;
    rt.stop()?;

    secrets.extend([
        ("PAT".into(), BOB_PAT.to_owned()),
        ("OAuth client secret".into(), CLIENT_SECRET.to_owned()),
        ("MCP access token".into(), mcp_token.clone()),
        ("MCP refresh token".into(), mcp_refresh),
        ("agent key".into(), agent_key.clone()),
        ("user sign-in secret".into(), alice_secret),
        ("join token".into(), tok.token.clone()),
    ]);
    let key_file = std::fs::read_to_string(config.vault.identity_file.as_ref().context("key")?)?;
    let age_key = key_file
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .context("age key")?
        .to_owned();
    secrets.push(("vault key".into(), age_key));

    let haystacks: Vec<(&str, Vec<u8>)> = vec![
        ("runtime log", read(&runtime_log)),
        (
            "connector log",
            read(&connector.state_dir.with_extension("log")),
        ),
        ("audit log", rt.audit_text().into_bytes()),
        ("tunnel frames", read(&frames)),
        ("OTLP export", otlp.raw()),
        (
            "connector's own audit log",
            read(
                &connector
                    .state_dir
                    .join("audit")
                    .join("audit-00000001.ndjson"),
            ),
        ),
    ];
    for (what, bytes) in &haystacks {
        println!("{what}: {} bytes searched", bytes.len());
        assert!(
            !bytes.is_empty(),
            "{what} is empty: the search would prove nothing"
        );
    }
    // The frame log really is the tunnel's traffic: it holds the calls' tool names.
    assert!(String::from_utf8_lossy(&haystacks[3].1).contains("github_comment_on_issue"));
    for (name, secret) in &secrets {
        assert!(secret.len() >= 12, "{name} is too short to search for");
        for (what, bytes) in &haystacks {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "the {name} appears in the {what}");
        }
    }
    println!(
        "{} credentials, none found in {} places",
        secrets.len(),
        haystacks.len()
    );
    Ok(())
}
