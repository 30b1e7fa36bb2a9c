//! Three runtime replicas on one PostgreSQL database, joined by one NATS server (Debian's
//! own servers, started by the test), with one connector whose tunnel replica 1 holds:
//!
//! - A 2025-06-18 session opened at replica 2 lists the connector's tools and calls them
//!   through replica 1's tunnel, with its requests landing on replicas 2 and 3 in turn (no
//!   sticky load balancer); the stateless 2026-07-28 revision calls at replica 3.
//! - A policy applied at replica 2 reaches a session opened at replica 3 as
//!   `notifications/tools/list_changed`, on an SSE stream the client opened at replica 2.
//! - A session of a replica that died is unknown (404) everywhere, so clients open anew.
//! - A revocation issued at replica 3 drops a tunnel replica 1 holds.
//! - Replica 1 killed with SIGKILL: a call entering at replica 2 fails at once with a
//!   retryable error (never hangs), and the tools are gone from the others' lists within
//!   the directory's expiry.
//!
//! And a connector that keeps tunnels to replicas 1 and 2 (`[[tunnel.replica]]`), with calls
//! entering at replica 3 (which crosses NATS to either) and at replica 2:
//!
//! - Replica 1 drained (SIGTERM): not one call fails; its tunnel comes back when it does.
//! - Replica 1 killed (SIGKILL): at most the call each client had in flight there fails,
//!   with a retryable error, and the connector's own log shows no call ran twice.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use e2e::mcp_client::message;
use e2e::nats::Nats;
use e2e::postgres::Postgres;
use e2e::{Connector, Runtime, free_port, run_ok, wait_for};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

/// One replica and the plain-HTTP port its MCP endpoint answers on.
struct Replica {
    rt: Runtime,
    http: u16,
}

impl Replica {
    fn args(name: &str, nats: &Nats, http: u16) -> Vec<String> {
        vec![
            "--replica-id".into(),
            name.into(),
            "--nats-url".into(),
            nats.url(),
            "--dev-unauthenticated".into(),
            "--dev-http-listen".into(),
            format!("127.0.0.1:{http}"),
        ]
    }

    fn url(&self) -> String {
        format!("http://localhost:{}/t/acme/g/eng/mcp", self.http)
    }
}

fn post(
    http: &Client,
    url: &str,
    version: &str,
    session: Option<&str>,
    body: &Value,
) -> Result<Response> {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", version);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    Ok(req.body(body.to_string()).send()?)
}

/// Opens a 2025-06-18 session at `url`; returns its id.
fn open_session(http: &Client, url: &str) -> Result<String> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}});
    let resp = post(http, url, "2025-06-18", None, &init)?;
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .context("a session id")?
        .to_owned();
    let _ = resp.text();
    let ack = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(http, url, "2025-06-18", Some(&session), &ack)?;
    Ok(session)
}

fn request(
    http: &Client,
    url: &str,
    version: &str,
    session: Option<&str>,
    id: i64,
    method: &str,
    params: Value,
) -> Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let text = post(http, url, version, session, &body)?.text()?;
    message(&text, id).context(text)
}

