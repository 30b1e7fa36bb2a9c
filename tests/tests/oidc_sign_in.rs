//! Sign-in at the tenant's identity provider: a real OpenID Provider (npm `oidc-provider`)
//! on loopback. The runtime discovers it, sends the user there with PKCE, state and nonce,
//! validates the ID token against the provider's keys, and turns the group claim into the
//! user's grants; the MCP client ends up with a token for alice with her groups, and a tool
//! call through the tunnel runs as her.

use anyhow::{Context, Result};
use base64::Engine;
use e2e::browser::{at_the_provider, browser, form_action, hidden_inputs, tokens_via_provider};
use e2e::mcp_client::message;
use e2e::oauth_client::{OAuthClient, REDIRECT, field, pkce, query_of};
use e2e::{Connector, OidcProvider, Runtime, run_ok};
use serde_json::{Value, json};

#[test]
fn users_sign_in_at_the_tenants_identity_provider() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let agent = run_ok(rt.cli().args([
        "agent", "create", "--tenant", "acme", "bot", "--role", "triage",
    ]));
    let mut connector = Connector::enroll(&rt, "acme", "c1")?;
    connector.start(&rt, &[])?;

    let base = format!("https://localhost:{}", rt.https_port);
    let provider = OidcProvider::start(&rt, "acme")?;
    let issuer = provider.issuer.clone();
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    let oauth = OAuthClient::new(base.clone(), &ca)?;
    let client = oauth.register()?;
    let (verifier, challenge) = pkce();
    let resource = format!("{base}/t/acme/g/eng/mcp");
    let b = browser(&ca)?;

    // The runtime sends the browser to the provider, whose login page we fill in.
    let login = b
        .get(oauth.authorize_url(&client, &challenge, &resource, &[]))
        .send()?;
    assert!(
        login.url().as_str().starts_with(&issuer),
        "not at the provider: {}",
        login.url()
    );
    let ours = at_the_provider(&b, login, &issuer, "alice")?;
    // Back at the runtime, signed in by the provider: the user is asked whether this client
    // may act for them, and nothing is issued before they allow it.
    assert!(ours.url().as_str().starts_with(&base), "{}", ours.url());
    let ours_page = ours.text()?;
    for shown in [
        "alice",
        "e2e client",
        &client,
        "127.0.0.1",
        "/t/acme/g/eng/mcp",
    ] {
        assert!(
            ours_page.contains(shown),
            "the consent page does not name {shown}: {ours_page}"
        );
    }
    let allow = form_action(&ours_page, &base).context(ours_page.clone())?;
    assert!(allow.ends_with("/oauth/consent"), "{allow}");
    // (The fields of the first form, Allow; Deny is a second form.)
    let fields = hidden_inputs(ours_page.split("</form>").next().unwrap_or_default());
    // Another browser cannot answer it, even with the form's fields.
    let elsewhere = browser(&ca)?.post(&allow).form(&fields).send()?;
    assert_eq!(elsewhere.status(), 400);
    assert!(elsewhere.text()?.contains("started in another browser"));
    let back = b.post(allow).form(&fields).send()?;
    let location = back
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("no redirect to the client")?
        .to_owned();
    let q = query_of(&location);
    assert_eq!(
        q.get("state").map(String::as_str),
        Some("xyz"),
        "{location}"
    );
    let code = q.get("code").context(location.clone())?;

    let (status, tokens) = oauth.token(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", &client),
        ("code_verifier", &verifier),
    ])?;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().context("access token")?;
    let payload = access.split('.').nth(1).context("jwt")?;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    assert_eq!(claims["name"], "alice");
    assert!(
        claims["sub"].as_str().is_some_and(|s| s.starts_with("u-")),
        "the subject is alice's stable id, not her changeable name: {claims}"
    );
    assert_eq!(
        claims["groups"],
        json!(["eng", "admins"]),
        "the provider's group claim became the grants"
    );

    // And the token works for a call through the tunnel, as alice.
    let resp = oauth
        .http
        .post(&resource)
        .bearer_auth(access)
        .header("x-mcp-agent-key", field(&agent, "X-MCP-Agent-Key):"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}}).to_string())
        .send()?;
    assert_eq!(resp.status(), 200);

    // A callback with a state the runtime never issued, or a code the provider never did.
    let forged = b
        .get(format!("{base}/oauth/idp/callback?state=forged&code=x"))
        .send()?;
    assert_eq!(forged.status(), 400);
    let to_provider = oauth
        .http
        .get(oauth.authorize_url(&client, &challenge, &resource, &[]))
        .send()?;
    let provider_url = to_provider
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let provider_query = query_of(&provider_url);
    for p in ["state", "nonce", "code_challenge"] {
        assert!(
            provider_query.contains_key(p),
            "no {p} sent to the provider: {provider_url}"
        );
    }
    assert_eq!(
        provider_query
            .get("code_challenge_method")
            .map(String::as_str),
        Some("S256")
    );
    let state = provider_query.get("state").cloned().unwrap_or_default();

    // The state is the pending id and travels through the browser: a local user of the same
    // tenant must not be able to finish the sign-in with it on the runtime's own form.
    let local = run_ok(rt.cli().args([
        "user", "add", "--tenant", "acme", "mallory", "--groups", "admins",
    ]));
    let bypass = oauth.submit_sign_in(&state, "mallory", &field(&local, "(shown once):"))?;
    assert_eq!(
        bypass.status(),
        400,
        "local sign-in accepted for an identity-provider tenant"
    );
    assert!(bypass.headers().get("location").is_none());
    // The provider's answer brought to another browser than the one that started the
    // sign-in (login CSRF) is refused before the code is even looked at.
    let other = b
        .get(format!(
            "{base}/oauth/idp/callback?state={state}&code=not-a-code"
        ))
        .send()?;
    assert_eq!(other.status(), 400);
    assert!(other.text()?.contains("started in another browser"));
    let bad = oauth
        .http
        .get(format!(
            "{base}/oauth/idp/callback?state={state}&code=not-a-code"
        ))
        .send()?;
    let loc = bad
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        query_of(&loc).get("error").map(String::as_str),
        Some("access_denied"),
        "{loc}"
    );

    // A name that already belongs to a local user cannot be taken by signing in at the
    // provider under that name: bob's sign-in is refused, and no code is issued.
    run_ok(rt.cli().args(["user", "add", "--tenant", "acme", "bob"]));
    let b2 = browser(&ca)?;
    let login = b2
        .get(oauth.authorize_url(&client, &challenge, &resource, &[]))
        .send()?;
    let refused = at_the_provider(&b2, login, &issuer, "bob")?;
    let loc = refused
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let q = query_of(&loc);
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("access_denied"),
        "{loc}"
    );
    assert!(
        q.get("error_description")
            .is_some_and(|d| d.contains("belongs to another account")),
        "{loc}"
    );
    assert!(!q.contains_key("code"));
    Ok(())
}

