//! The runtime on a real PostgreSQL server (Debian's, started by the test).
//!
//! - A single-process install moves there: `migrate-store` copies everything, the commands
//!   read the same answers from both stores, the audit trail and the connectors' receipts
//!   verify against both, a second copy is refused, and `serve` then runs on PostgreSQL with
//!   the same connector.
//! - Two replicas on one database: each lists the connector the other holds (and which
//!   replica holds it), an access token one issued is good at the other (their signing keys
//!   sealed in the database under the operator's key-encryption key, no key files copied), a
//!   replica restarting leaves its peer's connectors online, a revocation issued at one
//!   replica drops the tunnel held by the other, and `keys rotate-token-signing` reaches a
//!   running replica (new tokens of the new key; the replaced key's tokens good until a
//!   second rotation).
//! - PostgreSQL restarted under a running runtime: `/readyz` says so (503) while it is away,
//!   requests that need it get a retryable 503 rather than a hang, and everything comes back
//!   without restarting the runtime.

use std::time::{Duration, Instant};

use anyhow::Result;
use e2e::postgres::Postgres;
use e2e::{Connector, Runtime, run, run_ok, wait_for};
use serde_json::Value;

/// What the read-only commands print, for comparing two stores. The audit trail's lines
/// name the chain (the file, or the replica's chain in the database): what follows must
/// be the same.
fn answers(rt: &Runtime) -> Vec<String> {
    [
        &["tenant", "list"][..],
        &["connector", "list", "--json"],
        &["gateway", "list", "--json"],
        &["policy", "show", "--tenant", "acme"],
        &["audit", "verify", "--receipts"],
        &["audit", "tail", "-n", "100"],
    ]
    .iter()
    .map(|args| {
        let out = run_ok(rt.cli().args(*args));
        if args[0] != "audit" {
            return out;
        }
        out.lines()
            .map(|l| match l.split_once(": ") {
                Some((_, rest)) if l.contains("audit") => format!("<chain>: {rest}"),
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
    .collect()
}

#[test]
fn a_single_process_install_moves_to_postgresql_with_nothing_lost() -> Result<()> {
    let pg = Postgres::start()?;
    let mut rt = Runtime::init_on_sqlite()?;
    run_ok(rt.cli().args([
        "gateway", "create", "--tenant", "acme", "eng", "--tools", "diag.*",
    ]));
    run_ok(
        rt.cli()
            .args(["user", "add", "--tenant", "acme", "ada", "--groups", "eng"]),
    );
    run_ok(
        rt.cli()
            .args(["agent", "create", "--tenant", "acme", "ci", "--role", "dev"]),
    );
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    c.start(&rt, &[])?;
    // Calls leave records in the runtime's chain and receipts signed by the connector,
    // whose key the store keeps.
    for _ in 0..3 {
        rt.ping(&c.id).map_err(anyhow::Error::msg)?;
    }
    drop(c.process.take());
    rt.stop()?;
    let before = answers(&rt);

    let url = pg.create_database("runtime")?;
    let from = format!("sqlite:{}", rt.data_dir().display());
    let out = run_ok(
        rt.cli()
            .args(["migrate-store", "--from", &from, "--to", &url]),
    );
    assert!(out.contains("copied "), "{out}");
    assert!(out.contains(" connectors"), "{out}");
    assert!(
        out.contains("audit records now the chain of replica"),
        "{out}"
    );
    rt.set_database_url(&url);
    assert_eq!(answers(&rt), before);

    // Copying again would merge two installs: refused, and nothing changes.
    let again = run(rt
        .cli()
        .args(["migrate-store", "--from", &from, "--to", &url]));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already holds"), "{stderr}");
    assert_eq!(answers(&rt), before);

    // The runtime on PostgreSQL knows the connector, which comes back and is served; the
    // trail, with the new call's receipt, still verifies.
    rt.start()?;
    c.start(&rt, &[])?;
    let pong = rt.ping(&c.id).map_err(anyhow::Error::msg)?;
    assert_eq!(pong["ok"], true, "{pong}");
    let row = rt.connector(&c.id).expect("listed on PostgreSQL");
    assert_eq!(row["status"], "online", "{row}");
    rt.stop()?;
    // One chain in the database: the imported records and the new call's after them.
    let verified = run_ok(rt.cli().args(["audit", "verify", "--receipts"]));
    println!("{verified}");
    assert_eq!(verified.matches("chain intact").count(), 1, "{verified}");
    assert!(verified.contains("audit chain of replica"), "{verified}");
    Ok(())
}

/// `GET path` on the runtime's HTTPS listener: the status and body.
fn get(http: &reqwest::blocking::Client, rt: &Runtime, path: &str) -> Result<(u16, String)> {
    let r = http
        .get(format!("https://{}{path}", rt.https_endpoint()))
        .send()?;
    Ok((r.status().as_u16(), r.text()?))
}

#[test]
fn the_runtime_rides_out_a_postgresql_restart() -> Result<()> {
    let mut pg = Postgres::start()?;
    let url = pg.create_database("runtime")?;
    let mut rt = Runtime::init_on(&url)?;
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    c.start(&rt, &[])?;
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    let http = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
        .timeout(Duration::from_secs(10))
        .build()?;
    assert_eq!(
        get(&http, &rt, "/readyz")?,
        (200, r#"{"ready":true}"#.into())
    );
    assert_eq!(rt.ping(&c.id).map_err(anyhow::Error::msg)?["ok"], true);
    let serve_pid = rt.serve.as_ref().map(|p| p.pid());

    pg.stop()?;
    let (status, body) = wait_for(Duration::from_secs(10), "/readyz to say not ready", || {
        get(&http, &rt, "/readyz").ok().filter(|(s, _)| *s == 503)
    })?;
    assert!(
        body.contains("the store does not answer"),
        "{status} {body}"
    );
    assert_eq!(
        get(&http, &rt, "/livez")?.0,
        200,
        "the process itself is alive"
    );
    // A request that writes to the store (an MCP client registering): a retryable
    // refusal, promptly, and nothing half-done.
    let register = || {
        http.post(format!("https://{}/oauth/register", rt.https_endpoint()))
            .header("content-type", "application/json")
            .body(r#"{"redirect_uris":["http://127.0.0.1:9/cb"],"client_name":"during"}"#)
            .send()
    };
    assert_eq!(
        register()?.status(),
        503,
        "registering while the store is away"
    );

    pg.restart()?;
    wait_for(
        Duration::from_secs(15),
        "/readyz to say ready again",
        || get(&http, &rt, "/readyz").ok().filter(|(s, _)| *s == 200),
    )?;
    let pong = wait_for(Duration::from_secs(15), "a call through the tunnel", || {
        rt.ping(&c.id).ok().filter(|p| p["ok"] == true)
    })?;
    assert_eq!(pong["result"]["structured"]["tenant"], "acme");
    assert_eq!(register()?.status(), 201, "registering once it is back");
    assert_eq!(
        rt.serve.as_ref().map(|p| p.pid()),
        serve_pid,
        "the runtime was not restarted"
    );
    Ok(())
}

#[test]
fn two_replicas_on_one_database_share_connectors_and_revocations() -> Result<()> {
    let pg = Postgres::start()?;
    let url = pg.create_database("runtime")?;
    let mut one = Runtime::init_on(&url)?;
    // The operator's key-encryption key: the signing keys move into the database, sealed.
    let kek = one.dir.path().join("kek");
    std::fs::write(&kek, "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=\n")?;
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let kek_arg = kek.display().to_string();
    one.serve_args = vec![
        "--replica-id".into(),
        "rt-1".into(),
        "--key-encryption-key-file".into(),
        kek_arg.clone(),
    ];
    one.start()?;
    let mut two = one.replica()?;
    // The second replica has no secret key files of its own (only the CA's certificate and
    // its own HTTPS certificate): it signs and verifies with the sealed keys in the database.
    for key in [
        "ca.key",
        "token-signing.key",
        "request-state.key",
        "quic-reset.key",
        "ssh-host-ed25519.key",
    ] {
        match std::fs::remove_file(two.data_dir().join(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    two.serve_args = vec![
        "--replica-id".into(),
        "rt-2".into(),
        "--key-encryption-key-file".into(),
        kek_arg,
    ];
    two.start()?;
    let mut c = Connector::enroll(&one, "acme", "c1")?;
    c.start(&one, &[])?;
    // Replica 2 enrolls a connector with the sealed CA key and takes its tunnel.
    let mut other = Connector::enroll(&two, "acme", "c2")?;
    other.start(&two, &[])?;
    assert_eq!(two.connector(&other.id).expect("listed")["replica"], "rt-2");
    drop(other);

    let seen = two.connector(&c.id).expect("listed at the other replica");
    assert_eq!(seen["status"], "online", "{seen}");
    assert_eq!(seen["replica"], "rt-1", "{seen}");
    for key in ["ca.key", "token-signing.key", "request-state.key"] {
        assert!(!two.data_dir().join(key).exists(), "{key} made");
    }

    // The other replica restarting forgets only its own tunnels (it held none).
    two.stop()?;
    two.start()?;
    assert_eq!(two.connector(&c.id).expect("listed")["status"], "online");
    assert_eq!(one.ping(&c.id).map_err(anyhow::Error::msg)?["ok"], true);

    let t0 = Instant::now();
    run_ok(two.cli().args(["connector", "revoke", &c.id]));
    let proc = c.process.as_mut().expect("running");
    let status = proc.wait_exit(Duration::from_secs(10))?;
    println!(
        "revoked at replica rt-2: the tunnel held by rt-1 dropped and the connector exited {:?} later",
        t0.elapsed()
    );
    assert!(!status.success(), "a revoked connector exits with an error");
    assert!(c.log().contains("revoked"), "{}", c.log());
    assert_eq!(one.connector(&c.id).expect("listed")["status"], "revoked");

    // An access token issued by replica 1 is good at replica 2.
    run_ok(
        one.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let u = run_ok(one.cli().args(["user", "add", "--tenant", "acme", "carol"]));
    let a = run_ok(one.cli().args([
        "agent", "create", "--tenant", "acme", "bot", "--role", "dev",
    ]));
    let ca = std::fs::read(one.data_dir().join("ca.pem"))?;
    let base = |rt: &Runtime| format!("https://localhost:{}", rt.https_port);
    let oauth = e2e::oauth_client::OAuthClient::new(base(&one), &ca)?;
    let token = oauth.access_token(
        &format!("{}/t/acme/g/eng/mcp", base(&one)),
        "carol",
        &e2e::oauth_client::field(&u, "(shown once):"),
    )?;
    let http = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
        .build()?;
    // Behind a load balancer replicas share one public URL (the tokens' issuer and
    // audience): replica 2 takes replica 1's place on its port.
    one.stop()?;
    two.stop()?;
    two.https_port = one.https_port;
    two.start()?;
    let agent_key = e2e::oauth_client::field(&a, "X-MCP-Agent-Key):");
    let list_tools = |token: &str| -> Result<(u16, String)> {
        let resp = http
            .post(format!("{}/t/acme/g/eng/mcp", base(&two)))
            .bearer_auth(token)
            .header("x-mcp-agent-key", &agent_key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/list")
            .json(
                &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {},
                          "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"}}}}),
            )
            .send()?;
        Ok((resp.status().as_u16(), resp.text()?))
    };
    let first = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, body) = list_tools(&first)?;
    assert_eq!(status, 200, "a token of replica 1 at replica 2: {body}");
    assert!(body.contains("\"tools\""), "{body}");

    // The signing key rotated from the command line while replica 2 runs: it signs with the
    // new key within its half-second poll, and the tokens of the key it replaced stay good;
    // after a second rotation, those of the first key are refused.
    let kid_of = |token: &str| -> Result<String> {
        use base64::Engine as _;
        let header = token.split('.').next().unwrap_or_default();
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header)?,
        )?;
        Ok(header["kid"].as_str().unwrap_or_default().to_owned())
    };
    let carol_secret = e2e::oauth_client::field(&u, "(shown once):");
    let fresh_token = || -> Result<String> {
        let t = oauth.access_token(
            &format!("{}/t/acme/g/eng/mcp", base(&two)),
            "carol",
            &carol_secret,
        )?;
        Ok(t["access_token"].as_str().unwrap_or_default().to_owned())
    };
    let rotate = || {
        run_ok(two.cli().args([
            "keys",
            "rotate-token-signing",
            "--key-encryption-key-file",
            &kek.display().to_string(),
        ]))
    };
    let first_kid = kid_of(&first)?;
    let t0 = Instant::now();
    let said = rotate();
    assert!(said.contains("token-signing key rotated"), "{said}");
    // Replica 2 says when it takes the new key; only then is a token asked for (each sign-in
    // is several requests of the address's public budget, which a tight loop would spend).
    let taken = || {
        two.serve
            .as_ref()
            .is_some_and(|p| p.log_text().contains("token-signing key rotated"))
    };
    wait_for(
        Duration::from_secs(20),
        "replica 2 to take the new key",
        || taken().then_some(()),
    )?;
    let second = fresh_token()?;
    assert_ne!(kid_of(&second)?, first_kid, "a token of the new key");
    println!(
        "token-signing key rotated at the command line: replica 2 signed with the new key {:?} later",
        t0.elapsed()
    );
    assert_eq!(
        list_tools(&first)?.0,
        200,
        "the replaced key's token is still good"
    );
    assert_eq!(list_tools(&second)?.0, 200);
    rotate();
    wait_for(Duration::from_secs(10), "the second rotation", || {
        (list_tools(&first).ok()?.0 == 401).then_some(())
    })?;
    assert_eq!(list_tools(&second)?.0, 200, "one rotation ago: still good");
    Ok(())
}
