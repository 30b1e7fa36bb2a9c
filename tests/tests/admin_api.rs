//! The tenant admin API (`/admin/api/v1/t/{tenant}/...`) against a real runtime and
//! connector, every answer validated against the OpenAPI document the runtime serves:
//!
//! - Every endpoint without a token or with an unknown or revoked one is 401, with a token
//!   of another tenant 404 (nothing of the tenant in the answer), with a token lacking the
//!   scope 403.
//! - An admin of the tenant lists its connectors, makes a join token whose enroll command
//!   enrolls a real connector, and revokes a connector (its tunnel drops; again: no change).
//! - The policy: a proposed file validated with the line of its error, applied, shown (the
//!   command line sees the same revision); an invalid one applies nothing; its history,
//!   and a rollback that puts an earlier revision back in force as the next one.
//! - Malformed bodies are a 400 that says why; an admin's acts are in the audit trail under
//!   the token's name; the store keeps only the tokens' hashes.
//! - The audit trail: a denied call found by filtering, cursor paging that reads what one
//!   page reads, malformed searches refused, an NDJSON export the command line matches,
//!   tenants kept apart, and a verification that notices a record changed behind its back.
//! - Users, agents and gateways added, bound and removed by token and by a signed-in
//!   console admin's browser session (whose changes need the session's CSRF token), each
//!   act in the audit trail; every field that could carry HTML comes back escaped.

use std::time::Duration;

use anyhow::{Context, Result};
use e2e::{Connector, Runtime, run, run_ok};
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// `admin-token create`: the token text.
fn admin_token(rt: &Runtime, tenant: &str, name: &str, scopes: &str) -> String {
    let out = run_ok(rt.cli().args([
        "admin-token",
        "create",
        "--tenant",
        tenant,
        "--name",
        name,
        "--scopes",
        scopes,
    ]));
    out.lines()
        .find_map(|l| l.strip_prefix("token (shown once): "))
        .expect("a token")
        .to_owned()
}

struct Api {
    http: Client,
    base: String,
    schemas: Value,
}

impl Api {
    /// A client of `rt`'s admin API, with the OpenAPI document it serves.
    fn of(rt: &Runtime) -> Result<Self> {
        let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
        let http = Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
            .timeout(Duration::from_secs(20))
            .build()?;
        let base = format!("https://localhost:{}", rt.https_port);
        let doc: Value = http
            .get(format!("{base}/admin/api/v1/openapi.json"))
            .send()?
            .json()?;
        assert_eq!(doc["openapi"], "3.1.0");
        // The document's components, as a schema whose $ref picks one.
        let schemas = json!({"components": doc["components"].clone()});
        Ok(Self {
            http,
            base,
            schemas,
        })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(u16, Value)> {
        let url = format!("{}/admin/api/v1{path}", self.base);
        let mut req = match method {
            "GET" => self.http.get(url),
            "PUT" => self.http.put(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send()?;
        let status = resp.status().as_u16();
        assert_eq!(
            resp.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{method} {path}"
        );
        if status == 401 {
            assert!(
                resp.headers().contains_key("www-authenticate"),
                "a 401 names its scheme"
            );
        }
        let text = resp.text()?;
        if status == 204 {
            assert!(text.is_empty(), "{method} {path}: 204 with {text:?}");
            return Ok((status, Value::Null));
        }
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{method} {path}: {status} {text:?}"))?;
        Ok((status, value))
    }

    /// Checks `value` against the document's schema `name`.
    fn conforms(&self, name: &str, value: &Value) {
        let mut schema = self.schemas.clone();
        schema["$ref"] = json!(format!("#/components/schemas/{name}"));
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?} in {value}");
    }
}

#[test]
fn tenant_admins_manage_their_own_connectors_and_nothing_else() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let mut c1 = Connector::enroll(&rt, "acme", "c1")?;
    c1.start(&rt, &[])?;
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    let api = Api::of(&rt)?;

    let full = admin_token(
        &rt,
        "acme",
        "alice-admin",
        "connectors:read,connectors:write",
    );
    let reader = admin_token(&rt, "acme", "dashboard", "connectors:read");
    let globex = admin_token(
        &rt,
        "globex",
        "globex-admin",
        "connectors:read,connectors:write",
    );
    let revoked = admin_token(&rt, "acme", "old-ci", "connectors:read");
    let listed = run_ok(
        rt.cli()
            .args(["admin-token", "list", "--tenant", "acme", "--json"]),
    );
    let old_id = serde_json::from_str::<Vec<Value>>(&listed)?
        .into_iter()
        .find(|t| t["name"] == "old-ci")
        .and_then(|t| t["id"].as_str().map(str::to_owned))
        .context("old-ci listed")?;
    run_ok(
        rt.cli()
            .args(["admin-token", "revoke", "--tenant", "acme", &old_id]),
    );
    assert!(
        run_ok(
            rt.cli()
                .args(["admin-token", "revoke", "--tenant", "acme", &old_id])
        )
        .contains("already revoked")
    );

    let revoke_c1 = format!("/t/acme/connectors/{}/revoke", c1.id);
    const POLICY: &str = "version = 1\n[roles.dev]\nallow = [{ tools = [\"diag.*\"] }]\n";
    let endpoints = [
        ("GET", "/t/acme/connectors".to_owned(), None),
        ("POST", "/t/acme/join-tokens".to_owned(), Some("{}")),
        ("POST", revoke_c1.clone(), None),
        ("GET", "/t/acme/policy".to_owned(), None),
        ("POST", "/t/acme/policy/validate".to_owned(), Some(POLICY)),
        ("PUT", "/t/acme/policy".to_owned(), Some(POLICY)),
    ];
    for (method, path, body) in &endpoints {
        for token in [
            None,
            Some("crt_admin_00"),
            Some("not-even-the-prefix"),
            Some(revoked.as_str()),
        ] {
            let (status, v) = api.call(method, path, token, *body)?;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {v}");
            api.conforms("Problem", &v);
        }
        let (status, v) = api.call(method, path, Some(&globex), *body)?;
        assert_eq!(status, 404, "another tenant's admin: {method} {path}: {v}");
        api.conforms("Problem", &v);
        assert!(!v.to_string().contains(&c1.id), "nothing leaks: {v}");
    }
    for (method, path, body) in &endpoints[1..] {
        let (status, v) = api.call(method, path, Some(&reader), *body)?;
        assert_eq!(status, 403, "without the scope: {method} {path}: {v}");
        api.conforms("Problem", &v);
    }
    // A tenant that does not exist answers as another tenant does.
    let (status, _) = api.call("GET", "/t/initech/connectors", Some(&full), None)?;
    assert_eq!(status, 404);

    let (status, list) = api.call("GET", "/t/acme/connectors", Some(&reader), None)?;
    assert_eq!(status, 200, "{list}");
    api.conforms("ConnectorList", &list);
    let row = list["connectors"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == c1.id.as_str()))
        .context("c1 listed")?;
    assert_eq!(row["status"], "online", "{row}");
    let (_, theirs) = api.call("GET", "/t/globex/connectors", Some(&globex), None)?;
    assert!(
        !theirs.to_string().contains(&c1.id),
        "globex sees none of acme's"
    );