fn tool_names(http: &Client, url: &str, session: &str) -> Result<Vec<String>> {
    let list = request(
        http,
        url,
        "2025-06-18",
        Some(session),
        1,
        "tools/list",
        json!({}),
    )?;
    Ok(list["result"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect())
}

/// PostgreSQL, NATS and replicas `rt-1`, `rt-2` and `rt-3` on one database with a gateway
/// `eng` in tenant `acme` (the servers are stopped when their handles drop).
fn three_replicas() -> Result<(Postgres, Nats, Replica, Replica, Replica)> {
    let pg = Postgres::start()?;
    let nats = Nats::start()?;
    let url = pg.create_database("runtime")?;
    let mut one = Replica {
        rt: Runtime::init_on(&url)?,
        http: free_port(),
    };
    one.rt.serve_args = Replica::args("rt-1", &nats, one.http);
    run_ok(
        one.rt
            .cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    one.rt.start()?;
    let replica = |name: &str| -> Result<Replica> {
        let http = free_port();
        let mut rt = one.rt.replica()?;
        rt.serve_args = Replica::args(name, &nats, http);
        rt.start()?;
        Ok(Replica { rt, http })
    };
    let (two, three) = (replica("rt-2")?, replica("rt-3")?);
    Ok((pg, nats, one, two, three))
}

#[test]
fn three_replicas_serve_one_connector_through_nats() -> Result<()> {
    let (_pg, _nats, mut one, two, three) = three_replicas()?;
    let mut c = Connector::enroll(&one.rt, "acme", "c1")?;
    c.start(&one.rt, &[])?;
    let http = Client::builder().timeout(Duration::from_secs(30)).build()?;

    // A session at replica 2 sees and calls the tools of the tunnel replica 1 holds.
    let session = open_session(&http, &two.url())?;
    let t0 = Instant::now();
    let names = wait_for(
        Duration::from_secs(10),
        "replica 2 to list the tools",
        || {
            tool_names(&http, &two.url(), &session)
                .ok()
                .filter(|n| n.iter().any(|t| t == "diag.echo"))
        },
    )?;
    println!(
        "replica 2 lists {} tools of the connector at replica 1 ({:?} after its tunnel came up)",
        names.len(),
        t0.elapsed()
    );
    // The next requests of the same session land on replica 3, which carries them to 2.
    assert_eq!(tool_names(&http, &three.url(), &session)?, names);
    let call = request(
        &http,
        &three.url(),
        "2025-06-18",
        Some(&session),
        2,
        "tools/call",
        json!({"name": "diag.echo", "arguments": {"message": "via nats"}}),
    )?;
    assert_eq!(
        call["result"]["structuredContent"]["message"], "via nats",
        "{call}"
    );
    assert_eq!(
        call["result"]["structuredContent"]["connector_id"],
        c.id.as_str(),
        "{call}"
    );

    // The stateless revision at replica 3.
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"}});
    let stateless = http
        .post(three.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "diag.echo")
        .body(
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                   "params": {"name": "diag.echo", "arguments": {"message": "stateless"}, "_meta": meta}})
            .to_string(),
        )
        .send()?
        .text()?;
    assert_eq!(
        message(&stateless, 3).context(stateless.clone())?["result"]["structuredContent"]["message"],
        "stateless"
    );

    // A session opened at replica 3, its SSE stream opened at replica 2, hears of a policy
    // applied at replica 2.
    let watched = open_session(&http, &three.url())?;
    let stream = Client::builder()
        .timeout(None)
        .build()?
        .get(two.url())
        .header("mcp-session-id", &watched)
        .header("mcp-protocol-version", "2025-06-18")
        .header("accept", "text/event-stream")
        .send()?;
    assert!(
        stream.status().is_success(),
        "GET stream: {}",
        stream.status()
    );
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    two.rt.apply_policy(
        "acme",
        "version = 1\n[roles.dev]\nallow = [{ tools = [\"*\"] }]\n[groups.dev]\nallow = [{ tools = [\"*\"] }]\n",
    );
    wait_for(Duration::from_secs(5), "list_changed at replica 3", || {
        rx.try_iter()
            .find(|l| l.contains("notifications/tools/list_changed"))
    })?;
    println!(
        "policy applied at replica 2: list_changed reached a session at replica 3 {:?} later",
        t0.elapsed()
    );

    // A second connector at replica 1, revoked at replica 3: its tunnel drops.
    let mut doomed = Connector::enroll(&one.rt, "acme", "c2")?;
    doomed.start(&one.rt, &[])?;
    let t0 = Instant::now();
    run_ok(three.rt.cli().args(["connector", "revoke", &doomed.id]));
    let status = doomed
        .process
        .as_mut()
        .context("running")?
        .wait_exit(Duration::from_secs(10))?;
    println!(
        "revoked at replica 3: the tunnel held by replica 1 dropped and the connector exited {:?} later",
        t0.elapsed()
    );
    assert!(!status.success(), "a revoked connector exits with an error");

    // Replica 1 killed: a call entering at replica 2 fails fast and says to retry, and
    // replica 1's sessions are unknown everywhere.
    let orphan = open_session(&http, &one.url())?;
    one.rt.kill();
    let t0 = Instant::now();
    let lost = request(
        &http,
        &two.url(),
        "2025-06-18",
        Some(&session),
        4,
        "tools/call",
        json!({"name": "diag.echo", "arguments": {"message": "after the crash"}}),
    )?;
    let took = t0.elapsed();
    println!("replica 1 killed: a call at replica 2 answered in {took:?}: {lost}");
    let status = post(
        &http,
        &two.url(),
        "2025-06-18",
        Some(&orphan),
        &json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}),
    )?
    .status();
    assert_eq!(status.as_u16(), 404, "the dead replica's session");
    assert_eq!(lost["result"]["isError"], true, "{lost}");
    assert!(
        lost.to_string().contains("retry"),
        "a retryable failure: {lost}"
    );
    assert!(took < Duration::from_secs(10), "it never hangs: {took:?}");
    let t0 = Instant::now();
    wait_for(
        Duration::from_secs(10),
        "the dead replica's tools to go",
        || {
            tool_names(&http, &three.url(), &watched)
                .ok()
                .filter(|n| !n.iter().any(|t| t == "diag.echo"))
        },
    )?;
    println!(
        "replica 3 dropped the dead replica's tunnel from its tools {:?} after the kill",
        t0.elapsed()
    );
    drop(c);
    Ok(())
}

