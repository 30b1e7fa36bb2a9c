//! OAuth Client ID Metadata Documents (the MCP authorization specification's preferred
//! registration) end to end: a client whose `client_id` is an HTTPS URL, served here by a
//! small HTTPS server on loopback (Python's standard library, with a certificate from the
//! runtime's CA), signs a user in and calls a tool; a document that does not name itself, or
//! names redirect URIs other than the one asked for, is refused, and nothing is redirected.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::oauth_client::{OAuthClient, REDIRECT, field, pkce};
use e2e::{Connector, Process, Runtime, free_port, run_ok, wait_for};
use serde_json::{Value, json};

/// Serves `docs` (file name → JSON) over HTTPS on `port` with the runtime's server
/// certificate (issued for localhost by the runtime's CA).
fn serve_documents(rt: &Runtime, port: u16, docs: &[(&str, Value)]) -> Result<Process> {
    let root = rt.dir.path().join("cimd");
    std::fs::create_dir_all(&root)?;
    for (name, doc) in docs {
        std::fs::write(root.join(name), doc.to_string())?;
    }
    let data = rt.data_dir();
    let script = format!(
        "import http.server, ssl, functools\n\
         ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         ctx.load_cert_chain({cert:?}, {key:?})\n\
         h = functools.partial(http.server.SimpleHTTPRequestHandler, directory={root:?})\n\
         s = http.server.HTTPServer(('127.0.0.1', {port}), h)\n\
         s.socket = ctx.wrap_socket(s.socket, server_side=True)\n\
         print('listening', flush=True)\n\
         s.serve_forever()\n",
        cert = data.join("server.pem").display().to_string(),
        key = data.join("server.key").display().to_string(),
        root = root.display().to_string(),
    );
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script);
    let p = Process::spawn(cmd, rt.dir.path().join("cimd.log"))?;
    wait_for(Duration::from_secs(10), "metadata server", || {
        p.log_text().contains("listening").then_some(())
    })?;
    Ok(p)
}

#[test]
fn a_client_known_by_its_metadata_document_signs_in_and_calls() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.serve_args = vec![
        "--client-metadata-ca".into(),
        rt.data_dir().join("ca.pem").display().to_string(),
        "--dev-client-metadata-loopback".into(),
    ];
    rt.start()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let alice = run_ok(rt.cli().args([
        "user", "add", "--tenant", "acme", "alice", "--groups", "eng",
    ]));
    let docs_port = free_port();
    let good = format!("https://localhost:{docs_port}/client.json");
    let lying = format!("https://localhost:{docs_port}/lying.json");
    let _docs = serve_documents(
        &rt,
        docs_port,
        &[
            (
                "client.json",
                json!({"client_id": good, "client_name": "Metadata Client", "redirect_uris": [REDIRECT],
                                   "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}),
            ),
            (
                "lying.json",
                json!({"client_id": "https://elsewhere.example/client.json", "redirect_uris": [REDIRECT]}),
            ),
        ],
    )?;
    let agent = run_ok(rt.cli().args([
        "agent", "create", "--tenant", "acme", "bot", "--role", "triage",
    ]));
    let mut connector = Connector::enroll(&rt, "acme", "c1")?;
    connector.start(&rt, &[])?;
    let base = format!("https://localhost:{}", rt.https_port);
    let url = format!("{base}/t/acme/g/eng/mcp");
    let oauth = OAuthClient::new(base.clone(), &std::fs::read(rt.data_dir().join("ca.pem"))?)?;

    let meta: Value = oauth
        .http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()?
        .json()?;
    assert_eq!(meta["client_id_metadata_document_supported"], true);

    // No registration: the client id is the document's URL.
    let (verifier, challenge) = pkce();
    let q = oauth.sign_in(
        &good,
        &challenge,
        &url,
        "alice",
        &field(&alice, "(shown once):"),
    )?;
    let code = q.get("code").context("code")?;
    let (status, tokens) = oauth.token(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", &good),
        ("code_verifier", &verifier),
    ])?;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().context("token")?;
    let body = oauth
        .http
        .post(&url)
        .bearer_auth(token)
        .header("X-MCP-Agent-Key", field(&agent, "X-MCP-Agent-Key):"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "diag.ping")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "diag.ping", "arguments": {},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "cimd", "version": "1"}}}}))
        .send()?
        .text()?;
    let reply = e2e::mcp_client::message(&body, 1).context(body.clone())?;
    assert_eq!(
        reply["result"]["structuredContent"]["caller"]["user"],
        e2e::user_id(&alice).as_str(),
        "{reply}"
    );

    // Refused, and shown to the user rather than redirected: a document naming another
    // client id, a redirect URI the document does not list, a private address.
    let refused = |client: &str, redirect: &str| -> Result<(u16, String)> {
        let mut u = oauth.authorize_url(client, &challenge, &url, &[]);
        if redirect != REDIRECT {
            u = oauth.authorize_url(client, &challenge, &url, &[("redirect_uri", redirect)]);
        }
        let resp = oauth.http.get(u).send()?;
        Ok((resp.status().as_u16(), resp.text()?))
    };
    let (status, page) = refused(&lying, REDIRECT)?;
    assert_eq!(status, 400);
    assert!(
        page.contains("is not the URL it was fetched from"),
        "{page}"
    );
    let (status, page) = refused(&good, "http://127.0.0.1:9/other")?;
    assert_eq!(status, 400);
    assert!(page.contains("not registered"), "{page}");
    let (status, page) = refused("https://10.9.8.7/client.json", REDIRECT)?;
    assert_eq!(status, 400);
    assert!(page.contains("non-public address"), "{page}");
    Ok(())
}
