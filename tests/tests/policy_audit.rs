//! The permission intersection, visibility and the audit trail, end to end (issue 4): a
//! runtime, a connector with a fake GitHub Enterprise behind it, users and agents with
//! different roles and grants, and a real OTLP receiver.
//!
//! - tools/list differs per user and per agent exactly as the policy says, and a live
//!   session gets `notifications/tools/list_changed` after `policy apply`;
//! - denied calls never reach the connector (its own spans say so);
//! - runtime and connector spans share one trace id, and the exported audit log records
//!   carry who, what, where, the decision and deciding layer, outcome and trace;
//! - `audit verify` passes on the untouched log and names the record after an edit, a
//!   deletion and a swap; Prometheus metrics count calls and denials.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::mcp_client::McpClient;
use e2e::otlp::OtlpReceiver;
use e2e::{Connector, FakeUpstream, Runtime, free_port, run, run_ok, wait_for};
use serde_json::{Value, json};

const ALICE_PAT: &str = "ghp_aliceFakeToken000000000000000000000";
const BOB_PAT: &str = "ghp_bobFakeToken00000000000000000000000";

const POLICY: &str = r#"version = 1
[roles.triage]
description = "Read issues, comment"
allow = [{ tools = ["github_get_issue", "github_list_issues", "github_comment_on_issue"] }]
[roles.maintainer]
allow = [{ tools = ["github_*"] }]
[groups.admins]
allow = [{ tools = ["github_*"] }]
[groups.triagers]
allow = [{ tools = ["github_get_issue", "github_list_issues", "github_comment_on_issue"] }]
[gateways.eng]
tools = ["github_*"]
[hooks]
confirm_destructive = false
"#;

struct Env {
    rt: Runtime,
    config: std::path::PathBuf,
    ghes: FakeUpstream,
    connector: Connector,
}

/// A runtime (with `serve_args`), a fake GHES, a connector exporting spans to `otlp`.
fn env(serve_args: &[String], otlp: Option<&str>) -> Result<Env> {
    let mut rt = Runtime::init()?;
    rt.serve_args = serve_args.to_vec();
    rt.apply_policy("acme", POLICY);
    rt.start()?;
    let ghes = FakeUpstream::start(rt.dir.path(), "github", &[])?;
    let mut connector = Connector::enroll(&rt, "acme", "c1")?;
    let telemetry = otlp
        .map(|e| format!("[telemetry]\notlp_endpoint = \"{e}\"\n\n"))
        .unwrap_or_default();
    let config = connector.configure(
        &format!(
            "{telemetry}[[provider]]\nname = \"ghes\"\nkind = \"github\"\napi_url = \"{}\"\n",
            ghes.api_url()
        ),
        "version = 1\n[[allow]]\ntools = [\"github_*\", \"diag.*\"]\n",
        &[],
    )?;
    connector.start_configured(&rt, &config)?;
    Ok(Env {
        rt,
        config,
        ghes,
        connector,
    })
}

