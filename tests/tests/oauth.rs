//! OAuth 2.1 for MCP clients, end to end over HTTPS against the real runtime: discovery (RFC
//! 9728, RFC 8414), dynamic registration (RFC 7591), authorization code with PKCE S256 and a
//! resource indicator (RFC 8707), sign-in of a local user, audience-bound tokens, refresh
//! rotation, replay detection, the agent identity, and a tool call that reaches the connector
//! on behalf of that user and agent.

use anyhow::{Context, Result, bail};
use base64::Engine;
use e2e::oauth_client::{OAuthClient, REDIRECT, field, pkce, query_of};
use e2e::{Connector, Runtime, run, run_ok};
use serde_json::{Value, json};

struct Setup {
    rt: Runtime,
    oauth: OAuthClient,
    base: String,
    alice_secret: String,
    alice_id: String,
    triage_key: String,
    globex_key: String,
    _connector: Connector,
}

fn setup() -> Result<Setup> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    for (t, g) in [("acme", "eng"), ("acme", "ops"), ("globex", "eng")] {
        run_ok(rt.cli().args(["gateway", "create", "--tenant", t, g]));
    }
    let alice = run_ok(rt.cli().args([
        "user",
        "add",
        "--tenant",
        "acme",
        "alice",
        "--groups",
        "eng,admins",
    ]));
    let triage = run_ok(rt.cli().args([
        "agent",
        "create",
        "--tenant",
        "acme",
        "triage-bot",
        "--role",
        "triage",
    ]));
    let globex = run_ok(rt.cli().args([
        "agent",
        "create",
        "--tenant",
        "globex",
        "their-bot",
        "--role",
        "triage",
    ]));
    let mut connector = Connector::enroll(&rt, "acme", "c1")?;
    connector.start(&rt, &[])?;
    let base = format!("https://localhost:{}", rt.https_port);
    let oauth = OAuthClient::new(base.clone(), &std::fs::read(rt.data_dir().join("ca.pem"))?)?;
    Ok(Setup {
        base,
        oauth,
        alice_secret: field(&alice, "(shown once):"),
        alice_id: e2e::user_id(&alice),
        triage_key: field(&triage, "X-MCP-Agent-Key):"),
        globex_key: field(&globex, "X-MCP-Agent-Key):"),
        rt,
        _connector: connector,
    })
}

impl Setup {
    fn gateway(&self, tenant: &str, gw: &str) -> String {
        format!("{}/t/{tenant}/g/{gw}/mcp", self.base)
    }

    /// Authorize and sign in as alice (checking that a wrong secret is refused first);
    /// returns the code.
    fn sign_in(&self, client: &str, challenge: &str, resource: &str) -> Result<String> {
        let url = self.oauth.authorize_url(client, challenge, resource, &[]);
        let pending = self.oauth.open_sign_in(&url)?;
        let wrong = self.oauth.submit_sign_in(&pending, "alice", "wrong")?;
        assert_eq!(wrong.status(), 401, "wrong secret refused");
        let resp = self
            .oauth
            .submit_sign_in(&pending, "alice", &self.alice_secret)?;
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("redirect")?
            .to_owned();
        let q = query_of(&location);
        assert_eq!(q.get("state").map(String::as_str), Some("xyz"));
        assert_eq!(q.get("iss"), Some(&self.base));
        q.get("code").cloned().context(location)
    }

    fn mcp(
        &self,
        url: &str,
        token: Option<&str>,
        agent_key: Option<&str>,
        body: Value,
    ) -> Result<(u16, String, String)> {
        let mut req = self
            .oauth
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = agent_key {
            req = req.header("x-mcp-agent-key", k);
        }
        let resp = req.body(body.to_string()).send()?;
        let www = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok((resp.status().as_u16(), www, resp.text()?))
    }
}

fn init_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}})
}

/// Calls diag.ping statelessly (2026-07-28) and returns the structured result.
fn ping(s: &Setup, url: &str, token: &str, key: Option<&str>) -> Result<(u16, Value)> {
    let mut req = s
        .oauth
        .http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "diag.ping");
    if let Some(k) = key {
        req = req.header("x-mcp-agent-key", k);
    }
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"}});
    let resp = req
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "diag.ping", "arguments": {}, "_meta": meta}}).to_string())
        .send()?;
    let status = resp.status().as_u16();
    let body = resp.text()?;
    let msg = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(body.as_str()))
        .filter_map(|c| serde_json::from_str::<Value>(c.trim()).ok())
        .find(|v| v["id"] == 1)
        .unwrap_or(Value::Null);
    Ok((status, msg["result"]["structuredContent"].clone()))
}

