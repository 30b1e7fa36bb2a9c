//! Just-in-time user authorization, end to end, driven by a real MCP client (the official
//! Python SDK, `tests/python/jit_client.py`) against the runtime, a connector and a fake
//! GitHub Enterprise Server with a GitHub App:
//!
//! - a user who has not connected their account gets a URL elicitation, in the form of the
//!   client's protocol revision (input-required on 2026-07-28, -32042 on 2025-11-25); their
//!   browser (signed in at the runtime) goes through the runtime's connect page to the
//!   upstream's consent page and back; the connector exchanges the code with the client
//!   secret only it holds, and the retried call acts as the user;
//! - an expired user-to-server token is refreshed by the connector (one refresh request);
//! - a revoked grant leads back to the elicitation, not to an error loop;
//! - the connect page refuses a browser signed in as another user;
//! - the same flow against a fake GitLab with PKCE S256 (the verifier stays in the
//!   connector), 2-hour tokens and rotating refresh tokens.

use std::process::Command;

use anyhow::{Context, Result};
use e2e::oauth_client::{OAuthClient, field};
use e2e::{Connector, FakeUpstream, Runtime, installed_tool, run, run_ok, user_id, workspace_root};
use serde_json::{Value, json};

const CLIENT_ID: &str = "Iv23liJitTestApp0001";
const CLIENT_SECRET: &str = "jit-test-github-app-secret";

/// Which fake upstream, and how the connector is configured for it.
#[derive(Clone, Copy)]
enum Upstream {
    /// GitHub Enterprise with a GitHub App.
    Github,
    /// GitLab with an OAuth application (PKCE).
    Gitlab,
}

impl Upstream {
    /// The provider instance's name in the connector configuration.
    fn name(self) -> &'static str {
        match self {
            Upstream::Github => "ghes",
            Upstream::Gitlab => "gitlab",
        }
    }

    /// The prefix of its tools' names.
    fn prefix(self) -> &'static str {
        match self {
            Upstream::Github => "github",
            Upstream::Gitlab => "gitlab",
        }
    }

    /// The upstream's token endpoint.
    fn token_path(self) -> &'static str {
        match self {
            Upstream::Github => "/login/oauth/access_token",
            Upstream::Gitlab => "/oauth/token",
        }
    }
}

struct Setup {
    rt: Runtime,
    ghes: FakeUpstream,
    connector: Connector,
    agent_key: String,
    alice_secret: String,
    alice_id: String,
    bob_secret: String,
}

fn setup() -> Result<Setup> {
    setup_with(Upstream::Github)
}

fn setup_with(upstream: Upstream) -> Result<Setup> {
    let mut rt = Runtime::init()?;
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
    let (kind, client_kind, oauth) = match upstream {
        Upstream::Github => ("github", "github-app", "app = \"github-app\"\n"),
        Upstream::Gitlab => ("gitlab", "gitlab", "scopes = [\"api\"]\n"),
    };
    let ghes = FakeUpstream::start(rt.dir.path(), kind, &[])?;
    ghes.control(
        "oauth/clients",
        &json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": format!("https://localhost:{}/connect/callback", rt.https_port),
            "kind": client_kind,
        }),
    )?;
    let mut connector = Connector::enroll(&rt, "acme", "c1")?;
    let name = upstream.name();
    let config = connector.configure(
        &format!(
            "[[provider]]\nname = \"{name}\"\nkind = \"{kind}\"\napi_url = \"{}\"\n[provider.oauth]\nclient_id = \"{CLIENT_ID}\"\n{oauth}",
            ghes.api_url()
        ),
        "version = 1\n[[allow]]\ntools = [\"github_*\", \"gitlab_*\", \"diag.*\"]\n",
        &[(&format!("provider/{name}/client_secret"), CLIENT_SECRET)],
    )?;
    connector.start_configured(&rt, &config)?;
    Ok(Setup {
        rt,
        ghes,
        connector,
        agent_key: field(&agent, "X-MCP-Agent-Key):"),
        alice_secret: field(&alice, "(shown once):"),
        alice_id: user_id(&alice),
        bob_secret: field(&bob, "(shown once):"),
    })
}

/// `vault list --json` of the suite's connector: entry names and kinds, no secrets.
fn vault_list(s: &Setup) -> String {
    run_ok(
        Connector::cli()
            .args(["vault", "list", "--json", "--config"])
            .arg(
                s.connector
                    .state_dir
                    .with_extension("etc")
                    .join("config.toml"),
            ),
    )
}