/// Adds and signs in user `name`; alice and bob get their GitHub tokens in the vault.
fn user(env: &Env, name: &str, group: &str, agent: &str, role: &str) -> Result<McpClient> {
    let client = McpClient::new_user(&env.rt, "acme", "eng", name, group, agent, role)?;
    let pat = match name {
        "alice" => Some(ALICE_PAT),
        "bob" => Some(BOB_PAT),
        _ => None,
    };
    if let Some(pat) = pat {
        Connector::vault_set(&env.config, &format!("user/ghes/{}", client.user_id), pat)?;
    }
    Ok(client)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn tools_list_follows_the_user_and_the_agent_and_changes_live() -> Result<()> {
    let env = env(&[], None)?;
    let alice_triage = user(&env, "alice", "admins", "tri", "triage")?;
    let alice_maint = McpClient::new_user(
        &env.rt,
        "acme",
        "eng",
        "alice2",
        "admins",
        "maint",
        "maintainer",
    )?;
    let bob_maint = user(&env, "bob", "triagers", "maint2", "maintainer")?;
    let triage_set = vec![
        "github_comment_on_issue".to_owned(),
        "github_get_issue".to_owned(),
        "github_list_issues".to_owned(),
    ];
    // An upstream administrator through a triage agent: the agent's role decides.
    assert_eq!(sorted(alice_triage.tool_names()?), triage_set);
    // The same kind of user through a maintainer agent: everything GitHub.
    let all = sorted(alice_maint.tool_names()?);
    assert!(all.len() > triage_set.len(), "{all:?}");
    assert!(all.iter().all(|t| t.starts_with("github_")), "{all:?}");
    // A triage user through a maintainer agent: the user's grants decide.
    assert_eq!(sorted(bob_maint.tool_names()?), triage_set);

    // A live legacy session hears about a policy change.
    let base = format!("https://localhost:{}", env.rt.https_port);
    let ca = std::fs::read(env.rt.data_dir().join("ca.pem"))?;
    let (session, stream) = open_legacy_session(&env, &base, &ca)?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    env.rt.apply_policy(
        "acme",
        &POLICY.replace(
            "\"github_comment_on_issue\"] }]\n[roles.maintainer]",
            "\"github_comment_on_issue\", \"github_whoami\"] }]\n[roles.maintainer]",
        ),
    );
    let notice = wait_for(Duration::from_secs(10), "tools/list_changed", || {
        rx.try_iter()
            .find(|l| l.contains("notifications/tools/list_changed"))
    })?;
    println!("live session {session} got: {notice}");
    // The agent's role now allows whoami; alice's grants do too, so she sees it.
    assert!(
        alice_triage
            .tool_names()?
            .contains(&"github_whoami".to_owned())
    );
    // bob's grants do not: still hidden from him, whichever agent.
    assert!(
        !bob_maint
            .tool_names()?
            .contains(&"github_whoami".to_owned())
    );

    // The tenant's only connector going away changes the tools too: the session hears it,
    // and tools/list no longer offers what nothing could run.
    let _ = rx.try_iter().count();
    if let Some(p) = env.connector.process.as_ref() {
        p.signal(nix::sys::signal::Signal::SIGTERM);
    }
    let notice = wait_for(
        Duration::from_secs(10),
        "tools/list_changed after the connector left",
        || {
            rx.try_iter()
                .find(|l| l.contains("notifications/tools/list_changed"))
        },
    )?;
    println!("after the connector left: {notice}");
    assert!(alice_maint.tool_names()?.is_empty());
    Ok(())
}

/// Opens a 2025-11-25 session and its GET event stream; returns the session id and stream.
fn open_legacy_session(
    env: &Env,
    base: &str,
    ca: &[u8],
) -> Result<(String, reqwest::blocking::Response)> {
    let u = run_ok(env.rt.cli().args([
        "user", "add", "--tenant", "acme", "carol", "--groups", "admins",
    ]));
    let a = run_ok(env.rt.cli().args([
        "agent", "create", "--tenant", "acme", "watcher", "--role", "triage",
    ]));
    let url = format!("{base}/t/acme/g/eng/mcp");
    let oauth = e2e::oauth_client::OAuthClient::new(base.to_owned(), ca)?;
    let token = oauth.access_token(
        &url,
        "carol",
        &e2e::oauth_client::field(&u, "(shown once):"),
    )?;
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().unwrap_or_default()
    );
    let key = e2e::oauth_client::field(&a, "X-MCP-Agent-Key):");
    let http = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca)?])
        .timeout(None)
        .build()?;
    let resp = http
        .post(&url)
        .header("authorization", &bearer)
        .header("x-mcp-agent-key", &key)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "watcher", "version": "1"}}}))
        .send()?;
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .context("session id")?
        .to_owned();
    let _ = resp.text();
    http.post(&url)
        .header("authorization", &bearer)
        .header("x-mcp-agent-key", &key)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()?;
    let stream = http
        .get(&url)
        .header("authorization", &bearer)
        .header("x-mcp-agent-key", &key)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("accept", "text/event-stream")
        .send()?;
    anyhow::ensure!(
        stream.status().is_success(),
        "GET stream: {}",
        stream.status()
    );
    Ok((session, stream))
}