#[test]
fn oauth_flow_reaches_the_connector_as_the_user_and_agent() -> Result<()> {
    let s = setup()?;
    let eng = s.gateway("acme", "eng");

    // Unauthenticated: 401 pointing at the gateway's protected-resource metadata.
    let (status, www, _) = s.mcp(&eng, None, None, init_body())?;
    assert_eq!(status, 401);
    let prm_url = www
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context(www.clone())?;
    let prm: Value = s.oauth.http.get(prm_url).send()?.json()?;
    assert_eq!(prm["resource"], eng.as_str());
    let issuer = prm["authorization_servers"][0].as_str().context("issuer")?;
    let asm: Value = s
        .oauth
        .http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()?
        .json()?;
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        asm["registration_endpoint"],
        format!("{}/oauth/register", s.base)
    );

    let client = s.oauth.register()?;
    let (verifier, challenge) = pkce();
    let code = s.sign_in(&client, &challenge, &eng)?;
    let (status, tokens) = s.oauth.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("client_id", &client),
        ("code_verifier", &verifier),
        ("resource", &eng),
    ])?;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"]
        .as_str()
        .context("access")?
        .to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .context("refresh")?
        .to_owned();
    assert_eq!(tokens["token_type"], "Bearer");

    // The token and the agent key together open the gateway; the call reaches the connector
    // on behalf of alice (by her stable id, never her name) through triage-bot.
    let (status, _, body) = s.mcp(&eng, Some(&access), Some(&s.triage_key), init_body())?;
    assert_eq!(status, 200, "{body}");
    let (status, who) = ping(&s, &eng, &access, Some(&s.triage_key))?;
    assert_eq!(status, 200);
    assert_eq!(
        who["caller"],
        json!({"user": s.alice_id, "agent": "triage-bot"}),
        "{who}"
    );
    assert_eq!(who["tenant"], "acme");

    // No agent identity: refused. Another tenant's agent: refused.
    let (status, _, body) = s.mcp(&eng, Some(&access), None, init_body())?;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("agent_required"));
    let (status, _, _) = s.mcp(&eng, Some(&access), Some(&s.globex_key), init_body())?;
    assert_eq!(status, 403);

    // The token is bound to its gateway: not another gateway of acme, not globex's.
    for other in [s.gateway("acme", "ops"), s.gateway("globex", "eng")] {
        let (status, www, _) = s.mcp(&other, Some(&access), Some(&s.triage_key), init_body())?;
        assert_eq!(status, 401, "token accepted at {other}");
        assert!(www.contains("invalid_token"), "{www}");
    }
    // Garbage and forged tokens.
    let (status, _, _) = s.mcp(&eng, Some("garbage"), Some(&s.triage_key), init_body())?;
    assert_eq!(status, 401);
    let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
    if let Some(payload) = parts.get_mut(1) {
        let mut claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.as_bytes())?,
        )?;
        claims["sub"] = json!("mallory");
        *payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    }
    let (status, _, _) = s.mcp(
        &eng,
        Some(&parts.join(".")),
        Some(&s.triage_key),
        init_body(),
    )?;
    assert_eq!(status, 401, "tampered token accepted");

    // Refresh rotates; the spent refresh token presented again revokes the family.
    let (status, second) = s.oauth.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("client_id", &client),
    ])?;
    assert_eq!(status, 200, "{second}");
    let refresh2 = second["refresh_token"]
        .as_str()
        .context("refresh2")?
        .to_owned();
    assert_ne!(refresh2, refresh);
    let (status, again) = s.oauth.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("client_id", &client),
    ])?;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = s.oauth.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh2),
        ("client_id", &client),
    ])?;
    assert_eq!(
        status, 400,
        "reuse of a spent refresh token revokes its whole family"
    );

    // A replayed authorization code is refused.
    let (status, replay) = s.oauth.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("client_id", &client),
        ("code_verifier", &verifier),
    ])?;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // An OAuth-only client bound to an agent needs no key.
    let bound_client = s.oauth.register()?;
    run_ok(s.rt.cli().args([
        "agent",
        "create",
        "--tenant",
        "acme",
        "ide",
        "--role",
        "dev",
        "--oauth-client-id",
        &bound_client,
    ]));
    let (v2, c2) = pkce();
    let code2 = s.sign_in(&bound_client, &c2, &eng)?;
    let (_, t2) = s.oauth.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code2),
        ("redirect_uri", REDIRECT),
        ("client_id", &bound_client),
        ("code_verifier", &v2),
    ])?;
    let (status, who) = ping(
        &s,
        &eng,
        t2["access_token"].as_str().unwrap_or_default(),
        None,
    )?;
    assert_eq!(status, 200);
    assert_eq!(who["caller"], json!({"user": s.alice_id, "agent": "ide"}));

    // Removing the agent refuses its next request; removing the user ends her refresh.
    run_ok(s.rt.cli().args(["agent", "rm", "--tenant", "acme", "ide"]));
    let (status, _) = ping(
        &s,
        &eng,
        t2["access_token"].as_str().unwrap_or_default(),
        None,
    )?;
    assert_eq!(status, 403, "a removed agent's client still worked");
    run_ok(s.rt.cli().args(["user", "rm", "--tenant", "acme", "alice"]));
    let (status, e) = s.oauth.token(&[
        ("grant_type", "refresh_token"),
        (
            "refresh_token",
            t2["refresh_token"].as_str().unwrap_or_default(),
        ),
        ("client_id", &bound_client),
    ])?;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    let gone = run(s.rt.cli().args(["user", "rm", "--tenant", "acme", "alice"]));
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no user named alice"));
    Ok(())
}

