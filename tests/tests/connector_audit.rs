//! The connector's own signed audit log (issue 17), end to end: calls through the tunnel to
//! the fake GitHub Enterprise Server leave a log that `edge-connector audit verify` accepts,
//! in which every request the fake received has its `upstream` record; and a connector
//! killed with SIGKILL during calls, again and again, restarts onto a log that verifies, in
//! which every request the fake received was preceded by its `call` record.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use e2e::mcp_client::McpClient;
use e2e::tool_suite::{GITHUB_TOKENS, ToolEnv};
use e2e::{Connector, run, wait_for};
use serde_json::{Value, json};

/// `edge-connector audit ARGS --config CONFIG`: exit status and standard output.
fn audit(env: &ToolEnv, args: &[&str]) -> (bool, String) {
    let out = run(Connector::cli()
        .arg("audit")
        .args(args)
        .arg("--config")
        .arg(&env.config));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Every record of the connector's log, parsed.
fn records(env: &ToolEnv) -> Vec<Value> {
    let (ok, out) = audit(env, &["tail", "-n", "100000"]);
    assert!(ok, "audit tail: {out}");
    out.lines()
        .map(|l| serde_json::from_str(l).expect("an NDJSON record"))
        .collect()
}

/// Whether the route template `template` (`/repos/{owner}/{repo}/issues`) names `path`
/// (which may carry the API base, `/api/v3/repos/acme/widgets/issues`).
fn route_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    p.len() >= t.len()
        && t.iter()
            .zip(&p[p.len() - t.len()..])
            .all(|(t, p)| t.contains('{') || t == p)
}

#[test]
fn every_upstream_request_has_a_signed_local_record_and_the_log_verifies() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let alice = env.user("alice");
    env.upstream.clear_requests()?;
    let widgets = |extra: Value| {
        let mut v = json!({"owner": "acme", "repo": "widgets"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    alice.ok("github_get_issue", widgets(json!({"number": 1})));
    alice.ok("github_list_issues", widgets(json!({})));
    alice.ok("github_list_pull_requests", widgets(json!({})));
    alice.ok("github_whoami", json!({}));

    let (ok, out) = audit(&env, &["verify"]);
    assert!(ok, "audit verify: {out}");
    assert!(out.contains("audit log verified"), "{out}");

    let (ok, key) = audit(&env, &["key"]);
    assert!(ok && key.starts_with("ed25519:"), "{key}");
    assert!(
        env.rt
            .serve
            .as_ref()
            .unwrap()
            .log_text()
            .contains(key.lines().next().unwrap()),
        "the runtime logs the key the connector sent at hello"
    );

    let recs = records(&env);
    let calls: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "call").collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    let first = calls[0];
    assert_eq!(first["tool"], "github_get_issue");
    assert_eq!(first["repo"], "acme/widgets");
    assert_eq!(first["tenant"], "acme");
    assert_eq!(first["decision"], "allow");
    assert_eq!(first["args_sha256"].as_str().map(str::len), Some(64));
    assert_eq!(first["user"], alice.client().user_id);
    let outcomes = recs
        .iter()
        .filter(|r| r["kind"] == "outcome" && r["result"] == "ok");
    assert_eq!(outcomes.count(), 4);

    // export: the same lines for a range around now; as OCSF, one API Activity event per
    // call and upstream request.
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (from, to) = (
        fmt(now - time::Duration::hours(1)),
        fmt(now + time::Duration::hours(1)),
    );
    let (ok, ndjson) = audit(&env, &["export", "--from", &from, "--to", &to]);
    assert!(ok, "{ndjson}");
    assert_eq!(ndjson.lines().count(), recs.len());
    let (ok, ocsf) = audit(
        &env,
        &["export", "--from", &from, "--to", &to, "--format", "ocsf"],
    );
    assert!(ok, "{ocsf}");
    let events: Vec<Value> = ocsf
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mapped = recs
        .iter()
        .filter(|r| r["kind"] == "call" || r["kind"] == "upstream")
        .count();
    assert_eq!(events.len(), mapped);
    assert!(
        events
            .iter()
            .all(|e| e["class_uid"] == 6003 && e["api"]["operation"].is_string())
    );

    let journal = env.upstream.requests()?;
    assert!(!journal.is_empty());
    let mut upstream: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "upstream").collect();
    for req in &journal {
        let (method, path, status) = (
            &req["method"],
            req["path"].as_str().unwrap(),
            &req["status"],
        );
        let found = upstream.iter().position(|r| {
            r["method"] == *method
                && r["status"] == *status
                && route_matches(r["path"].as_str().unwrap_or_default(), path)
        });
        let Some(i) = found else {
            panic!("no local upstream record for {req}; records: {upstream:?}");
        };
        let r = upstream.remove(i);
        assert_eq!(r["host"], "127.0.0.1");
        let text = r.to_string();
        assert!(!text.contains("ghp_"), "a token in the log: {text}");
    }
    Ok(())
}