#[test]
fn denials_stay_in_the_runtime_spans_join_and_audit_records_are_exported() -> Result<()> {
    let otlp = OtlpReceiver::start()?;
    let metrics_port = free_port();
    let env = env(
        &[
            "--otlp-endpoint".into(),
            otlp.endpoint(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{metrics_port}"),
        ],
        Some(&otlp.endpoint()),
    )?;
    let alice = user(&env, "alice", "admins", "tri", "triage")?;
    env.ghes.clear_requests()?;
    // Allowed: the triage role reads issues.
    let ok = alice.call(
        "github_get_issue",
        json!({"owner": "acme", "repo": "widgets", "number": 1}),
    )?;
    assert_eq!(ok["isError"], false, "{ok}");
    // Denied by the agent layer: the triage role does not update issues.
    let denied = alice.call(
        "github_update_issue",
        json!({"owner": "acme", "repo": "widgets", "number": 1, "state": "closed"}),
    )?;
    assert_eq!(denied["isError"], true, "{denied}");
    let text = denied["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("denied by the agent layer") && text.contains("role triage"),
        "{text}"
    );
    // The upstream saw the allowed call only.
    let paths: Vec<String> = env
        .ghes
        .requests()?
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p == "GET /api/v3/repos/acme/widgets/issues/1"),
        "{paths:?}"
    );
    assert!(!paths.iter().any(|p| p.starts_with("PATCH")), "{paths:?}");

    // Spans: the runtime's call span, the connector's, and its upstream request span share
    // one trace; the denied call has a runtime span and no connector span.
    let spans = wait_for(Duration::from_secs(20), "spans from both processes", || {
        let s = otlp.spans();
        let connector_side = s
            .iter()
            .any(|x| x.service == "edge-connector" && x.name == "call github_get_issue");
        let runtime_side = s.iter().filter(|x| x.service == "cloud-runtime").count() >= 2;
        (connector_side && runtime_side).then_some(s)
    })?;
    let runtime_call = spans
        .iter()
        .find(|s| s.service == "cloud-runtime" && s.name == "tools/call github_get_issue")
        .context("runtime span")?;
    let connector_call = spans
        .iter()
        .find(|s| s.service == "edge-connector" && s.name == "call github_get_issue")
        .context("connector span")?;
    let upstream = spans
        .iter()
        .find(|s| {
            s.service == "edge-connector" && s.name.starts_with("GET /repos/{owner}/{repo}/issues")
        })
        .context("upstream span")?;
    assert_eq!(connector_call.trace_id, runtime_call.trace_id);
    assert_eq!(connector_call.parent_span_id, runtime_call.span_id);
    assert_eq!(upstream.trace_id, runtime_call.trace_id);
    assert_eq!(upstream.parent_span_id, connector_call.span_id);
    assert!(
        spans
            .iter()
            .any(|s| s.service == "cloud-runtime" && s.name == "tools/call github_update_issue"),
        "the denied call has a runtime span"
    );
    assert!(
        !spans
            .iter()
            .any(|s| s.service == "edge-connector" && s.name.contains("update_issue")),
        "the denied call never reached the connector"
    );
    println!(
        "trace {}: runtime span {} -> connector span {} -> upstream span {}",
        runtime_call.trace_id, runtime_call.span_id, connector_call.span_id, upstream.span_id
    );

    // Audit records over OTLP: decision, upstream and outcome for the allowed call, one
    // decision for the denial, each with who, what and the trace.
    let logs = wait_for(Duration::from_secs(20), "audit log records", || {
        let l = otlp.logs();
        (l.iter()
            .filter(|r| r.event_name == "mcp_edge.audit")
            .count()
            >= 4)
            .then_some(l)
    })?;
    let of = |tool: &str, kind: &str| {
        logs.iter()
            .filter(|r| r.attr("mcp_edge.tool") == Some(tool) && r.attr("audit.kind") == Some(kind))
            .cloned()
            .collect::<Vec<_>>()
    };
    let decision = of("github_get_issue", "decision");
    let d = decision.first().context("decision record")?;
    for (k, v) in [
        ("mcp_edge.tenant", "acme"),
        ("mcp_edge.gateway", "eng"),
        ("mcp_edge.user", "alice"),
        ("mcp_edge.agent", "tri"),
        ("mcp_edge.target", "acme/widgets"),
        ("mcp_edge.decision", "allow"),
    ] {
        assert_eq!(d.attr(k), Some(v), "{k} in {d:?}");
    }
    assert_eq!(
        d.trace_id, runtime_call.trace_id,
        "audit record in the call's trace"
    );
    assert_eq!(d.span_id, runtime_call.span_id);
    assert!(
        d.attr("mcp_edge.arguments.hmac_sha256")
            .is_some_and(|h| h.len() == 64)
    );
    assert!(
        !d.body.contains("\"number\":1"),
        "arguments are recorded as a hash: {}",
        d.body
    );
    let up = of("github_get_issue", "upstream");
    let u = up.first().context("upstream record")?;
    assert_eq!(
        u.attr("http.route"),
        Some("/repos/{owner}/{repo}/issues/{issue_number}")
    );
    assert_eq!(u.attr("http.response.status_code"), Some("200"));
    assert_eq!(
        u.attr("mcp_edge.connector"),
        Some(env.connector.id.as_str())
    );
    let outcome = of("github_get_issue", "outcome");
    let o = outcome.first().context("outcome record")?;
    assert_eq!(o.attr("mcp_edge.outcome"), Some("ok"));
    assert!(o.attr("mcp_edge.duration_ms").is_some());
    let deny = of("github_update_issue", "decision");
    let dd = deny.first().context("denial record")?;
    assert_eq!(dd.attr("mcp_edge.decision"), Some("deny"));
    assert_eq!(dd.attr("mcp_edge.layer"), Some("agent"));
    assert!(
        dd.attr("mcp_edge.reason")
            .is_some_and(|r| r.contains("role triage"))
    );
    assert!(
        of("github_update_issue", "outcome").is_empty(),
        "a denial has no outcome"
    );

    // Prometheus counts both.
    let text =
        reqwest::blocking::get(format!("http://127.0.0.1:{metrics_port}/metrics"))?.text()?;
    assert!(
        text.contains(
            r#"mcp_edge_tool_calls_total{tenant="acme",tool="github_get_issue",outcome="ok"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"mcp_edge_denials_total{tenant="acme",layer="agent"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"mcp_edge_connectors_online{tenant="acme"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("mcp_edge_tool_call_duration_seconds_bucket"),
        "{text}"
    );

    // The local audit log has the same records, and its chain verifies.
    let verify = run(env.rt.cli().args(["audit", "verify"]));
    assert!(verify.status.success(), "{verify:?}");
    println!("{}", String::from_utf8_lossy(&verify.stdout).trim());
    // Calls refused before any layer decides (no such tool, a malformed target) leave a
    // denial record too: probing leaves a trace.
    let unknown = alice.call("github_no_such_tool", json!({}))?;
    assert!(unknown["error"].is_object(), "{unknown}");
    // A name no tool could have (too long, odd characters) is recorded as a placeholder.
    let forged = alice.call(&format!("no such tool {}", "y".repeat(10_000)), json!({}))?;
    assert!(forged["error"].is_object(), "{forged}");
    let malformed = alice.call(
        "github_get_issue",
        json!({"owner": "..", "repo": "widgets", "number": 1}),
    )?;
    assert!(malformed["error"].is_object(), "{malformed}");
    let records = wait_for(Duration::from_secs(5), "the refusals' records", || {
        let tail = run_ok(env.rt.cli().args(["audit", "tail", "--json", "-n", "50"]));
        let records: Vec<Value> = tail
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        // Records are written behind the calls: wait for the last refusal's.
        records
            .iter()
            .any(|r| {
                r["tool"] == "github_get_issue"
                    && r["reason"]
                        .as_str()
                        .is_some_and(|t| t.contains("invalid target"))
            })
            .then_some(records)
    })?;
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "decision" && r["layer"] == "agent")
    );
    let refusal = |tool: &str, reason: &str| {
        records.iter().any(|r| {
            r["kind"] == "decision"
                && r["decision"] == "deny"
                && r["tool"] == tool
                && r["user"] == "alice"
                && r["reason"].as_str().is_some_and(|t| t.contains(reason))
        })
    };
    assert!(
        refusal("github_no_such_tool", "unknown tool"),
        "{records:?}"
    );
    assert!(refusal("github_get_issue", "invalid target"), "{records:?}");
    assert!(
        refusal("(invalid tool name)", "unknown tool"),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .all(|r| !r["tool"].as_str().unwrap_or_default().contains("yyyy"))
    );
    Ok(())
}