    // A join token whose enroll command enrolls a real connector.
    for bad in [
        r#"{"ttl_seconds": "soon"}"#,
        r#"{"ttl": 60}"#,
        r#"{"ttl_seconds": 0}"#,
        "{",
        r#"{"ttl_seconds": 99999999}"#,
    ] {
        let (status, v) = api.call("POST", "/t/acme/join-tokens", Some(&full), Some(bad))?;
        assert_eq!(status, 400, "{bad}: {v}");
        api.conforms("Problem", &v);
    }
    let (status, joined) = api.call(
        "POST",
        "/t/acme/join-tokens",
        Some(&full),
        Some(r#"{"ttl_seconds": 600}"#),
    )?;
    assert_eq!(status, 201, "{joined}");
    api.conforms("JoinToken", &joined);
    let deb = joined["commands"]["deb"].as_str().context("deb")?;
    assert!(
        deb.starts_with("sudo apt-get install ./edge-connector_"),
        "{deb}"
    );
    assert!(
        joined["commands"]["rpm"]
            .as_str()
            .is_some_and(|r| r.contains("dnf install"))
    );
    let enroll = deb
        .split(" && ")
        .find(|part| part.contains(" enroll "))
        .context("an enroll command")?;
    let words: Vec<&str> = enroll.split_whitespace().collect();
    let flag = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|i| words.get(i + 1))
            .copied()
            .context(name.to_owned())
    };
    let state = tempfile::tempdir()?;
    let out = run(Connector::cli()
        .args([
            "enroll",
            "--runtime",
            flag("--runtime")?,
            "--token",
            flag("--token")?,
            "--ca-fingerprint",
            flag("--ca-fingerprint")?,
            "--state-dir",
        ])
        .arg(state.path().join("state")));
    assert!(
        out.status.success(),
        "the page's enroll command enrolls: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The policy: validated with the place of its first error, applied, shown; an invalid
    // one changes nothing.
    let policy_admin = admin_token(&rt, "acme", "policy-admin", "policy:read,policy:write");
    let policy_reader = admin_token(&rt, "acme", "policy-reader", "policy:read");
    let broken = "version = 1\n[roles.dev]\nallow = [{ tools = 5 }]\n";
    let (status, v) = api.call(
        "POST",
        "/t/acme/policy/validate",
        Some(&policy_reader),
        Some(broken),
    )?;
    assert_eq!(status, 422, "{v}");
    api.conforms("InvalidPolicy", &v);
    assert_eq!(v["line"], 3, "{v}");
    let (status, v) = api.call(
        "POST",
        "/t/acme/policy/validate",
        Some(&policy_reader),
        Some(POLICY),
    )?;
    assert_eq!(status, 200, "{v}");
    api.conforms("PolicyValid", &v);
    let (status, v) = api.call(
        "POST",
        "/t/acme/policy/preview",
        Some(&policy_reader),
        Some(POLICY),
    )?;
    assert_eq!(status, 200, "{v}");
    api.conforms("PolicyPreview", &v);
    assert!(
        v["diff"]
            .as_str()
            .is_some_and(|d| d.contains("+++ proposed")),
        "{v}"
    );
    let (status, v) = api.call(
        "POST",
        "/t/acme/policy/preview",
        Some(&policy_reader),
        Some(broken),
    )?;
    assert_eq!((status, &v["line"]), (422, &json!(3)), "{v}");
    let (status, _) = api.call(
        "POST",
        "/t/acme/policy/preview",
        Some(&globex),
        Some(POLICY),
    )?;
    assert_eq!(status, 404);
    let (status, v) = api.call("PUT", "/t/acme/policy", Some(&policy_reader), Some(POLICY))?;
    assert_eq!(status, 403, "{v}");
    let (status, applied) = api.call("PUT", "/t/acme/policy", Some(&policy_admin), Some(POLICY))?;
    assert_eq!(status, 201, "{applied}");
    api.conforms("PolicyApplied", &applied);
    let revision = applied["revision"].as_i64().context("revision")?;
    let (status, v) = api.call("PUT", "/t/acme/policy", Some(&policy_admin), Some(broken))?;
    assert_eq!(status, 422, "{v}");
    let (status, shown) = api.call("GET", "/t/acme/policy", Some(&policy_reader), None)?;
    assert_eq!(status, 200, "{shown}");
    api.conforms("PolicyRevision", &shown);
    assert_eq!(
        (shown["revision"].as_i64(), shown["source"].as_str()),
        (Some(revision), Some(POLICY))
    );
    let (status, _) = api.call(
        "GET",
        &format!("/t/acme/policy?revision={revision}"),
        Some(&policy_reader),
        None,
    )?;
    assert_eq!(status, 200);
    for (query, expected) in [
        ("?revision=abc", 400),
        ("?revision=0", 400),
        ("?revision=999999", 404),
        ("?rev=1", 400),
    ] {
        let (status, v) = api.call(
            "GET",
            &format!("/t/acme/policy{query}"),
            Some(&policy_reader),
            None,
        )?;
        assert_eq!(status, expected, "{query}: {v}");
        api.conforms("Problem", &v);
    }
    assert!(
        run_ok(rt.cli().args(["policy", "show", "--tenant", "acme"]))
            .contains(&format!("revision {revision}")),
        "the command line sees the same revision"
    );
    // History and rollback: a second file, then the first back in force as a new revision.
    let second = format!("{POLICY}[groups.dev]\nallow = [{{ tools = [\"diag.*\"] }}]\n");
    let (status, v) = api.call("PUT", "/t/acme/policy", Some(&policy_admin), Some(&second))?;
    assert_eq!(
        (status, v["revision"].as_i64()),
        (201, Some(revision + 1)),
        "{v}"
    );
    let (status, history) = api.call(
        "GET",
        "/t/acme/policy/revisions",
        Some(&policy_reader),
        None,
    )?;
    assert_eq!(status, 200, "{history}");
    api.conforms("PolicyHistory", &history);
    assert_eq!(
        history["revisions"][0]["revision"].as_i64(),
        Some(revision + 1)
    );
    let back = format!(r#"{{"revision": {revision}}}"#);
    let (status, v) = api.call(
        "POST",
        "/t/acme/policy/rollback",
        Some(&policy_reader),
        Some(&back),
    )?;
    assert_eq!(status, 403, "{v}");
    let (status, v) = api.call(
        "POST",
        "/t/acme/policy/rollback",
        Some(&policy_admin),
        Some(&back),
    )?;
    assert_eq!(status, 201, "{v}");
    api.conforms("PolicyApplied", &v);
    let (_, now) = api.call("GET", "/t/acme/policy", Some(&policy_reader), None)?;
    assert_eq!(
        (now["revision"].as_i64(), now["source"].as_str()),
        (Some(revision + 2), Some(POLICY))
    );
    for (body, expected) in [
        (r#"{"revision": 999999}"#, 404),
        (r#"{"revision": "1"}"#, 400),
        ("[]", 400),
        (r#"{"revision": 1, "x": 2}"#, 400),
    ] {
        let (status, v) = api.call(
            "POST",
            "/t/acme/policy/rollback",
            Some(&policy_admin),
            Some(body),
        )?;
        assert_eq!(status, expected, "{body}: {v}");
        api.conforms("Problem", &v);
    }
    let (status, _) = api.call("GET", "/t/acme/policy/revisions", Some(&globex), None)?;
    assert_eq!(status, 404, "another tenant's history");
    assert!(
        run_ok(rt.cli().args(["policy", "history", "--tenant", "acme"]))
            .contains(&format!("{}", revision + 2)),
        "the command line lists the same history"
    );

    // Users and agents, as the command line lists them; HTML in a name comes back as data.
    run_ok(rt.cli().args([
        "user", "add", "--tenant", "acme", "carol", "--groups", "dev",
    ]));
    run_ok(rt.cli().args([
        "agent", "create", "--tenant", "acme", "bot", "--role", "dev",
    ]));
    let people = admin_token(&rt, "acme", "people", "users:read,agents:read");
    let (status, users) = api.call("GET", "/t/acme/users", Some(&people), None)?;
    assert_eq!(status, 200, "{users}");
    api.conforms("UserList", &users);
    assert!(
        users["users"].as_array().is_some_and(|u| u
            .iter()
            .any(|u| u["name"] == "carol" && u["groups"] == json!(["dev"]))),
        "{users}"
    );
    let (status, agents) = api.call("GET", "/t/acme/agents", Some(&people), None)?;
    assert_eq!(status, 200, "{agents}");
    api.conforms("AgentList", &agents);
    assert!(
        !agents.to_string().contains("key"),
        "no agent key: {agents}"
    );
    let cli_users: Vec<Value> = serde_json::from_str(&run_ok(
        rt.cli()
            .args(["user", "list", "--tenant", "acme", "--json"]),
    ))?;
    assert_eq!(
        json!(cli_users),
        users["users"],
        "the command line lists the same users"
    );
    let cli_agents = run_ok(rt.cli().args(["agent", "list", "--tenant", "acme"]));
    assert!(
        cli_agents.contains("bot") && cli_agents.contains("dev"),
        "{cli_agents}"
    );
    // Key rotation: a new key shown once; not without the scope, not another tenant's.
    let keys = admin_token(&rt, "acme", "keys", "agents:write");
    let rotate = "/t/acme/agents/bot/rotate-key";
    assert_eq!(api.call("POST", rotate, Some(&people), None)?.0, 403);
    assert_eq!(api.call("POST", rotate, Some(&globex), None)?.0, 404);
    let (status, v) = api.call(
        "POST",
        "/t/acme/agents/nobody/rotate-key",
        Some(&keys),
        None,
    )?;
    assert_eq!(status, 404, "{v}");
    let (status, rotated) = api.call("POST", rotate, Some(&keys), None)?;
    assert_eq!(status, 200, "{rotated}");
    api.conforms("AgentKey", &rotated);
    let again = run_ok(
        rt.cli()
            .args(["agent", "rotate-key", "--tenant", "acme", "bot"]),
    );
    let cli_key = e2e::oauth_client::field(&again, "X-MCP-Agent-Key):");
    assert!(cli_key.starts_with("mcpak_") && cli_key != rotated["key"]);
    for path in ["/t/acme/users", "/t/acme/agents"] {
        assert_eq!(api.call("GET", path, Some(&globex), None)?.0, 404, "{path}");
        assert_eq!(api.call("GET", path, Some(&full), None)?.0, 403, "{path}");
        assert_eq!(api.call("GET", path, None, None)?.0, 401, "{path}");
    }
    let unknown = run(rt.cli().args([
        "agent",
        "bind-client",
        "--tenant",
        "acme",
        "bot",
        "--client-id",
        "no-such-client",
    ]));
    assert!(
        !unknown.status.success(),
        "binding to an unregistered client is refused"
    );
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no OAuth client"));
    let client_id =
        e2e::oauth_client::OAuthClient::new(format!("https://localhost:{}", rt.https_port), &ca)?
            .register()?;
    run_ok(rt.cli().args([
        "agent",
        "bind-client",
        "--tenant",
        "acme",
        "bot",
        "--client-id",
        &client_id,
    ]));
    let (_, agents) = api.call("GET", "/t/acme/agents", Some(&people), None)?;
    assert!(
        agents["agents"].as_array().is_some_and(|a| a
            .iter()
            .any(|a| a["name"] == "bot" && a["oauth_client_id"] == client_id.as_str())),
        "{agents}"
    );

    // Gateways, each with the MCP URL a client connects to (the runtime answers there).
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let gw_reader = admin_token(&rt, "acme", "gw", "gateways:read");
    let (status, gws) = api.call("GET", "/t/acme/gateways", Some(&gw_reader), None)?;
    assert_eq!(status, 200, "{gws}");
    api.conforms("GatewayList", &gws);
    let url = gws["gateways"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == "eng"))
        .and_then(|g| g["mcp_url"].as_str())
        .context("the eng gateway's URL")?
        .to_owned();
    assert_eq!(
        url,
        format!("https://localhost:{}/t/acme/g/eng/mcp", rt.https_port)
    );
    let mcp = api
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()?;
    assert_eq!(
        mcp.status().as_u16(),
        401,
        "the URL is the gateway's MCP endpoint (asks for a token)"
    );
    assert_eq!(
        api.call("GET", "/t/acme/gateways", Some(&globex), None)?.0,
        404
    );
    assert_eq!(
        api.call("GET", "/t/acme/gateways", Some(&people), None)?.0,
        403
    );

    // OAuth clients: one that signed erin in is listed with its first and last use; once
    // revoked it gets no token in the tenant, its refresh token is spent.
    let erin = run_ok(
        rt.cli()
            .args(["user", "add", "--tenant", "acme", "erin", "--groups", "dev"]),
    );
    let oauth =
        e2e::oauth_client::OAuthClient::new(format!("https://localhost:{}", rt.https_port), &ca)?;
    let erin_client = oauth.register()?;
    let (verifier, challenge) = e2e::oauth_client::pkce();
    let q = oauth.sign_in(
        &erin_client,
        &challenge,
        &url,
        "erin",
        &e2e::oauth_client::field(&erin, "(shown once):"),
    )?;
    let (status, tokens) = oauth.token(&[
        ("grant_type", "authorization_code"),
        ("code", q.get("code").context("code")?),
        ("redirect_uri", e2e::oauth_client::REDIRECT),
        ("client_id", &erin_client),
        ("code_verifier", &verifier),
    ])?;
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().context("refresh token")?;
    let access = tokens["access_token"].as_str().context("access token")?;
    // The access token at the gateway: past the bearer check (no agent key: 403), until
    // the client is revoked (401, within a second).
    let at_gateway = || -> Result<(u16, String)> {
        let resp = api
            .http
            .post(&url)
            .bearer_auth(access)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()?;
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok((resp.status().as_u16(), challenge))
    };
    assert_eq!(at_gateway()?.0, 403, "the token is good, the agent missing");
    let clients_reader = admin_token(&rt, "acme", "clients-r", "clients:read");
    let clients_admin = admin_token(&rt, "acme", "clients-w", "clients:read,clients:write");
    let (status, list) = api.call("GET", "/t/acme/clients", Some(&clients_reader), None)?;
    assert_eq!(status, 200, "{list}");
    api.conforms("ClientList", &list);
    let row = list["clients"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["client_id"] == erin_client.as_str()))
        .context("erin's client listed")?;
    assert_eq!(
        (
            &row["client_name"],
            &row["redirect_hosts"],
            &row["revoked_at_ms"]
        ),
        (&json!("e2e client"), &json!(["127.0.0.1"]), &Value::Null),
        "{row}"
    );
    assert!(row["first_used_at_ms"].as_i64() <= row["last_used_at_ms"].as_i64());
    let (_, theirs) = api.call("GET", "/t/globex/clients", Some(&globex), None)?;
    assert_eq!(
        theirs["error"], "insufficient_scope",
        "globex's token lacks the scope: {theirs}"
    );
    let revoke_client = format!("/t/acme/clients/{erin_client}/revoke");
    assert_eq!(
        api.call("POST", &revoke_client, Some(&clients_reader), None)?
            .0,
        403
    );
    assert_eq!(
        api.call("POST", &revoke_client, Some(&globex), None)?.0,
        404
    );
    assert_eq!(
        api.call(
            "POST",
            "/t/acme/clients/no-such-client/revoke",
            Some(&clients_admin),
            None
        )?
        .0,
        404
    );
    let (status, v) = api.call("POST", &revoke_client, Some(&clients_admin), None)?;
    assert_eq!((status, &v["already_revoked"]), (200, &json!(false)), "{v}");
    api.conforms("ClientRevoked", &v);
    let (status, v) = api.call("POST", &revoke_client, Some(&clients_admin), None)?;
    assert_eq!((status, &v["already_revoked"]), (200, &json!(true)), "{v}");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut answer = at_gateway()?;
    while answer.0 != 401 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        answer = at_gateway()?;
    }
    assert!(
        answer.0 == 401 && answer.1.contains("revoked"),
        "the revoked client's access token is refused: {answer:?}"
    );
    let (status, refused) = oauth.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", &erin_client),
    ])?;
    assert_eq!(
        (status, &refused["error"]),
        (400, &json!("invalid_grant")),
        "{refused}"
    );
    let q = oauth.sign_in(
        &erin_client,
        &challenge,
        &url,
        "erin",
        &e2e::oauth_client::field(&erin, "(shown once):"),
    )?;
    let (status, refused) = oauth.token(&[
        ("grant_type", "authorization_code"),
        ("code", q.get("code").context("code")?),
        ("redirect_uri", e2e::oauth_client::REDIRECT),
        ("client_id", &erin_client),
        ("code_verifier", &verifier),
    ])?;
    assert_eq!(status, 400, "a new sign-in gets no token either: {refused}");
    assert!(
        refused["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("revoked by its administrators")),
        "{refused}"
    );
    let listed = run_ok(rt.cli().args(["client", "list", "--tenant", "acme"]));
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&erin_client) && l.ends_with("(revoked)")),
        "{listed}"
    );

    // Revocation: not by another tenant, once by the tenant, then no change.
    let (status, _) = api.call("POST", &revoke_c1, Some(&globex), None)?;
    assert_eq!(status, 404);
    let (status, v) = api.call("POST", &revoke_c1, Some(&full), None)?;
    assert_eq!(status, 200, "{v}");
    api.conforms("Revoked", &v);
    assert_eq!(v["already_revoked"], false);
    let exit = c1
        .process
        .as_mut()
        .context("running")?
        .wait_exit(Duration::from_secs(10))?;
    assert!(!exit.success(), "the revoked connector's tunnel dropped");
    let (status, again) = api.call("POST", &revoke_c1, Some(&full), None)?;
    assert_eq!((status, &again["already_revoked"]), (200, &json!(true)));
    for odd in [
        format!("/t/acme/connectors/c-<b>{}<b>/revoke", "x".repeat(3000)),
        "/t/acme/connectors/c-1/revoke/more".to_owned(),
        "/t/acme/nothing-here".to_owned(),
    ] {
        let (status, v) = api.call("POST", &odd, Some(&full), None)?;
        assert_eq!(status, 404, "{v}");
        api.conforms("Problem", &v);
        assert!(!v.to_string().contains("<b>"), "{v}");
    }

    // The admin's acts in the audit trail, under the token's name.
    let audit = rt.audit_text();
    let acts: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "admin")
        .collect();
    assert!(
        acts.iter().any(|r| r["tool"] == "admin.connector.revoke"
            && r["user"] == "alice-admin"
            && r["target"] == c1.id.as_str()),
        "{acts:?}"
    );
    assert!(
        acts.iter().any(|r| r["tool"] == "admin.join_token.create"),
        "{acts:?}"
    );
    for act in ["admin.policy.apply", "admin.policy.rollback"] {
        assert!(
            acts.iter()
                .any(|r| r["tool"] == act && r["user"] == "policy-admin"),
            "{act}: {acts:?}"
        );
    }
    assert_eq!(
        acts.iter()
            .filter(|r| r["tool"] == "admin.connector.revoke")
            .count(),
        1,
        "revoking again is no act"
    );
    // Only hashes of the tokens are stored.
    let db = if rt.database_url().starts_with("postgres") {
        rt.psql("SELECT id, name, secret_hash, scopes FROM admin_tokens")?
            .into_bytes()
    } else {
        std::fs::read(rt.data_dir().join("runtime.db"))?
    };
    for token in [&full, &reader, &globex] {
        assert!(
            !db.windows(token.len()).any(|w| w == token.as_bytes()),
            "a token in the store"
        );
    }
    Ok(())
}