/// Calls `github_get_issue` as the client's user until `stop`, a few times a second,
/// ignoring outcomes (a call in flight when the connector is killed ends only when the
/// runtime gives up on that tunnel: pacing keeps most callers free meanwhile).
fn keep_calling(client: McpClient, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let _ = client.call(
            "github_get_issue",
            json!({"owner": "acme", "repo": "widgets", "number": 1}),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_during_calls_leaves_a_log_that_verifies_with_a_call_record_for_every_request()
-> Result<()> {
    let mut env = ToolEnv::github().start()?;
    env.upstream.clear_requests()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for (login, token) in GITHUB_TOKENS {
        let agent = format!("agent-{login}");
        let client = McpClient::new_user(&env.rt, "acme", "eng", login, "eng", &agent, "triage")?;
        Connector::vault_set(&env.config, &format!("user/ghes/{}", client.user_id), token)?;
        let stop = stop.clone();
        callers.push(std::thread::spawn(move || keep_calling(client, stop)));
    }
    let issue_reads = |journal: &[Value]| {
        journal
            .iter()
            .filter(|r| r["method"] == "GET")
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/repos/acme/widgets/issues/1"))
            })
            .count()
    };
    for round in 0..3 {
        // Let calls reach the upstream, then kill the connector in the middle of them.
        let seen = issue_reads(&env.upstream.requests()?);
        wait_for(
            Duration::from_secs(30),
            "calls reaching the upstream",
            || (issue_reads(&env.upstream.requests().ok()?) >= seen + 5).then_some(()),
        )?;
        env.connector.process.as_mut().expect("running").kill();
        let config = env.config.clone();
        env.connector.start_configured(&env.rt, &config)?;
        wait_for(
            Duration::from_secs(20),
            "the restarted connector's audit log",
            || env.connector.log().contains("audit log open").then_some(()),
        )?;

        // The journal first: every request in it was preceded by a durable call record.
        let reads = issue_reads(&env.upstream.requests()?);
        let (ok, out) = audit(&env, &["verify"]);
        assert!(ok, "round {round}: audit verify after kill -9: {out}");
        let recorded = records(&env)
            .iter()
            .filter(|r| r["kind"] == "call" && r["decision"] == "allow")
            .filter(|r| r["tool"] == "github_get_issue")
            .count();
        assert!(
            recorded >= reads,
            "round {round}: the upstream saw {reads} issue reads, the log holds {recorded} call records"
        );
        println!(
            "round {round}: {reads} upstream reads, {recorded} call records; {}",
            out.trim()
        );
    }
    // Callers still waiting on a killed tunnel are not waited for: the test process ends.
    stop.store(true, Ordering::SeqCst);
    drop(callers);
    Ok(())
}