#[test]
fn audit_verify_names_an_edited_a_deleted_and_a_swapped_record() -> Result<()> {
    let mut env = env(&[], None)?;
    let alice = user(&env, "alice", "admins", "tri", "triage")?;
    for n in 1..=3 {
        alice.call(
            "github_get_issue",
            json!({"owner": "acme", "repo": "widgets", "number": n}),
        )?;
    }
    // Stop the runtime so the log is final (and checkpointed).
    env.rt.stop()?;
    if env.rt.database_url().starts_with("postgres") {
        return tamper_in_database(&env.rt);
    }
    let log = env.rt.data_dir().join("audit.log");
    let original = std::fs::read_to_string(&log)?;
    let lines: Vec<&str> = original.lines().collect();
    assert!(
        lines.len() >= 9,
        "3 calls make at least 9 records: {}",
        lines.len()
    );
    let ok = run(env.rt.cli().args(["audit", "verify"]));
    assert!(ok.status.success(), "{ok:?}");

    let check = |tampered: String, expect: &str| -> Result<()> {
        std::fs::write(&log, tampered)?;
        let out = run(env.rt.cli().args(["audit", "verify"]));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "tampering went unnoticed");
        assert!(stderr.contains(expect), "expected {expect:?} in:\n{stderr}");
        println!("{}", stderr.lines().next().unwrap_or_default());
        Ok(())
    };
    // An edited record (the user changed) is named by its line and sequence number.
    let edited: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 4 {
                l.replace("\"alice\"", "\"mallory\"")
            } else {
                (*l).to_owned()
            }
        })
        .collect();
    check(
        edited.join("\n") + "\n",
        "line 5 (record 5): its content does not match its hash",
    )?;
    // A deleted record.
    let deleted: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, l)| *l)
        .collect();
    check(deleted.join("\n") + "\n", "record 4 is missing")?;
    // A swapped pair.
    let mut swapped = lines.clone();
    swapped.swap(5, 6);
    check(swapped.join("\n") + "\n", "line 7 (record 6): out of order")?;
    // Records cut from the end (the checkpoint remembers how far the log went).
    let cut: Vec<&str> = lines.iter().take(lines.len() - 2).copied().collect();
    check(cut.join("\n") + "\n", "removed from the end")?;
    std::fs::write(&log, original)?;
    assert!(run(env.rt.cli().args(["audit", "verify"])).status.success());
    Ok(())
}