/// The groups an access token carries.
fn groups_of(access: &str) -> Result<Value> {
    let payload = access.split('.').nth(1).context("jwt")?;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    Ok(claims["groups"].clone())
}

/// The tool names a stateless tools/list shows.
fn tool_names(
    oauth: &OAuthClient,
    resource: &str,
    access: &str,
    agent_key: &str,
) -> Result<Vec<String>> {
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"}});
    let body = oauth
        .http
        .post(resource)
        .bearer_auth(access)
        .header("x-mcp-agent-key", agent_key)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}})
                .to_string(),
        )
        .send()?
        .text()?;
    let answer = message(&body, 1).context(body.clone())?;
    let mut names: Vec<String> = answer["result"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// Groups live at the provider: a change there reaches the next refreshed token (and so
/// tools/list), and a user the provider no longer knows loses the grant at the next refresh.
#[test]
fn groups_changed_at_the_provider_reach_the_next_refresh() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    rt.apply_policy(
        "acme",
        r#"version = 1
[roles.triage]
allow = [{ tools = ["diag.*"] }]
[groups.eng]
allow = [{ tools = ["diag.ping"] }]
[groups.admins]
allow = [{ tools = ["diag.*"] }]
[gateways.eng]
tools = ["diag.*"]
"#,
    );
    let agent = run_ok(rt.cli().args([
        "agent", "create", "--tenant", "acme", "bot", "--role", "triage",
    ]));
    let agent_key = field(&agent, "X-MCP-Agent-Key):");
    let mut connector = Connector::enroll(&rt, "acme", "c1")?;
    connector.start(&rt, &[])?;
    let accounts = rt.dir.path().join("accounts.json");
    std::fs::write(&accounts, r#"{"alice": ["eng", "admins"]}"#)?;
    let provider =
        OidcProvider::start_with(&rt, "acme", Some(&accounts), &["--recheck-groups", "0s"])?;
    let base = format!("https://localhost:{}", rt.https_port);
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    let oauth = OAuthClient::new(base.clone(), &ca)?;
    let resource = format!("{base}/t/acme/g/eng/mcp");

    let (client, tokens) = tokens_via_provider(&oauth, &ca, &provider.issuer, &resource, "alice")?;
    let access = tokens["access_token"].as_str().unwrap_or_default();
    assert_eq!(groups_of(access)?, json!(["eng", "admins"]));
    let names = tool_names(&oauth, &resource, access, &agent_key)?;
    assert!(names.contains(&"diag.echo".to_owned()), "{names:?}");

    // alice leaves the admins group at the provider.
    std::fs::write(&accounts, r#"{"alice": ["eng"]}"#)?;
    let refresh = |token: &str| {
        oauth.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", &client),
        ])
    };
    let (status, refreshed) = refresh(tokens["refresh_token"].as_str().unwrap_or_default())?;
    assert_eq!(status, 200, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap_or_default();
    assert_eq!(
        groups_of(access)?,
        json!(["eng"]),
        "the refreshed token carries the provider's groups of now"
    );
    assert_eq!(
        tool_names(&oauth, &resource, access, &agent_key)?,
        vec!["diag.ping".to_owned()],
        "tools/list follows"
    );

    // alice is removed at the provider: the next refresh ends her grant.
    std::fs::write(&accounts, "{}")?;
    let (status, ended) = refresh(refreshed["refresh_token"].as_str().unwrap_or_default())?;
    assert_eq!(status, 400, "{ended}");
    assert_eq!(ended["error"], "invalid_grant", "{ended}");
    assert!(
        ended["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("identity provider")),
        "{ended}"
    );
    Ok(())
}