fn python(s: &Setup, user: &str, secret: &str, mode: &str, calls: &Value) -> Result<Value> {
    python_confirming(s, user, secret, mode, calls, "decline")
}

fn python_confirming(
    s: &Setup,
    user: &str,
    secret: &str,
    mode: &str,
    calls: &Value,
    confirm: &str,
) -> Result<Value> {
    let out = run(Command::new(installed_tool("venv/bin/python"))
        .arg(workspace_root().join("tests/python/jit_client.py"))
        .arg(format!(
            "https://localhost:{}/t/acme/g/eng/mcp",
            s.rt.https_port
        ))
        .arg(s.rt.data_dir().join("ca.pem"))
        .arg(&s.agent_key)
        .arg(user)
        .arg(secret)
        .arg(user)
        .arg(mode)
        .arg(calls.to_string())
        .arg(confirm));
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "python SDK ({mode}) failed:\n{stdout}\n{}\nconnector log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.connector.log()
    );
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .context(stdout.to_string())?;
    println!("{mode}: {v}");
    Ok(v)
}

fn token_requests(ghes: &FakeUpstream, upstream: Upstream) -> Result<usize> {
    Ok(ghes
        .requests()?
        .iter()
        .filter(|r| r["path"] == upstream.token_path())
        .count())
}