#[test]
fn authorization_requests_are_checked_before_anything_is_issued() -> Result<()> {
    let s = setup()?;
    let eng = s.gateway("acme", "eng");
    let client = s.oauth.register()?;
    let (verifier, challenge) = pkce();

    // Registration refuses redirect URIs outside https and loopback http.
    for bad in [
        "http://evil.example/cb",
        "https://x.example/cb#f",
        "javascript:alert(1)",
    ] {
        let r = s
            .oauth
            .http
            .post(format!("{}/oauth/register", s.base))
            .json(&json!({"redirect_uris": [bad]}))
            .send()?;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>()?["error"], "invalid_redirect_uri");
    }

    // Unknown client or unregistered redirect URI: shown to the user, never redirected.
    for url in [
        s.oauth.authorize_url("mcpc_unknown", &challenge, &eng, &[]),
        s.oauth.authorize_url(
            &client,
            &challenge,
            &eng,
            &[("redirect_uri", "http://127.0.0.1:9/other")],
        ),
    ] {
        let r = s.oauth.http.get(url).send()?;
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
    }

    // After that, errors go back to the client.
    let error_of = |url: String| -> Result<String> {
        let r = s.oauth.http.get(url).send()?;
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("no redirect")?
            .to_owned();
        if !loc.starts_with(REDIRECT) {
            bail!("redirected elsewhere: {loc}");
        }
        Ok(query_of(&loc).get("error").cloned().unwrap_or_default())
    };
    assert_eq!(
        error_of(
            s.oauth
                .authorize_url(&client, "", &eng, &[("code_challenge", "")])
        )?,
        "invalid_request",
        "PKCE missing"
    );
    assert_eq!(
        error_of(s.oauth.authorize_url(
            &client,
            &challenge,
            &eng,
            &[("code_challenge_method", "plain")]
        ))?,
        "invalid_request",
        "plain PKCE"
    );
    assert_eq!(
        error_of(
            s.oauth
                .authorize_url(&client, &challenge, &eng, &[("response_type", "token")])
        )?,
        "unsupported_response_type"
    );
    assert_eq!(
        error_of(
            s.oauth
                .authorize_url(&client, &challenge, "", &[("resource", "")])
        )?,
        "invalid_target",
        "no resource"
    );
    assert_eq!(
        error_of(
            s.oauth
                .authorize_url(&client, &challenge, &s.gateway("acme", "nope"), &[])
        )?,
        "invalid_target"
    );
    assert_eq!(
        error_of(s.oauth.authorize_url(
            &client,
            &challenge,
            "https://evil.example/t/acme/g/eng/mcp",
            &[]
        ))?,
        "invalid_target"
    );

    // A sign-in form submitted from another browser than the one that opened it (login
    // CSRF: the attacker's own sign-in finished in the victim's browser) is refused.
    let pending = s
        .oauth
        .open_sign_in(&s.oauth.authorize_url(&client, &challenge, &eng, &[]))?;
    let other = OAuthClient::new(
        s.base.clone(),
        &std::fs::read(s.rt.data_dir().join("ca.pem"))?,
    )?;
    let csrf = other.submit_sign_in(&pending, "alice", &s.alice_secret)?;
    assert_eq!(csrf.status(), 400);
    assert!(csrf.headers().get("location").is_none());
    assert!(csrf.text()?.contains("started in another browser"));

    // A wrong verifier, client or redirect URI is refused and leaves the code unspent, so
    // whoever merely saw a code cannot burn it; its own client then redeems it, once.
    let code = s.sign_in(&client, &challenge, &eng)?;
    let other_client = s.oauth.register()?;
    let wrong_verifier = format!("w{}", "y".repeat(50));
    for (redirect, client_id, verifier) in [
        (REDIRECT, client.as_str(), wrong_verifier.as_str()),
        (REDIRECT, other_client.as_str(), verifier.as_str()),
        (
            "http://127.0.0.1:9/other",
            client.as_str(),
            verifier.as_str(),
        ),
    ] {
        let (status, e) = s.oauth.token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ])?;
        assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    }
    let redeem = || {
        s.oauth.token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client),
            ("code_verifier", &verifier),
        ])
    };
    let (status, tokens) = redeem()?;
    assert_eq!(status, 200, "{tokens}");
    let (status, e) = redeem()?;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    let (status, e) = s
        .oauth
        .token(&[("grant_type", "password"), ("client_id", &client)])?;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    Ok(())
}