/// The runtime keeps each call's receipt with its outcome record: `cloud-runtime audit
/// verify --receipts` checks them against the key the connector announced, and fails on a
/// forged one; `edge-connector audit reconcile` holds the runtime's export against the
/// connector's log and names a record the runtime changed and one it dropped.
#[test]
fn receipts_verify_and_reconcile_names_what_the_runtime_changed_or_dropped() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let alice = env.user("alice");
    let widgets = |extra: Value| {
        let mut v = json!({"owner": "acme", "repo": "widgets"});
        if let (Some(v), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(e.clone());
        }
        v
    };
    alice.ok("github_get_issue", widgets(json!({"number": 1})));
    alice.ok("github_list_issues", widgets(json!({})));
    alice.ok("github_list_pull_requests", widgets(json!({})));
    alice.ok("github_whoami", json!({}));
    // Calls at once, so that outcomes are written in the same segment and their receipts
    // signed together (a batch); up to three rounds, until one batch is seen.
    let mut calls = 4;
    let mut batched = 0;
    for _ in 0..3 {
        let done: Vec<bool> = std::thread::scope(|s| {
            let running: Vec<_> = (0..24)
                .map(|_| {
                    let client = alice.client().fork();
                    s.spawn(move || {
                        client
                            .call("github_whoami", json!({}))
                            .is_ok_and(|r| r["isError"] != json!(true))
                    })
                })
                .collect();
            running
                .into_iter()
                .map(|t| t.join().unwrap_or(false))
                .collect()
        });
        assert!(done.iter().all(|ok| *ok), "{done:?}");
        calls += done.len();
        let out = run(env
            .rt
            .cli()
            .args(["audit", "tail", "-n", "10000", "--json"]));
        batched = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["receipt"]["count"].as_u64().is_some_and(|c| c > 1))
            .count();
        if batched > 0 {
            break;
        }
    }
    println!("{calls} calls, {batched} receipts signed in batches");
    assert!(batched > 0, "no two outcomes were ever written together");

    let rt_audit = |args: &[&str]| {
        let out = run(env.rt.cli().arg("audit").args(args));
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = rt_audit(&["verify", "--receipts"]);
    println!("{out}");
    assert!(
        ok && out.contains(&format!("{calls} receipts verify, 0 do not")),
        "{out}"
    );

    let (ok, export) = rt_audit(&["tail", "-n", "10000", "--json"]);
    assert!(ok, "{export}");
    let file = env.config.with_file_name("runtime-export.ndjson");
    std::fs::write(&file, &export)?;
    let (ok, out) = audit(&env, &["reconcile", "--from", &file.display().to_string()]);
    assert!(
        ok && out.contains(&format!("{calls} calls in the runtime's export")),
        "{out}"
    );

    // The runtime's record of one call altered, another call's outcome removed.
    let mut lines: Vec<Value> = export
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let outcome_of = |tool: &str, lines: &[Value]| {
        lines
            .iter()
            .position(|r| r["kind"] == "outcome" && r["tool"] == tool)
    };
    let changed = outcome_of("github_list_issues", &lines).expect("an outcome record");
    let changed_call = lines[changed]["call_id"].clone();
    lines[changed]["tool"] = json!("github_merge_pull_request");
    let dropped = outcome_of("github_list_pull_requests", &lines).expect("an outcome record");
    let dropped_call = lines[dropped]["call_id"].clone();
    lines.remove(dropped);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text)?;
    let (ok, out) = audit(&env, &["reconcile", "--from", &file.display().to_string()]);
    println!("{out}");
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "call {changed_call}: the runtime records the tool github_merge_pull_request, this connector ran github_list_issues"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "this connector ran call {dropped_call} (github_list_pull_requests"
        )),
        "{out}"
    );

    // A receipt whose signature the runtime forged (in its file, or its chain's row).
    let forge = |text: &str| {
        let at = text.find("\"signature\":\"").expect("a receipt") + "\"signature\":\"".len();
        let mut forged = text.to_owned();
        let c = if text[at..].starts_with('A') {
            "B"
        } else {
            "A"
        };
        forged.replace_range(at..at + 1, c);
        forged
    };
    if env.rt.database_url().starts_with("postgres") {
        let row = env.rt.psql(
            "SELECT replica || ' ' || seq FROM audit_chain WHERE convert_from(line, 'UTF8') LIKE '%\"signature\":\"%' ORDER BY seq LIMIT 1",
        )?;
        let (replica, seq) = row.trim().split_once(' ').expect("a receipt's row");
        let line = env.rt.psql(&format!(
            "SELECT convert_from(line, 'UTF8') FROM audit_chain WHERE replica = '{replica}' AND seq = {seq}"
        ))?;
        env.rt.psql(&format!(
            "UPDATE audit_chain SET line = convert_to($forged${}$forged$, 'UTF8') WHERE replica = '{replica}' AND seq = {seq}",
            forge(line.trim_end_matches('\n'))
        ))?;
    } else {
        let log = env.rt.data_dir().join("audit.log");
        let text = std::fs::read_to_string(&log)?;
        std::fs::write(&log, forge(&text))?;
    }
    let (ok, out) = rt_audit(&["verify", "--receipts"]);
    println!("{out}");
    assert!(!ok, "{out}");
    assert!(
        out.contains("the receipt does not verify with any audit key connector"),
        "{out}"
    );
    Ok(())
}