/// A page of search results' records.
fn records(page: &Value) -> Vec<Value> {
    page["records"].as_array().cloned().unwrap_or_default()
}

#[test]
fn the_audit_trail_is_searched_exported_and_verified_by_its_own_tenant_only() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let mut c1 = Connector::enroll(&rt, "acme", "c1")?;
    c1.start(&rt, &[])?;
    rt.wait_online(&c1.id, Duration::from_secs(20))?;
    rt.apply_policy(
        "acme",
        "version = 1\n[roles.dev]\nallow = [{ tools = [\"diag.ping\"] }]\n\
         [groups.dev]\nallow = [{ tools = [\"diag.*\"] }]\n",
    );
    let alice =
        e2e::mcp_client::McpClient::new_user(&rt, "acme", "eng", "alice", "dev", "bot", "dev")?;
    assert_eq!(alice.call("diag.ping", json!({}))?["isError"], false);
    // The policy is in force at the runtime's next look at the store (500 ms on PostgreSQL).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let denied = alice.call("diag.echo", json!({"message": "<img src=x>"}))?;
        if denied["isError"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the role does not allow it: {denied}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let api = Api::of(&rt)?;
    let auditor = admin_token(&rt, "acme", "auditor", "audit:read");
    let no_scope = admin_token(&rt, "acme", "ops", "connectors:read");
    let globex = admin_token(&rt, "globex", "globex-admin", "audit:read,connectors:write");
    // An act in globex, to be seen by globex only.
    let (status, _) = api.call("POST", "/t/globex/join-tokens", Some(&globex), Some("{}"))?;
    assert_eq!(status, 201);

    for path in ["/t/acme/audit", "/t/acme/audit/verify"] {
        assert_eq!(api.call("GET", path, None, None)?.0, 401, "{path}");
        let (status, v) = api.call("GET", path, Some(&globex), None)?;
        assert_eq!(status, 404, "another tenant's admin: {path}: {v}");
        assert!(!v.to_string().contains("alice"), "{v}");
        assert_eq!(
            api.call("GET", path, Some(&no_scope), None)?.0,
            403,
            "{path}"
        );
    }

    // The denied call, found by filtering (the index follows the chain within a second).
    let query = "/t/acme/audit?decision=deny&tool=diag.echo&user=alice";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let (status, page) = api.call("GET", query, Some(&auditor), None)?;
        assert_eq!(status, 200, "{page}");
        api.conforms("AuditPage", &page);
        if !records(&page).is_empty() || std::time::Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let found = records(&page);
    assert_eq!(found.len(), 1, "{page}");
    let record = &found[0]["record"];
    assert_eq!(
        (&record["layer"], &record["agent"], &record["tenant"]),
        (&json!("agent"), &json!("bot"), &json!("acme")),
        "{record}"
    );
    assert!(page["next_cursor"].is_null());

    // Paging one record at a time reads what one big page reads, in the same order.
    let (_, all) = api.call("GET", "/t/acme/audit?limit=500", Some(&auditor), None)?;
    let all = records(&all);
    assert!(all.len() >= 3, "two decisions and an outcome: {all:?}");
    assert!(all.iter().all(|r| r["record"]["tenant"] == "acme"));
    let mut paged = Vec::new();
    let mut next = "/t/acme/audit?limit=1".to_owned();
    loop {
        let (status, page) = api.call("GET", &next, Some(&auditor), None)?;
        assert_eq!(status, 200, "{page}");
        paged.extend(records(&page));
        match page["next_cursor"].as_str() {
            Some(c) => next = format!("/t/acme/audit?limit=1&cursor={c}"),
            None => break,
        }
        assert!(paged.len() <= all.len(), "paging ends");
    }
    // New records may land between the two reads (the admin acts are not searched here).
    let key = |r: &Value| (r["chain"].to_string(), r["seq"].as_i64());
    let paged: Vec<_> = paged.iter().map(key).collect();
    let whole: Vec<_> = all.iter().map(key).collect();
    assert!(
        paged.ends_with(&whole) || paged == whole,
        "{paged:?} vs {whole:?}"
    );

    // Bad searches: a clear 400 each, nothing searched.
    for bad in [
        "cursor=bm90LWEtY3Vyc29y",
        "cursor=%00%01",
        "from=2026-12-07T00:00:00Z&to=2020-01-01T00:00:00Z",
        "from=0001-01-01T00:00:00Z&to=9999-12-31T00:00:00Z",
        "from=yesterday",
        "limit=0",
        "limit=100000",
        "usr=alice",
        "decision=maybe",
        "layer=%3Cscript%3E",
    ] {
        let (status, v) = api.call("GET", &format!("/t/acme/audit?{bad}"), Some(&auditor), None)?;
        assert_eq!(status, 400, "{bad}: {v}");
        api.conforms("Problem", &v);
    }
    let (status, v) = api.call(
        "GET",
        "/t/acme/audit?user=%3Cscript%3Ealert(1)%3C/script%3E",
        Some(&auditor),
        None,
    )?;
    assert_eq!(
        (status, records(&v).len()),
        (200, 0),
        "HTML in a filter is data: {v}"
    );

    // The export: the lines exactly as chained, each still verifying, only this tenant's.
    let resp = api
        .http
        .get(format!(
            "{}/admin/api/v1/t/acme/audit/export?decision=deny",
            api.base
        ))
        .bearer_auth(&auditor)
        .send()?;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    let exported = resp.text()?;
    let lines: Vec<&str> = exported.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: Value = serde_json::from_str(line)?;
        assert_eq!(
            (&v["tenant"], &v["decision"]),
            (&json!("acme"), &json!("deny"))
        );
        assert!(v["hash"].as_str().is_some_and(|h| h.len() == 64), "{v}");
    }
    assert!(lines.iter().any(|l| l.contains("\"tool\":\"diag.echo\"")));
    // The command line's search reads the same.
    let cli = run_ok(rt.cli().args([
        "audit",
        "search",
        "--tenant",
        "acme",
        "--decision",
        "deny",
        "--ndjson",
    ]));
    assert_eq!(
        cli.lines().collect::<Vec<_>>(),
        lines,
        "the command line exports the same"
    );
    let (status, _) = api.call("GET", "/t/acme/audit/export", Some(&globex), None)?;
    assert_eq!(status, 404);

    // globex sees its own act, none of acme's records.
    let (_, theirs) = api.call("GET", "/t/globex/audit?limit=500", Some(&globex), None)?;
    let theirs = records(&theirs);
    assert!(
        theirs.iter().all(|r| r["record"]["tenant"] == "globex"),
        "{theirs:?}"
    );

    // The chains hold; then a record is changed behind the runtime's back, and it says so.
    let (status, v) = api.call("GET", "/t/acme/audit/verify", Some(&auditor), None)?;
    assert_eq!(status, 200, "{v}");
    api.conforms("AuditVerification", &v);
    assert_eq!(v["intact"], true, "{v}");
    assert!(v["tenant_records_indexed"].as_u64() >= Some(3), "{v}");
    if rt.database_url().starts_with("postgres") {
        rt.psql(
            "UPDATE audit_chain SET line = convert_to(replace(convert_from(line, 'UTF8'), \
             '\"user\":\"alice\"', '\"user\":\"mallory\"'), 'UTF8') \
             WHERE convert_from(line, 'UTF8') LIKE '%\"tool\":\"diag.echo\"%'",
        )?;
    } else {
        let path = rt.data_dir().join("audit.log");
        let text = std::fs::read_to_string(&path)?;
        let changed: Vec<String> = text
            .lines()
            .map(|l| {
                if l.contains("\"tool\":\"diag.echo\"") {
                    l.replace("\"user\":\"alice\"", "\"user\":\"mallory\"")
                } else {
                    l.to_owned()
                }
            })
            .collect();
        std::fs::write(&path, changed.join("\n") + "\n")?;
    }
    let (status, v) = api.call("GET", "/t/acme/audit/verify", Some(&auditor), None)?;
    assert_eq!(status, 200, "{v}");
    api.conforms("AuditVerification", &v);
    assert_eq!(v["intact"], false, "{v}");
    assert!(
        v["chains"][0]["first_problem"]
            .as_str()
            .is_some_and(|p| p.contains("does not match its hash")),
        "{v}"
    );

    // The export was the auditor's act, written to the trail.
    assert!(
        rt.audit_text()
            .lines()
            .any(|l| l.contains("\"tool\":\"admin.audit.export\"")
                && l.contains("\"user\":\"auditor\"")),
        "the export is audited"
    );
    Ok(())
}