/// What a load worker saw.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    /// (when, the answer or the error) of every call that did not succeed.
    failed: Vec<(Instant, String)>,
}

/// Calls `diag.echo` at `url` (stateless revision, a message no other call carries) until
/// `stop`.
fn load(url: String, worker: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Tally> {
    std::thread::spawn(move || {
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        let mut tally = Tally::default();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let message = format!("{worker}-{n}");
            match stateless_echo(&http, &url, &message) {
                Ok(v) if v["result"]["structuredContent"]["message"] == message.as_str() => {
                    tally.ok += 1
                }
                Ok(v) => tally.failed.push((Instant::now(), v.to_string())),
                Err(e) => tally.failed.push((Instant::now(), format!("{e:#}"))),
            }
        }
        tally
    })
}

fn stateless_echo(http: &Client, url: &str, text: &str) -> Result<Value> {
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"}});
    let body = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "diag.echo")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "diag.echo", "arguments": {"message": text}, "_meta": meta}})
            .to_string(),
        )
        .send()?
        .text()?;
    message(&body, 1).context(body)
}

/// How many tunnels the connector has had come up at `replica`, from its log.
fn tunnels_up_at(c: &Connector, replica: &str) -> usize {
    c.log()
        .lines()
        .filter(|l| l.contains("tunnel up") && l.contains(&format!("replica={replica}")))
        .count()
}