/// After the user connected: an expired token is refreshed once inside the connector (no
/// elicitation, one token request, the next call needs none); then a revoked grant (the
/// refresh is refused, the tokens forgotten) leads back to the elicitation in `revoke_mode`,
/// and the user can connect again. `login` names the user field of the whoami result.
fn refreshes_once_then_asks_again_after_a_revoke(
    s: &Setup,
    upstream: Upstream,
    login: &str,
    revoke_mode: &str,
) -> Result<()> {
    let tool = format!("{}_whoami", upstream.prefix());
    s.ghes.control("tokens/expire", &json!({"user": "alice"}))?;
    let before = token_requests(&s.ghes, upstream)?;
    let twice = json!([{"tool": tool}, {"tool": tool}]);
    let v = python(s, "alice", &s.alice_secret, "2026-07-28", &twice)?;
    for call in v["calls"].as_array().into_iter().flatten() {
        assert_eq!(call["structured"][login], "alice", "{v}");
        assert_eq!(
            call["elicitations"].as_array().map(Vec::len),
            Some(0),
            "{v}"
        );
    }
    assert_eq!(
        token_requests(&s.ghes, upstream)? - before,
        1,
        "one refresh"
    );

    s.ghes.control("grants/revoke", &json!({"user": "alice"}))?;
    let once = json!([{"tool": tool}]);
    let v = python(s, "alice", &s.alice_secret, revoke_mode, &once)?;
    assert_eq!(
        v["calls"][0]["elicitations"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    assert_eq!(v["calls"][0]["structured"][login], "alice", "{v}");
    Ok(())
}

#[test]
fn users_connect_their_account_when_a_tool_first_needs_it() -> Result<()> {
    let s = setup()?;
    let whoami = json!([{"tool": "github_whoami"}, {"tool": "github_whoami"}]);
    for mode in ["2026-07-28", "legacy"] {
        // Each mode starts from a user without a token.
        let _ = run(Connector::cli()
            .args([
                "vault",
                "rm",
                &format!("user/ghes/{}", s.alice_id),
                "--config",
            ])
            .arg(
                s.connector
                    .state_dir
                    .with_extension("etc")
                    .join("config.toml"),
            ));
        let v = python(&s, "alice", &s.alice_secret, mode, &whoami)?;
        let first = &v["calls"][0];
        assert_eq!(
            first["elicitations"].as_array().map(Vec::len),
            Some(1),
            "{v}"
        );
        assert!(
            first["elicitations"][0]
                .as_str()
                .is_some_and(|u| u.contains("/connect/")),
            "the link is the runtime's connect page: {v}"
        );
        assert_eq!(first["is_error"], false, "{v}");
        assert_eq!(
            first["structured"]["login"], "alice",
            "acts as the user: {v}"
        );
        let second = &v["calls"][1];
        assert_eq!(
            second["elicitations"].as_array().map(Vec::len),
            Some(0),
            "{v}"
        );
        assert_eq!(second["structured"]["login"], "alice");
    }
    // The token lives in the connector's vault, and its secret nowhere else.
    let list = vault_list(&s);
    assert!(
        list.contains(&format!("user/ghes/{}", s.alice_id)) && list.contains("user_token"),
        "{list}"
    );
    assert!(!list.contains("ghu_"), "vault list shows no secret: {list}");

    // An expired user-to-server token is refreshed once, inside the connector; a revoked
    // grant leads back to the elicitation.
    refreshes_once_then_asks_again_after_a_revoke(&s, Upstream::Github, "login", "2026-07-28")?;
    Ok(())
}

/// GitLab: the consent link carries a PKCE S256 challenge, the code exchange its verifier
/// (never the link); an expired 2-hour token is refreshed once, with the refresh token
/// rotating; a revoked grant asks the user to connect again.
#[test]
fn gitlab_users_connect_with_pkce_and_refresh_inside_the_connector() -> Result<()> {
    let s = setup_with(Upstream::Gitlab)?;
    let whoami = json!([{"tool": "gitlab_whoami"}, {"tool": "gitlab_whoami"}]);
    let v = python(&s, "alice", &s.alice_secret, "2026-07-28", &whoami)?;
    let first = &v["calls"][0];
    assert_eq!(
        first["elicitations"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    assert_eq!(first["is_error"], false, "{v}");
    assert_eq!(
        first["structured"]["username"], "alice",
        "acts as the user: {v}"
    );
    assert_eq!(
        v["calls"][1]["elicitations"].as_array().map(Vec::len),
        Some(0)
    );

    // What went over the wire to GitLab: a challenge in the consent link, the verifier
    // only in the code exchange (from the connector), and the client secret only there.
    let requests = s.ghes.requests()?;
    let authorize = requests
        .iter()
        .find(|r| r["path"] == "/oauth/authorize")
        .context("no consent page visit")?;
    let query = authorize["query"].as_str().unwrap_or_default();
    assert!(
        query.contains("code_challenge=") && query.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(!query.contains("code_verifier") && !query.contains(CLIENT_SECRET));
    let exchanges: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/oauth/token")
        .collect();
    assert_eq!(exchanges.len(), 1, "one code exchange");

    // An expired token is refreshed once; a revoked grant asks the user to connect again.
    refreshes_once_then_asks_again_after_a_revoke(&s, Upstream::Gitlab, "username", "legacy")?;
    Ok(())
}

#[test]
fn a_connect_link_opened_by_another_user_is_refused() -> Result<()> {
    let s = setup()?;
    // Alice's call makes a link (the legacy text form, from a client without elicitation).
    let base = format!("https://localhost:{}", s.rt.https_port);
    let url = format!("{base}/t/acme/g/eng/mcp");
    let ca = std::fs::read(s.rt.data_dir().join("ca.pem"))?;
    let alice = OAuthClient::new(base.clone(), &ca)?;
    let token = alice.access_token(&url, "alice", &s.alice_secret)?;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "0"}}});
    let post = |body: &Value, session: Option<&str>| -> Result<reqwest::blocking::Response> {
        let mut r = alice
            .http
            .post(&url)
            .bearer_auth(token["access_token"].as_str().unwrap_or_default())
            .header("X-MCP-Agent-Key", &s.agent_key)
            .header("Accept", "application/json, text/event-stream")
            .json(body);
        if let Some(sid) = session {
            r = r
                .header("Mcp-Session-Id", sid)
                .header("MCP-Protocol-Version", "2025-06-18");
        }
        Ok(r.send()?)
    };
    let resp = post(&init, None)?;
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .context("session id")?
        .to_owned();
    post(
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(&sid),
    )?;
    let text = post(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "github_whoami", "arguments": {}}}),
        Some(&sid),
    )?
    .text()?;
    let link = text
        .split("Link: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .context(text.clone())?
        .to_owned();
    assert!(
        text.contains("isError") || text.contains("is_error"),
        "{text}"
    );

    // Bob's browser, signed in as bob, opens alice's link: refused, and nothing is redirected.
    let bob = OAuthClient::new(base, &ca)?;
    bob.access_token(&url, "bob", &s.bob_secret)?;
    let resp = bob.http.get(&link).send()?;
    assert_eq!(resp.status(), 403);
    assert!(resp.text()?.contains("not yours"));
    // A browser signed in as nobody is asked to sign in, not sent upstream.
    let nobody = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let resp = nobody.get(&link).send()?;
    assert_eq!(resp.status(), 200);
    assert!(resp.text()?.contains("name=\"pending\""));
    // Alice's own browser goes on to the upstream.
    let resp = alice.http.get(&link).send()?;
    assert_eq!(resp.status(), 303);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        location.starts_with(&s.ghes.base) && location.contains("/login/oauth/authorize"),
        "{location}"
    );
    assert!(location.contains("state="), "{location}");
    assert!(
        !location.contains(CLIENT_SECRET),
        "the client secret stays in the connector"
    );
    Ok(())
}