/// The value of the first `name="{field}" value="..."` in `html`.
fn form_value(html: &str, field: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{field}\" value=\""))?;
    let rest = &html[at + field.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// A browser-like client (cookies, redirects) signed in to `tenant`'s console as `user`.
fn console_sign_in(
    rt: &Runtime,
    tenant: &str,
    user: &str,
    secret: &str,
) -> Result<(Client, String)> {
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    let http = Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
        .cookie_store(true)
        .timeout(Duration::from_secs(20))
        .build()?;
    let base = format!("https://localhost:{}", rt.https_port);
    let form = http.get(format!("{base}/admin/t/{tenant}/")).send()?;
    assert_eq!(form.status().as_u16(), 200);
    let form = form.text()?;
    assert!(
        form.contains("action=\"/oauth/login\""),
        "the sign-in form: {form}"
    );
    let pending = form_value(&form, "pending").context("pending")?;
    let landed = http
        .post(format!("{base}/oauth/login"))
        .form(&[
            ("pending", pending.as_str()),
            ("username", user),
            ("secret", secret),
        ])
        .send()?;
    let status = landed.status().as_u16();
    let url = landed.url().path().to_owned();
    Ok((http, format!("{status} {url} {}", landed.text()?)))
}

#[test]
fn the_console_is_for_the_tenant_s_admins_and_refuses_forged_forms() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let base = format!("https://localhost:{}", rt.https_port);
    let root = run_ok(rt.cli().args([
        "user", "add", "--tenant", "acme", "root", "--groups", "dev", "--admin",
    ]));
    let dave = run_ok(
        rt.cli()
            .args(["user", "add", "--tenant", "acme", "dave", "--groups", "dev"]),
    );
    let field = |out: &str| e2e::oauth_client::field(out, "(shown once):");
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let mut c1 = Connector::enroll(&rt, "acme", "c1")?;
    c1.start(&rt, &[])?;
    rt.wait_online(&c1.id, Duration::from_secs(20))?;
    let alice =
        e2e::mcp_client::McpClient::new_user(&rt, "acme", "eng", "alice", "dev", "bot", "dev")?;

    // An admin signs in and lands on the overview, with the console's headers.
    let (http, landed) = console_sign_in(&rt, "acme", "root", &field(&root))?;
    assert!(
        landed.starts_with("200 /admin/t/acme/ ") && landed.contains("id=\"connectors-online\""),
        "{landed}"
    );
    let overview = http.get(format!("{base}/admin/t/acme/")).send()?;
    let csp = overview
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline")
            && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(overview.headers().contains_key("strict-transport-security"));
    assert_eq!(
        overview
            .headers()
            .get("referrer-policy")
            .and_then(|v| v.to_str().ok()),
        Some("no-referrer")
    );
    let page = overview.text()?;
    let csrf = form_value(&page, "csrf").context("csrf")?;
    assert!(!page.contains("<script"), "no script on any page");
    for section in [
        "connectors",
        "policy",
        "audit",
        "live",
        "people",
        "clients",
        "gateways",
    ] {
        let resp = http.get(format!("{base}/admin/t/acme/{section}")).send()?;
        assert_eq!(resp.status().as_u16(), 200, "{section}");
        let text = resp.text()?;
        assert!(text.contains(&format!("id=\"nav-{section}\"")), "{section}");
    }
    let css = http
        .get(format!("{base}/admin/static/console.css"))
        .send()?;
    assert_eq!(css.status().as_u16(), 200);

    // Forms that change something: refused without the token, with another, or cross-site.
    let join = format!("{base}/admin/t/acme/join-tokens");
    for (form, cross_site) in [
        (vec![], false),
        (vec![("csrf", "0".repeat(64))], false),
        (vec![("csrf", csrf.clone())], true),
    ] {
        let mut req = http.post(&join).form(&form);
        if cross_site {
            req = req.header("sec-fetch-site", "cross-site");
        }
        let resp = req.send()?;
        assert_eq!(
            resp.status().as_u16(),
            403,
            "{form:?} cross-site {cross_site}"
        );
    }
    let made = http.post(&join).form(&[("csrf", csrf.as_str())]).send()?;
    assert_eq!(made.status().as_u16(), 201);
    let made = made.text()?;
    assert!(
        made.contains("id=\"deb-command\"") && made.contains("edge-connector enroll"),
        "{made}"
    );

    // The policy: an error at its line, nothing applied; a preview; an applied revision.
    let policy = format!("{base}/admin/t/acme/policy");
    let broken = "version = 1\n[roles.dev]\nallow = [{ tools = 5 }]\n";
    let resp = http
        .post(&policy)
        .form(&[
            ("csrf", csrf.as_str()),
            ("source", broken),
            ("action", "apply"),
        ])
        .send()?;
    assert_eq!(resp.status().as_u16(), 422);
    assert!(resp.text()?.contains("line 3"));
    let good = "version = 1\n[roles.dev]\nallow = [{ tools = [\"diag.*\"] }]\n";
    let preview = http
        .post(&policy)
        .form(&[
            ("csrf", csrf.as_str()),
            ("source", good),
            ("action", "preview"),
        ])
        .send()?
        .text()?;
    assert!(
        preview.contains("id=\"policy-diff\"")
            && preview
                .contains("<span class=\"add\">+allow = [{ tools = [&quot;diag.*&quot;] }]</span>"),
        "{preview}"
    );
    let applied = http
        .post(&policy)
        .form(&[
            ("csrf", csrf.as_str()),
            ("source", good),
            ("action", "apply"),
        ])
        .send()?
        .text()?;
    assert!(
        applied.contains("id=\"policy-applied\">Applied as revision "),
        "{applied}"
    );
    // An earlier revision back in force from the history; not without the form's token,
    // not one the tenant does not have.
    let rollback = format!("{base}/admin/t/acme/policy/rollback");
    let resp = http.post(&rollback).form(&[("revision", "1")]).send()?;
    assert_eq!(resp.status().as_u16(), 403);
    let resp = http
        .post(&rollback)
        .form(&[("csrf", csrf.as_str()), ("revision", "999")])
        .send()?;
    assert_eq!(resp.status().as_u16(), 404);
    let back = http
        .post(&rollback)
        .form(&[("csrf", csrf.as_str()), ("revision", "1")])
        .send()?;
    assert_eq!(back.status().as_u16(), 200);
    let back = back.text()?;
    assert!(
        back.contains("Revision 1 is in force again, as revision"),
        "{back}"
    );

    // Markup typed into a filter comes back as text.
    let audit = http
        .get(format!(
            "{base}/admin/t/acme/audit?user=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
        ))
        .send()?
        .text()?;
    assert!(audit.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !audit.contains("<script>"));

    // The live view: its page alone may run the console's script; its stream carries a
    // call made after it opened.
    let live = http.get(format!("{base}/admin/t/acme/live")).send()?;
    let csp = live
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(
        live.text()?
            .contains("<script src=\"/admin/static/live.js\" defer>")
    );
    let stream = http
        .get(format!("{base}/admin/t/acme/live/events"))
        .send()?;
    assert_eq!(
        stream
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let ping = alice.call("diag.ping", json!({}))?;
    assert_eq!(ping["isError"], false, "{ping}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let event = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = seen.recv_timeout(left).context("an event for the call")?;
        if line.starts_with("data:") && line.contains("\"tool\":\"diag.ping\"") {
            break line;
        }
    };
    assert!(event.contains("\"user\":\"alice\""), "{event}");

    // Rotating the agent's key in the console: shown once, and alice's client, which holds
    // the old one, is refused from its next request.
    let rotated = http
        .post(format!("{base}/admin/t/acme/agents/bot/rotate-key"))
        .form(&[("csrf", csrf.as_str())])
        .send()?
        .text()?;
    assert!(rotated.contains("id=\"agent-key\">mcpak_"), "{rotated}");
    let refused = alice.call("diag.ping", json!({}));
    assert!(
        refused.is_err() || refused.as_ref().is_ok_and(|r| r.get("error").is_some()),
        "the old key is refused: {refused:?}"
    );

    // Not another tenant's console: that one asks to sign in there.
    let globex = http.get(format!("{base}/admin/t/globex/")).send()?.text()?;
    assert!(globex.contains("action=\"/oauth/login\""), "{globex}");
    let nowhere = http.get(format!("{base}/admin/t/initech/")).send()?;
    assert_eq!(nowhere.status().as_u16(), 404);

    // A user who is not in the admin group is refused.
    let (_, refused) = console_sign_in(&rt, "acme", "dave", &field(&dave))?;
    assert!(
        refused.starts_with("403 ") && refused.contains("not an administrator of this tenant"),
        "{refused}"
    );

    // Signing out ends the session.
    let out = http
        .post(format!("{base}/admin/t/acme/sign-out"))
        .form(&[("csrf", csrf.as_str())])
        .send()?
        .text()?;
    assert!(out.contains("action=\"/oauth/login\""), "{out}");

    // The admin's acts, under their name, through the console.
    let audit = rt.audit_text();
    for act in [
        "admin.join_token.create",
        "admin.policy.apply",
        "admin.policy.rollback",
    ] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(&format!("\"tool\":\"{act}\""))
                    && l.contains("\"user\":\"root\"")
                    && l.contains("\"agent\":\"admin console\"")),
            "{act}: {audit}"
        );
    }
    Ok(())
}