/// Runs load at replica 3 (which holds no tunnel: its calls cross NATS to whichever of
/// replicas 1 and 2 it picks) and at replica 2 while `during` runs; returns the tallies.
fn under_load(
    phase: &str,
    three: &Replica,
    two: &Replica,
    during: impl FnOnce() -> Result<()>,
) -> Result<Vec<(&'static str, Tally)>> {
    let stop = Arc::new(AtomicBool::new(false));
    let workers = [
        ("at-3a", three.url()),
        ("at-3b", three.url()),
        ("at-2", two.url()),
    ]
    .map(|(name, url)| (name, load(url, format!("{phase}-{name}"), stop.clone())));
    std::thread::sleep(Duration::from_millis(500));
    let result = during();
    stop.store(true, Ordering::Relaxed);
    let tallies = workers
        .into_iter()
        .map(|(name, w)| {
            Ok((
                name,
                w.join().map_err(|_| anyhow::anyhow!("worker panicked"))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    result?;
    Ok(tallies)
}

#[test]
fn a_connector_with_tunnels_to_two_replicas_survives_a_drain_and_a_kill() -> Result<()> {
    let (_pg, _nats, mut one, two, three) = three_replicas()?;
    // Tunnels to replicas 1 and 2, each by its own address; replica 3 holds none.
    let mut c = Connector::enroll(&one.rt, "acme", "c1")?;
    let config = c.configure(
        &format!(
            "[[tunnel.replica]]\nquic = \"localhost:{}\"\n[[tunnel.replica]]\nquic = \"localhost:{}\"\n",
            one.rt.quic_port, two.rt.quic_port
        ),
        "version = 1\n[[allow]]\ntools = [\"diag.*\"]\n",
        &[],
    )?;
    c.start_configured(&one.rt, &config)?;
    wait_for(
        Duration::from_secs(20),
        "tunnels at replicas 1 and 2",
        || (tunnels_up_at(&c, "rt-1") == 1 && tunnels_up_at(&c, "rt-2") == 1).then_some(()),
    )
    .with_context(|| c.log())?;
    let http = Client::builder().timeout(Duration::from_secs(30)).build()?;
    wait_for(
        Duration::from_secs(10),
        "replica 3 to reach the tools",
        || {
            stateless_echo(&http, &three.url(), "first")
                .ok()
                .filter(|v| v["result"]["structuredContent"]["message"] == "first")
        },
    )?;

    // Replica 1 drains (SIGTERM): it tells the connector to go away, and every call, at
    // replica 3 or 2, is served by the tunnel at replica 2. Not one fails.
    let t0 = Instant::now();
    let tallies = under_load("drain", &three, &two, || {
        one.rt.stop()?;
        println!("replica 1 drained and exited in {:?}", t0.elapsed());
        std::thread::sleep(Duration::from_secs(1));
        Ok(())
    })?;
    for (name, tally) in &tallies {
        println!(
            "drain, worker {name}: {} calls served, {} failed",
            tally.ok,
            tally.failed.len()
        );
        assert!(tally.ok > 0, "{name} made calls");
        assert!(tally.failed.is_empty(), "{name}: {:?}", tally.failed);
    }

    // Replica 1 back: the connector's tunnel to it returns by itself.
    one.rt.start()?;
    wait_for(
        Duration::from_secs(30),
        "the tunnel to replica 1 again",
        || (tunnels_up_at(&c, "rt-1") == 2).then_some(()),
    )
    .with_context(|| c.log())?;
    // Replica 3's directory has it again once it has relayed a call there.
    std::thread::sleep(Duration::from_secs(2));

    // Replica 1 killed (SIGKILL): only the calls replica 3 had relayed to it and that were
    // in flight there fail, each with a retryable error; the next call of each worker
    // already goes to replica 2.
    let mut killed_at = Instant::now();
    let tallies = under_load("kill", &three, &two, || {
        killed_at = Instant::now();
        one.rt.kill();
        std::thread::sleep(Duration::from_secs(6));
        Ok(())
    })?;
    for (name, tally) in &tallies {
        println!(
            "kill, worker {name}: {} calls served, {} failed {:?}",
            tally.ok,
            tally.failed.len(),
            tally
                .failed
                .iter()
                .map(|(at, why)| (at.saturating_duration_since(killed_at), why))
                .collect::<Vec<_>>()
        );
        assert!(tally.ok > 0, "{name} made calls");
        assert!(
            tally.failed.len() <= 1,
            "{name}: at most its one call in flight at the kill fails: {:?}",
            tally.failed
        );
        for (_, why) in &tally.failed {
            assert!(why.contains("retry"), "{name}: a retryable failure: {why}");
        }
    }
    assert!(
        tallies
            .iter()
            .find(|(n, _)| *n == "at-2")
            .is_some_and(|(_, t)| t.failed.is_empty()),
        "calls at replica 2 never touch replica 1"
    );

    // The connector's own log: no call ran twice (each carried a message of its own).
    let out = run_ok(
        Connector::cli()
            .args(["audit", "tail", "-n", "1000000", "--config"])
            .arg(&config),
    );
    let mut seen = std::collections::HashSet::new();
    let mut calls = 0;
    for line in out.lines() {
        let record: Value = serde_json::from_str(line)?;
        if record["kind"] == "call" && record["tool"] == "diag.echo" {
            calls += 1;
            let args = record["args_sha256"]
                .as_str()
                .context("args_sha256")?
                .to_owned();
            assert!(seen.insert(args), "a call ran twice: {record}");
        }
    }
    println!("the connector's log holds {calls} diag.echo calls, each once");
    drop(c);
    Ok(())
}