/// The same tampering, on a chain kept in PostgreSQL (replicas): rows edited, deleted,
/// swapped and cut from the end, each named by `audit verify`.
fn tamper_in_database(rt: &Runtime) -> Result<()> {
    let psql = |sql: &str| rt.psql(sql).map(drop);
    assert!(run(rt.cli().args(["audit", "verify"])).status.success());
    psql("CREATE TABLE audit_saved AS SELECT * FROM audit_chain")?;
    let check = |sql: &str, expect: &str| -> Result<()> {
        psql(sql)?;
        let out = run(rt.cli().args(["audit", "verify"]));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "tampering went unnoticed: {sql}");
        assert!(stderr.contains(expect), "expected {expect:?} in:\n{stderr}");
        println!("{}", stderr.lines().next().unwrap_or_default());
        psql("DELETE FROM audit_chain; INSERT INTO audit_chain SELECT * FROM audit_saved")
    };
    check(
        "UPDATE audit_chain SET line = convert_to(replace(convert_from(line, 'UTF8'), '\"alice\"', '\"mallory\"'), 'UTF8') WHERE seq = 5",
        "line 5 (record 5): its content does not match its hash",
    )?;
    check(
        "DELETE FROM audit_chain WHERE seq = 4",
        "record 4 is missing",
    )?;
    check(
        "UPDATE audit_chain SET seq = -1 WHERE seq = 6; UPDATE audit_chain SET seq = 6 WHERE seq = 7; UPDATE audit_chain SET seq = 7 WHERE seq = -1",
        "out of order",
    )?;
    check(
        "DELETE FROM audit_chain WHERE seq > (SELECT max(seq) - 2 FROM audit_chain)",
        "removed from the end",
    )?;
    assert!(run(rt.cli().args(["audit", "verify"])).status.success());
    Ok(())
}