#[test]
fn the_identity_provider_s_admin_group_opens_the_console() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    // alice is in the provider's group `admins`, bob only in `triage`.
    let idp = e2e::OidcProvider::start_with(&rt, "acme", None, &["--admin-group", "admins"])?;
    assert!(
        run_ok(rt.cli().args(["idp", "show", "--tenant", "acme"])).contains("admin group:  admins")
    );
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    let console = format!("https://localhost:{}/admin/t/acme/", rt.https_port);
    for (user, admin) in [("alice", true), ("bob", false)] {
        let b = e2e::browser::browser(&ca)?;
        // Without a session the console sends the browser to the tenant's provider.
        let login = b.get(&console).send()?;
        assert!(
            login.url().as_str().starts_with(&idp.issuer),
            "{user}: {}",
            login.url()
        );
        let back = e2e::browser::at_the_provider(&b, login, &idp.issuer, user)?;
        let (status, at) = (back.status().as_u16(), back.url().path().to_owned());
        let page = back.text()?;
        if admin {
            assert_eq!((status, at.as_str()), (200, "/admin/t/acme/"), "{page}");
            assert!(page.contains("id=\"connectors-online\"") && page.contains("alice"));
        } else {
            assert_eq!(status, 403, "{page}");
            assert!(
                page.contains("not an administrator of this tenant"),
                "{page}"
            );
        }
    }
    Ok(())
}

