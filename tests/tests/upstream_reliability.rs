//! How the connector treats a struggling upstream (issue 5): bounded, jittered retries of
//! idempotent requests only, never a repeated write, `retry-after` honoured, an exhausted
//! rate limit answered without another request, typed errors the agent can act on. Counted
//! on the fake GitHub Enterprise's (and GitLab's) request journal, through the whole stack.

use std::time::Duration;

use anyhow::{Context, Result};
use e2e::mcp_client::McpClient;
use e2e::{Connector, FakeUpstream, Runtime};
use serde_json::{Value, json};

const ALICE_PAT: &str = "ghp_aliceFakeToken000000000000000000000";
const ALICE_GITLAB_PAT: &str = "glpat-aliceFakeToken0000";

struct Env {
    _rt: Runtime,
    ghes: FakeUpstream,
    _connector: Connector,
    alice: McpClient,
}

fn env(fake_flags: &[&str]) -> Result<Env> {
    env_of("github", fake_flags)
}

/// A stack whose one provider instance is a fake of `kind` (`github`, `gitlab`).
fn env_of(kind: &'static str, fake_flags: &[&str]) -> Result<Env> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    e2e::run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let ghes = FakeUpstream::start(rt.dir.path(), kind, fake_flags)?;
    let mut connector = Connector::enroll(&rt, "acme", "c1")?;
    let (name, pat) = match kind {
        "gitlab" => ("gitlab", ALICE_GITLAB_PAT),
        _ => ("ghes", ALICE_PAT),
    };
    let config = connector.configure(
        &format!(
            "[[provider]]\nname = \"{name}\"\nkind = \"{kind}\"\napi_url = \"{}\"\nmax_retries = 3\n",
            ghes.api_url()
        ),
        "version = 1\n[[allow]]\ntools = [\"github_*\", \"gitlab_*\"]\n",
        &[],
    )?;
    connector.start_configured(&rt, &config)?;
    let alice = McpClient::new_user(&rt, "acme", "eng", "alice", "eng", "bot", "triage")?;
    Connector::vault_set(&config, &format!("user/{name}/{}", alice.user_id), pat)?;
    Ok(Env {
        _rt: rt,
        ghes,
        _connector: connector,
        alice,
    })
}

fn journal(ghes: &FakeUpstream, method: &str, path: &str) -> Result<Vec<Value>> {
    Ok(ghes
        .requests()?
        .into_iter()
        .filter(|r| r["method"] == method && r["path"] == path)
        .collect())
}

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn idempotent_reads_are_retried_a_bounded_number_of_times() -> Result<()> {
    let e = env(&[])?;
    // One 502: the read is retried once and succeeds.
    e.ghes.clear_requests()?;
    e.ghes.control("faults", &json!({"method": "GET", "path_prefix": "/api/v3/user", "count": 1, "action": "status", "status": 502}))?;
    let r = e.alice.call("github_whoami", json!({}))?;
    assert_eq!(r["structuredContent"]["login"], "alice", "{r}");
    assert_eq!(journal(&e.ghes, "GET", "/api/v3/user")?.len(), 2);
    // A connection reset on a read: retried too.
    e.ghes.clear_requests()?;
    e.ghes.control(
        "faults",
        &json!({"method": "GET", "path_prefix": "/api/v3/user", "count": 1, "action": "reset"}),
    )?;
    let r = e.alice.call("github_whoami", json!({}))?;
    assert_eq!(r["structuredContent"]["login"], "alice", "{r}");
    assert_eq!(journal(&e.ghes, "GET", "/api/v3/user")?.len(), 2);
    // A lasting outage: 1 + max_retries (3) attempts, then a typed, retryable error.
    e.ghes.clear_requests()?;
    e.ghes.control("faults", &json!({"method": "GET", "path_prefix": "/api/v3/user", "count": 50, "action": "status", "status": 502}))?;
    let r = e.alice.call("github_whoami", json!({}))?;
    assert_eq!(r["isError"], true, "{r}");
    assert!(
        text(&r).contains("502") && text(&r).contains("(retryable)"),
        "{}",
        text(&r)
    );
    let attempts = journal(&e.ghes, "GET", "/api/v3/user")?;
    assert_eq!(attempts.len(), 4, "bounded retries");
    let at: Vec<i64> = attempts
        .iter()
        .filter_map(|r| r["at_ms"].as_i64())
        .collect();
    println!(
        "502 outage: 4 attempts at +{:?} ms",
        at.iter().map(|t| t - at[0]).collect::<Vec<_>>()
    );
    e.ghes.control_delete("faults")?;
    Ok(())
}

#[test]
fn writes_that_may_have_happened_are_never_repeated() -> Result<()> {
    let e = env(&[])?;
    let path = "/api/v3/repos/acme/widgets/issues/1/comments";
    let args = json!({"owner": "acme", "repo": "widgets", "number": 1, "body": "once only"});
    for fault in [
        json!({"method": "POST", "path_prefix": path, "count": 1, "action": "status", "status": 502}),
        json!({"method": "POST", "path_prefix": path, "count": 1, "action": "reset"}),
    ] {
        e.ghes.clear_requests()?;
        e.ghes.control("faults", &fault)?;
        let r = e.alice.call("github_comment_on_issue", args.clone())?;
        assert_eq!(r["isError"], true, "{r}");
        assert!(text(&r).contains("may have been applied"), "{}", text(&r));
        assert_eq!(
            journal(&e.ghes, "POST", path)?.len(),
            1,
            "no second POST after {fault}"
        );
    }
    // Without a fault the comment is posted exactly once.
    e.ghes.clear_requests()?;
    let r = e.alice.call("github_comment_on_issue", args)?;
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(journal(&e.ghes, "POST", path)?.len(), 1);
    Ok(())
}