#[test]
fn unauthenticated_endpoints_are_rate_limited_per_address() -> Result<()> {
    let s = setup()?;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..60 {
        let r = s
            .oauth
            .http
            .post(format!("{}/oauth/register", s.base))
            .json(&json!({"redirect_uris": [REDIRECT]}))
            .send()?;
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
        }
        statuses.push(r.status().as_u16());
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    println!(
        "60 registrations from one address: {} created, {limited} refused with 429",
        statuses.iter().filter(|s| **s == 201).count()
    );
    assert!(limited > 0, "no rate limit on registration: {statuses:?}");
    assert!(
        retry_after.is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n >= 1)),
        "429 without Retry-After"
    );
    // The MCP endpoint is not part of that budget: it still answers with its own 401.
    let (status, _, _) = s.mcp(&s.gateway("acme", "eng"), None, None, init_body())?;
    assert_eq!(status, 401);
    Ok(())
}

/// A session belongs to the user and agent that opened it: another user's token (or the
/// same user through another agent) on its id is answered as an unknown session.
#[test]
fn a_session_answers_only_the_user_and_agent_that_opened_it() -> Result<()> {
    let s = setup()?;
    let eng = s.gateway("acme", "eng");
    let bob = run_ok(
        s.rt.cli()
            .args(["user", "add", "--tenant", "acme", "bob", "--groups", "eng"]),
    );
    let alice_token = s.oauth.access_token(&eng, "alice", &s.alice_secret)?;
    let bob_token = s
        .oauth
        .access_token(&eng, "bob", &field(&bob, "(shown once):"))?;
    let token = |t: &Value| t["access_token"].as_str().unwrap_or_default().to_owned();
    let (alice_token, bob_token) = (token(&alice_token), token(&bob_token));

    let post = |bearer: &str, key: &str, session: Option<&str>, body: Value| {
        let mut req = s
            .oauth
            .http
            .post(&eng)
            .bearer_auth(bearer)
            .header("x-mcp-agent-key", key)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(id) = session {
            req = req.header("mcp-session-id", id);
        }
        req.body(body.to_string()).send()
    };
    let opened = post(&alice_token, &s.triage_key, None, init_body())?;
    assert_eq!(opened.status(), 200);
    let session = opened
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .context("no session id")?
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        post(&alice_token, &s.triage_key, Some(&session), initialized)?.status(),
        202
    );
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let as_bob = post(&bob_token, &s.triage_key, Some(&session), list.clone())?;
    assert_eq!(as_bob.status(), 404, "bob was served alice's session");
    let other_agent = run_ok(s.rt.cli().args([
        "agent",
        "create",
        "--tenant",
        "acme",
        "other-bot",
        "--role",
        "triage",
    ]));
    let as_other_agent = post(
        &alice_token,
        &field(&other_agent, "X-MCP-Agent-Key):"),
        Some(&session),
        list.clone(),
    )?;
    assert_eq!(
        as_other_agent.status(),
        404,
        "another agent was served the session"
    );
    let as_alice = post(&alice_token, &s.triage_key, Some(&session), list)?;
    assert_eq!(as_alice.status(), 200, "the owner lost her session");
    Ok(())
}