/// A session-authenticated call to the admin API: `(status, body)`, as a browser's script
/// makes it (cookies, and `headers`).
fn session_call(
    http: &Client,
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let url = format!("{base}/admin/api/v1{path}");
    let mut req = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        _ => http.post(url),
    };
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send()?;
    let status = resp.status().as_u16();
    let text = resp.text()?;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("{method} {path}: {status} {text:?}"))?
    };
    Ok((status, value))
}

#[test]
fn users_agents_and_gateways_are_managed_by_token_and_by_the_console_session() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let base = format!("https://localhost:{}", rt.https_port);
    let api = Api::of(&rt)?;
    let all = "users:read,users:write,agents:read,agents:write,gateways:read,gateways:write";
    let full = admin_token(&rt, "acme", "directory", all);
    let reader = admin_token(
        &rt,
        "acme",
        "reader",
        "users:read,agents:read,gateways:read",
    );
    let globex = admin_token(&rt, "globex", "theirs", all);

    // Every new endpoint: 401 without a token, 404 for another tenant's, 403 without the scope.
    let writes: [(&str, &str, Option<&str>); 7] = [
        ("POST", "/t/acme/users", Some(r#"{"name":"x"}"#)),
        ("DELETE", "/t/acme/users/x", None),
        (
            "POST",
            "/t/acme/agents",
            Some(r#"{"name":"x","role":"dev"}"#),
        ),
        ("DELETE", "/t/acme/agents/x", None),
        (
            "POST",
            "/t/acme/agents/x/bind-client",
            Some(r#"{"client_id":"c"}"#),
        ),
        (
            "POST",
            "/t/acme/gateways",
            Some(r#"{"name":"x","tools":["*"]}"#),
        ),
        ("DELETE", "/t/acme/gateways/x", None),
    ];
    for (method, path, body) in writes {
        assert_eq!(
            api.call(method, path, None, body)?.0,
            401,
            "{method} {path}"
        );
        let (status, v) = api.call(method, path, Some(&globex), body)?;
        assert_eq!(status, 404, "{method} {path}");
        assert!(
            !v.to_string().contains("\"x\""),
            "nothing of acme leaks: {v}"
        );
        let (status, v) = api.call(method, path, Some(&reader), body)?;
        assert_eq!(
            (status, v["error"].as_str()),
            (403, Some("insufficient_scope")),
            "{method} {path}"
        );
    }

    // Users: added with their secret shown once (it signs them in), a name taken is 409, a
    // bad name or field 400, and removal twice is 404 the second time.
    let (status, erin) = api.call(
        "POST",
        "/t/acme/users",
        Some(&full),
        Some(r#"{"name":"erin","groups":["dev","dev","ops"]}"#),
    )?;
    assert_eq!(status, 201, "{erin}");
    api.conforms("AddedUser", &erin);
    assert_eq!(erin["groups"], json!(["dev", "ops"]));
    let secret = erin["secret"].as_str().context("secret")?.to_owned();
    let (_, landed) = console_sign_in(&rt, "acme", "erin", &secret)?;
    assert!(
        landed.starts_with("403 "),
        "erin signs in, but is no admin: {landed}"
    );
    let (status, v) = api.call(
        "POST",
        "/t/acme/users",
        Some(&full),
        Some(r#"{"name":"erin"}"#),
    )?;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );
    for bad in [
        r#"{"name":"<b>x</b>"}"#,
        r#"{"name":"ok","groups":["a,b"]}"#,
        r#"{"name":"ok","role":"extra"}"#,
        r#"{"name":""}"#,
        "not json",
    ] {
        let (status, v) = api.call("POST", "/t/acme/users", Some(&full), Some(bad))?;
        assert_eq!(status, 400, "{bad}: {v}");
        api.conforms("Problem", &v);
    }
    let (_, users) = api.call("GET", "/t/acme/users", Some(&reader), None)?;
    assert!(users.to_string().contains("\"erin\""), "{users}");
    assert_eq!(
        api.call("DELETE", "/t/acme/users/erin", Some(&full), None)?
            .0,
        204
    );
    assert_eq!(
        api.call("DELETE", "/t/acme/users/erin", Some(&full), None)?
            .0,
        404
    );
    let (_, users) = api.call("GET", "/t/acme/users", Some(&reader), None)?;
    assert!(!users.to_string().contains("\"erin\""), "{users}");

    // Agents: registered with their key, bound to a registered client (an unknown one is
    // 404), removed.
    let (status, agent) = api.call(
        "POST",
        "/t/acme/agents",
        Some(&full),
        Some(r#"{"name":"bot2","role":"dev"}"#),
    )?;
    assert_eq!(status, 201, "{agent}");
    api.conforms("CreatedAgent", &agent);
    assert_eq!(
        api.call(
            "POST",
            "/t/acme/agents",
            Some(&full),
            Some(r#"{"name":"bot2","role":"dev"}"#)
        )?
        .0,
        409
    );
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    let client_id = e2e::oauth_client::OAuthClient::new(base.clone(), &ca)?.register()?;
    let (status, v) = api.call(
        "POST",
        "/t/acme/agents/bot2/bind-client",
        Some(&full),
        Some(r#"{"client_id":"no-such-client"}"#),
    )?;
    assert_eq!(status, 404, "{v}");
    let bind = json!({"client_id": client_id}).to_string();
    let (status, bound) = api.call(
        "POST",
        "/t/acme/agents/bot2/bind-client",
        Some(&full),
        Some(&bind),
    )?;
    assert_eq!(status, 200, "{bound}");
    api.conforms("AgentBound", &bound);
    assert_eq!(
        api.call(
            "POST",
            "/t/acme/agents/nobody/bind-client",
            Some(&full),
            Some(&bind)
        )?
        .0,
        404
    );
    let (_, agents) = api.call("GET", "/t/acme/agents", Some(&reader), None)?;
    assert!(
        agents["agents"].as_array().is_some_and(|a| a
            .iter()
            .any(|a| a["name"] == "bot2" && a["oauth_client_id"] == client_id.as_str())),
        "{agents}"
    );
    assert_eq!(
        api.call("DELETE", "/t/acme/agents/bot2", Some(&full), None)?
            .0,
        204
    );
    assert_eq!(
        api.call("DELETE", "/t/acme/agents/bot2", Some(&full), None)?
            .0,
        404
    );

    // Gateways: created (its MCP URL answers), a bad pattern or name refused, removed (its
    // URL answers 404 once the runtime rereads it).
    let (status, gw) = api.call(
        "POST",
        "/t/acme/gateways",
        Some(&full),
        Some(r#"{"name":"ops","tools":["github_*","diag.ping"],"instructions":"<script>alert(1)</script>"}"#),
    )?;
    assert_eq!(status, 201, "{gw}");
    api.conforms("Gateway", &gw);
    let meta = format!("{base}/.well-known/oauth-protected-resource/t/acme/g/ops/mcp");
    assert_eq!(api.http.get(&meta).send()?.status().as_u16(), 200);
    for bad in [
        r#"{"name":"Ops","tools":["*"]}"#,
        r#"{"name":"ops2","tools":["github_<x>"]}"#,
        r#"{"name":"ops2","tools":[]}"#,
    ] {
        let (status, v) = api.call("POST", "/t/acme/gateways", Some(&full), Some(bad))?;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    let (_, gateways) = api.call("GET", "/t/globex/gateways", Some(&globex), None)?;
    assert_eq!(
        gateways["gateways"],
        json!([]),
        "another tenant sees none of acme's"
    );

    // A signed-in admin's browser: reads by cookie alone; a change needs the session's CSRF
    // token in X-CSRF-Token, and is refused from another site even with it.
    let root = run_ok(
        rt.cli()
            .args(["user", "add", "--tenant", "acme", "root", "--admin"]),
    );
    let (http, landed) = console_sign_in(
        &rt,
        "acme",
        "root",
        &e2e::oauth_client::field(&root, "(shown once):"),
    )?;
    assert!(landed.starts_with("200 /admin/t/acme/ "), "{landed}");
    let page = http
        .get(format!("{base}/admin/t/acme/people"))
        .send()?
        .text()?;
    let csrf = {
        let meta = "name=\"csrf-token\" content=\"";
        let at = page.find(meta).context("csrf meta")?;
        let rest = &page[at + meta.len()..];
        rest[..rest.find('"').context("end")?].to_owned()
    };
    let (status, v) = session_call(&http, &base, "GET", "/t/acme/users", &[], None)?;
    assert_eq!(status, 200, "{v}");
    api.conforms("UserList", &v);
    let frank = json!({"name": "frank", "groups": ["dev"], "admin": true});
    for headers in [
        vec![],
        vec![("x-csrf-token", "0".repeat(64))],
        vec![
            ("x-csrf-token", csrf.clone()),
            ("sec-fetch-site", "cross-site".to_owned()),
        ],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, v) = session_call(
            &http,
            &base,
            "POST",
            "/t/acme/users",
            &headers,
            Some(frank.clone()),
        )?;
        assert_eq!(
            (status, v["error"].as_str()),
            (403, Some("csrf")),
            "{headers:?}: {v}"
        );
    }
    let with_csrf = [("x-csrf-token", csrf.as_str())];
    let (status, v) = session_call(
        &http,
        &base,
        "POST",
        "/t/acme/users",
        &with_csrf,
        Some(frank.clone()),
    )?;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["groups"], json!(["dev", "tenant-admins"]));
    let (status, _) = session_call(
        &http,
        &base,
        "DELETE",
        "/t/acme/gateways/ops",
        &with_csrf,
        None,
    )?;
    assert_eq!(status, 204);
    // The console's own forms do the same acts: a gateway whose instructions hold HTML is
    // shown escaped, an agent's key is shown once, a form without the CSRF token is refused.
    let form = |path: &str, fields: &[(&str, &str)]| -> Result<(u16, String)> {
        let resp = http
            .post(format!("{base}/admin/t/acme/{path}"))
            .form(fields)
            .send()?;
        Ok((resp.status().as_u16(), resp.text()?))
    };
    let (status, page) = form(
        "gateways",
        &[
            ("csrf", &csrf),
            ("name", "web"),
            ("tools", "diag.*, github_*"),
            ("instructions", "<img src=x onerror=alert(1)>"),
        ],
    )?;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;") && !page.contains("<img src=x"),
        "escaped: {page}"
    );
    let (status, page) = form(
        "agents",
        &[("csrf", &csrf), ("name", "bot3"), ("role", "dev")],
    )?;
    assert_eq!(status, 201, "{page}");
    assert!(page.contains("id=\"agent-key\">mcpak_"), "{page}");
    let (status, page) = form(
        "agents",
        &[("csrf", &csrf), ("name", "<b>"), ("role", "dev")],
    )?;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("&lt;b&gt;") && !page.contains("\"<b>\""),
        "{page}"
    );
    let (status, _) = form("users", &[("name", "mallory"), ("admin", "true")])?;
    assert_eq!(status, 403, "a forged form adds nobody");
    let (status, _) = form("agents/bot3/remove", &[("csrf", &csrf)])?;
    assert_eq!(status, 200, "back to the list");
    let (_, agents) = api.call("GET", "/t/acme/agents", Some(&reader), None)?;
    assert!(!agents.to_string().contains("bot3"), "{agents}");

    // The acme session is no admin of globex, and a non-admin's session is refused.
    let (status, _) = session_call(&http, &base, "GET", "/t/globex/users", &[], None)?;
    assert_eq!(status, 404);
    let dave = run_ok(
        rt.cli()
            .args(["user", "add", "--tenant", "acme", "dave", "--groups", "dev"]),
    );
    let (dave_http, _) = console_sign_in(
        &rt,
        "acme",
        "dave",
        &e2e::oauth_client::field(&dave, "(shown once):"),
    )?;
    let (status, v) = session_call(&dave_http, &base, "GET", "/t/acme/users", &[], None)?;
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("not_admin")),
        "{v}"
    );

    // The removed gateway's URL is gone once the runtime rereads it (five seconds).
    let gone = (0..40).any(|_| {
        std::thread::sleep(Duration::from_millis(250));
        api.http
            .get(&meta)
            .send()
            .is_ok_and(|r| r.status().as_u16() == 404)
    });
    assert!(gone, "the removed gateway's metadata still answers");

    // Each act is in the audit trail as its admin's.
    let audit = admin_token(&rt, "acme", "auditor", "audit:read");
    let acts_now = || -> Result<Vec<(String, String, String)>> {
        let (_, page) = api.call(
            "GET",
            "/t/acme/audit?kind=admin&limit=100",
            Some(&audit),
            None,
        )?;
        Ok(records(&page)
            .iter()
            .map(|r| {
                let s = |k: &str| r["record"][k].as_str().unwrap_or_default().to_owned();
                (s("user"), s("agent"), s("tool"))
            })
            .collect())
    };
    // The search index follows the chain within a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut acts = acts_now()?;
    while acts.len() < 8 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        acts = acts_now()?;
    }
    for (who, action) in [
        ("directory", "admin.user.add"),
        ("directory", "admin.user.remove"),
        ("directory", "admin.agent.create"),
        ("directory", "admin.agent.bind_client"),
        ("directory", "admin.agent.remove"),
        ("directory", "admin.gateway.create"),
        ("root", "admin.user.add"),
        ("root", "admin.gateway.remove"),
    ] {
        assert!(
            acts.iter().any(|(u, _, t)| u == who && t == action),
            "{who} {action} in {acts:?}"
        );
    }
    assert!(
        acts.iter()
            .any(|(u, a, _)| u == "root" && a == "admin console"),
        "{acts:?}"
    );
    Ok(())
}

#[test]
fn users_upstream_connections_are_listed_from_the_connectors_and_revoked_there() -> Result<()> {
    let env = e2e::tool_suite::ToolEnv::github().start()?;
    let rt = &env.rt;
    let api = Api::of(rt)?;
    let issue = json!({"owner": "acme", "repo": "widgets", "number": 1});
    // alice signs in and her token is stored at the connector (as `vault set` does).
    let alice = env.user("alice");
    alice.ok("github_get_issue", issue.clone());
    let alice_id = alice.client().user_id.clone();
    let admin = admin_token(rt, "acme", "people", "users:read,users:write");
    let reader = admin_token(rt, "acme", "reader", "users:read");
    let globex = admin_token(rt, "globex", "theirs", "users:read,users:write");

    let (status, list) = api.call("GET", "/t/acme/connections", Some(&reader), None)?;
    assert_eq!(status, 200, "{list}");
    api.conforms("ConnectionList", &list);
    let connector = env.connector.id.clone();
    let theirs = list["connections"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["user"] == alice_id.as_str()))
        .with_context(|| format!("alice's connection listed: {list}"))?;
    assert_eq!(
        (
            &theirs["connector"],
            &theirs["provider"],
            &theirs["user_name"],
            &theirs["source"]
        ),
        (
            &json!(connector),
            &json!("ghes"),
            &json!("alice"),
            &json!("admin")
        ),
        "{theirs}"
    );
    assert!(
        !list.to_string().contains("ghp_"),
        "no token in the answer: {list}"
    );
    assert_eq!(list["unreachable"], json!([]));
    assert_eq!(api.call("GET", "/t/acme/connections", None, None)?.0, 401);
    assert_eq!(
        api.call("GET", "/t/acme/connections", Some(&globex), None)?
            .0,
        404
    );
    let auditor_only = admin_token(rt, "acme", "audit-only", "audit:read");
    assert_eq!(
        api.call("GET", "/t/acme/connections", Some(&auditor_only), None)?
            .0,
        403
    );
    let (_, none) = api.call("GET", "/t/globex/connections", Some(&globex), None)?;
    assert_eq!(
        none["connections"],
        json!([]),
        "globex sees none of acme's: {none}"
    );
    // The command line asks the running runtime on its admin socket: the same answer.
    let listed = run_ok(rt.cli().args(["connection", "list", "--tenant", "acme"]));
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&alice_id) && l.contains("ghes") && l.contains("alice")),
        "{listed}"
    );
    // The console's page shows the same, with a revoke form for each.
    let root = run_ok(
        rt.cli()
            .args(["user", "add", "--tenant", "acme", "root", "--admin"]),
    );
    let (http, _) = console_sign_in(
        rt,
        "acme",
        "root",
        &e2e::oauth_client::field(&root, "(shown once):"),
    )?;
    let base = format!("https://localhost:{}", rt.https_port);
    let page = http
        .get(format!("{base}/admin/t/acme/connections"))
        .send()?
        .text()?;
    assert!(
        page.contains(&format!("data-user=\"{alice_id}\""))
            && page.contains(&format!(
                "/admin/t/acme/connectors/{connector}/connections/revoke"
            ))
            && !page.contains("ghp_"),
        "{page}"
    );

    // Revocation: 401 without a token, 404 for globex, 403 without users:write, 400 for a
    // bad name; then the connector forgets her token, and says so a second time.
    let path = format!("/t/acme/connectors/{connector}/connections/revoke");
    let body = json!({"provider": "ghes", "user": alice_id}).to_string();
    assert_eq!(api.call("POST", &path, None, Some(&body))?.0, 401);
    assert_eq!(api.call("POST", &path, Some(&globex), Some(&body))?.0, 404);
    let (status, _) = api.call(
        "POST",
        &path.replace("acme", "globex"),
        Some(&globex),
        Some(&body),
    )?;
    assert_eq!(status, 404, "acme's connector is unknown in globex");
    assert_eq!(api.call("POST", &path, Some(&reader), Some(&body))?.0, 403);
    let bad = json!({"provider": "ghes", "user": "../provider/ghes/client_secret"}).to_string();
    assert_eq!(api.call("POST", &path, Some(&admin), Some(&bad))?.0, 400);
    let unknown = json!({"provider": "nowhere", "user": alice_id}).to_string();
    assert_eq!(
        api.call("POST", &path, Some(&admin), Some(&unknown))?.0,
        400
    );
    let (status, v) = api.call("POST", &path, Some(&admin), Some(&body))?;
    assert_eq!((status, &v["revoked"]), (200, &json!(true)), "{v}");
    api.conforms("ConnectionRevoked", &v);
    let again = run_ok(rt.cli().args([
        "connection",
        "revoke",
        "--tenant",
        "acme",
        "--connector",
        &connector,
        "--provider",
        "ghes",
        "--user",
        &alice_id,
    ]));
    let again: Value = serde_json::from_str(&again)?;
    assert_eq!(again["revoked"], json!(false), "gone already: {again}");
    let (_, list) = api.call("GET", "/t/acme/connections", Some(&reader), None)?;
    assert!(
        !list.to_string().contains(&alice_id),
        "alice's connection is gone: {list}"
    );
    let after = alice.call("github_get_issue", issue).to_string();
    assert!(
        after.contains("no GitHub") || after.contains("token for"),
        "alice must connect again: {after}"
    );

    // The connector's own log names who asked, and the runtime's trail the act.
    let out = run(e2e::Connector::cli()
        .args(["audit", "tail", "-n", "1000", "--config"])
        .arg(&env.config));
    let tail = String::from_utf8_lossy(&out.stdout);
    assert!(
        tail.lines().any(|l| l.contains("\"connections.revoke\"")
            && l.contains("\"user\":\"people\"")
            && l.contains(&format!("ghes/{alice_id}"))),
        "the connector's record: {tail}"
    );
    assert!(
        tail.lines().any(|l| l.contains("\"connections.list\"")),
        "{tail}"
    );
    let auditor = admin_token(rt, "acme", "auditor", "audit:read");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, page) = api.call(
            "GET",
            "/t/acme/audit?kind=admin&tool=admin.connection.revoke",
            Some(&auditor),
            None,
        )?;
        let users: Vec<Value> = records(&page)
            .iter()
            .map(|r| r["record"]["user"].clone())
            .collect();
        // Newest first: the command line's (as the Unix user), then the token's.
        if users.len() >= 2 {
            assert!(
                users[0]
                    .as_str()
                    .is_some_and(|u| u.starts_with("local:uid="))
                    && users[1] == "people",
                "{page}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the act in the runtime's trail"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