#[test]
fn retry_after_is_honoured() -> Result<()> {
    let e = env(&[])?;
    // A secondary limit with retry-after: 1 s is waited out (it fits the deadline).
    e.ghes.clear_requests()?;
    e.ghes.control("faults", &json!({"method": "GET", "path_prefix": "/api/v3/user", "count": 1,
                                     "action": "secondary_rate_limit", "status": 429, "retry_after": 1}))?;
    let r = e.alice.call("github_whoami", json!({}))?;
    assert_eq!(r["structuredContent"]["login"], "alice", "{r}");
    let tries = journal(&e.ghes, "GET", "/api/v3/user")?;
    assert_eq!(tries.len(), 2);
    let gap = tries[1]["at_ms"].as_i64().context("at_ms")?
        - tries[0]["at_ms"].as_i64().context("at_ms")?;
    println!("secondary limit: retried {gap} ms after a retry-after of 1 s");
    assert!(gap >= 1000, "retry-after honoured: {gap} ms");
    // A long retry-after is not waited out: the agent is told when to retry.
    e.ghes.control("faults", &json!({"method": "GET", "path_prefix": "/api/v3/user", "count": 1,
                                     "action": "secondary_rate_limit", "status": 403, "retry_after": 120}))?;
    let r = e.alice.call("github_whoami", json!({}))?;
    assert!(
        text(&r).contains("rate limiting") && text(&r).contains("retry after 120000 ms"),
        "{}",
        text(&r)
    );
    Ok(())
}

#[test]
fn an_empty_rate_limit_bucket_costs_no_request() -> Result<()> {
    // A primary limit of 2 requests per hour for each user: requests go out until the
    // upstream reports the bucket empty; later calls fail at once, with the reset time, and
    // send nothing.
    let e = env(&["--rate-limit", "2", "--rate-window", "3600"])?;
    e.ghes.clear_requests()?;
    let results: Vec<Value> = (0..4)
        .map(|_| e.alice.call("github_whoami", json!({})))
        .collect::<Result<_>>()?;
    let sent = journal(&e.ghes, "GET", "/api/v3/user")?.len();
    println!("primary limit 2/h: {sent} requests sent for 4 calls");
    assert_eq!(results[0]["structuredContent"]["login"], "alice");
    assert_eq!(results[1]["structuredContent"]["login"], "alice");
    assert_eq!(sent, 2, "no request beyond the limit");
    for r in &results[2..] {
        assert_eq!(r["isError"], true, "{r}");
        assert!(text(r).contains("used up until it resets"), "{}", text(r));
        assert!(text(r).contains("retry after"), "{}", text(r));
    }
    Ok(())
}

/// GitLab's manners: a 429 with `Retry-After` is waited out once; its `RateLimit-*` headers
/// reporting an empty bucket stop further requests until the reset.
#[test]
fn gitlab_429_and_ratelimit_headers_are_honoured() -> Result<()> {
    let e = env_of("gitlab", &[])?;
    e.ghes.clear_requests()?;
    e.ghes.control(
        "faults",
        &json!({"method": "GET", "path_prefix": "/api/v4/user", "count": 1,
                                     "action": "rate_limit", "retry_after": 1}),
    )?;
    let r = e.alice.call("gitlab_whoami", json!({}))?;
    assert_eq!(r["structuredContent"]["username"], "alice", "{r}");
    let tries = journal(&e.ghes, "GET", "/api/v4/user")?;
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert_eq!(tries[0]["status"], 429, "{tries:?}");
    let gap = tries[1]["at_ms"].as_i64().context("at_ms")?
        - tries[0]["at_ms"].as_i64().context("at_ms")?;
    println!("GitLab 429: retried {gap} ms after a Retry-After of 1 s");
    assert!(gap >= 1000, "Retry-After honoured: {gap} ms");

    let e = env_of("gitlab", &["--rate-limit", "2", "--rate-window", "3600"])?;
    e.ghes.clear_requests()?;
    let results: Vec<Value> = (0..4)
        .map(|_| e.alice.call("gitlab_whoami", json!({})))
        .collect::<Result<_>>()?;
    let sent = journal(&e.ghes, "GET", "/api/v4/user")?.len();
    println!("GitLab primary limit 2/h: {sent} requests sent for 4 calls");
    assert_eq!(sent, 2, "no request beyond the limit");
    for r in &results[2..] {
        assert_eq!(r["isError"], true, "{r}");
        assert!(text(r).contains("retry after"), "{}", text(r));
    }
    Ok(())
}

#[test]
fn an_unreachable_upstream_is_a_typed_error() -> Result<()> {
    let mut e = env(&[])?;
    e.ghes.process.kill();
    std::thread::sleep(Duration::from_millis(200));
    let r = e.alice.call("github_whoami", json!({}))?;
    assert_eq!(r["isError"], true, "{r}");
    assert!(text(&r).contains("could not be reached"), "{}", text(&r));
    Ok(())
}