/// The confirm-destructive hook with a real client, in both revisions: the user is asked
/// (form elicitation during the call on 2025-11-25, an input-required round on 2026-07-28);
/// declining leaves the pull request open and nothing reaches the upstream, accepting merges
/// it once. Both forms of the question show the effect the connector previewed.
#[test]
fn destructive_calls_wait_for_the_users_confirmation() -> Result<()> {
    let s = setup()?;
    let merge = |n: u64| {
        json!([{"tool": "github_whoami"}, {"tool": "github_merge_pull_request",
        "arguments": {"owner": "acme", "repo": "widgets", "number": n}}])
    };
    let merges = |ghes: &FakeUpstream| -> Result<usize> {
        Ok(ghes
            .requests()?
            .iter()
            .filter(|r| {
                r["method"] == "PUT" && r["path"].as_str().is_some_and(|p| p.ends_with("/merge"))
            })
            .count())
    };
    for mode in ["legacy", "2026-07-28"] {
        let v = python_confirming(&s, "alice", &s.alice_secret, mode, &merge(6), "decline")?;
        let call = &v["calls"][1];
        assert_eq!(call["asked"].as_array().map(Vec::len), Some(1), "{v}");
        assert!(
            call["asked"][0]
                .as_str()
                .is_some_and(|m| m.contains("github_merge_pull_request")
                    && m.contains(
                        "pull request acme/widgets#6 \u{201c}Fix a typo in the README\u{201d}"
                    )
                    && m.contains("head commit ")
                    && m.contains("merge method merge")),
            "both forms show the previewed effect ({mode}): {v}"
        );
        assert_eq!(call["is_error"], true, "{v}");
        assert!(
            call["text"]
                .as_str()
                .is_some_and(|t| t.contains("denied by the hook layer")),
            "{v}"
        );
        assert_eq!(
            merges(&s.ghes)?,
            0,
            "declined: nothing sent upstream ({mode})"
        );
    }
    let v = python_confirming(&s, "alice", &s.alice_secret, "legacy", &merge(6), "accept")?;
    assert_eq!(v["calls"][1]["is_error"], false, "{v}");
    assert_eq!(merges(&s.ghes)?, 1, "accepted: merged once");
    Ok(())
}

/// Names change hands; upstream access does not. A user's upstream token is kept under
/// their stable id, so whoever is given a removed user's name starts with nothing.
#[test]
fn a_new_user_given_a_removed_users_name_gets_none_of_their_upstream_access() -> Result<()> {
    let s = setup()?;
    let whoami = json!([{"tool": "github_whoami"}]);
    let v = python(&s, "alice", &s.alice_secret, "2026-07-28", &whoami)?;
    assert_eq!(v["calls"][0]["structured"]["login"], "alice", "{v}");

    run_ok(s.rt.cli().args(["user", "rm", "--tenant", "acme", "alice"]));
    let newcomer = run_ok(s.rt.cli().args([
        "user", "add", "--tenant", "acme", "alice", "--groups", "eng",
    ]));
    assert_ne!(
        user_id(&newcomer),
        s.alice_id,
        "a name never brings back an id"
    );
    let v = python(
        &s,
        "alice",
        &field(&newcomer, "(shown once):"),
        "2026-07-28",
        &whoami,
    )?;
    assert_eq!(
        v["calls"][0]["elicitations"].as_array().map(Vec::len),
        Some(1),
        "the newcomer is asked to connect their own account, not handed the old token: {v}"
    );
    let list = vault_list(&s);
    assert!(
        list.contains(&format!("user/ghes/{}", s.alice_id))
            && list.contains(&format!("user/ghes/{}", user_id(&newcomer))),
        "two people, two entries: {list}"
    );
    Ok(())
}