#[test]
fn policy_cli_applies_shows_and_checks() -> Result<()> {
    let env = env(&[], None)?;
    run_ok(env.rt.cli().args([
        "user", "add", "--tenant", "acme", "alice", "--groups", "admins",
    ]));
    run_ok(env.rt.cli().args([
        "user", "add", "--tenant", "acme", "bob", "--groups", "triagers",
    ]));
    run_ok(env.rt.cli().args([
        "agent", "create", "--tenant", "acme", "tri", "--role", "triage",
    ]));
    run_ok(env.rt.cli().args([
        "agent",
        "create",
        "--tenant",
        "acme",
        "maint",
        "--role",
        "maintainer",
    ]));
    let check = |agent: &str, who: &str, tool: &str| {
        let out = run(env.rt.cli().args([
            "policy",
            "check",
            "--tenant",
            "acme",
            "--agent",
            agent,
            "--user",
            who,
            "--tool",
            tool,
            "--repo",
            "acme/widgets",
            "--gateway",
            "eng",
        ]));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = check("tri", "alice", "github_merge_pull_request");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("deny (agent)"), "{out}");
    let (code, out) = check("maint", "alice", "github_merge_pull_request");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("allow (all)"), "{out}");
    let (code, out) = check("maint", "bob", "github_merge_pull_request");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("deny (user)"), "{out}");
    // The connector's reported local policy is the fourth layer.
    let (code, out) = check("maint", "alice", "gitlab_get_issue");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("deny (gateway)"), "{out}");
    let show = run_ok(env.rt.cli().args(["policy", "show", "--tenant", "acme"]));
    assert!(
        show.contains("revision 2") && show.contains("[roles.triage]"),
        "{show}"
    );
    // A bad file is refused with file, line and field, and the policy in force stays.
    let bad = env.rt.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[roles.x]\nallow = [{ tools = [\"ok\", \"not ok\"] }]\n",
    )?;
    let out = run(env
        .rt
        .cli()
        .args(["policy", "apply", "--tenant", "acme"])
        .arg(&bad));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.toml:3:") && err.contains("roles.x.allow[0].tools[1]"),
        "{err}"
    );
    let show = run_ok(env.rt.cli().args(["policy", "show", "--tenant", "acme"]));
    assert!(show.contains("revision 2"), "{show}");
    Ok(())
}
