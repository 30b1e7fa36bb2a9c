//! The official MCP Python SDK (PyPI `mcp`) runs the whole OAuth flow against the runtime —
//! with the user signing in at a real OpenID Provider on loopback (npm `oidc-provider`) — and
//! calls a tool that crosses the tunnel, once in its modern (2026-07-28) mode and once in its
//! legacy (initialize handshake) mode. See `tests/python/oauth_client.py`.

use std::process::Command;

use anyhow::{Context, Result};
use e2e::oauth_client::field;
use e2e::{Connector, OidcProvider, Runtime, installed_tool, run, run_ok, workspace_root};
use serde_json::Value;

#[test]
fn python_sdk_does_oauth_and_calls_through_the_tunnel_in_both_modes() -> Result<()> {
    let python = installed_tool("venv/bin/python");
    let mut rt = Runtime::init()?;
    rt.start()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let agent = run_ok(rt.cli().args([
        "agent", "create", "--tenant", "acme", "claude", "--role", "triage",
    ]));
    let _provider = OidcProvider::start(&rt, "acme")?;
    let mut connector = Connector::enroll(&rt, "acme", "c1")?;
    connector.start(&rt, &[])?;
    let url = format!("https://localhost:{}/t/acme/g/eng/mcp", rt.https_port);
    let ca = rt.data_dir().join("ca.pem");

    for mode in ["2026-07-28", "legacy"] {
        let out = run(Command::new(&python)
            .arg(workspace_root().join("tests/python/oauth_client.py"))
            .arg(&url)
            .arg(&ca)
            .arg(field(&agent, "X-MCP-Agent-Key):"))
            .arg("alice")
            .arg("any-password")
            .arg(mode));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "python SDK ({mode}) failed:\n{stdout}\n{}\nruntime log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            rt.serve.as_ref().map(|p| p.log_text()).unwrap_or_default()
        );
        let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .context(stdout.to_string())?;
        println!("python SDK, {mode} mode: {seen}");
        assert!(
            seen["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|n| n == "diag.ping"))
        );
        assert_eq!(seen["is_error"], false);
        // The connector knows alice by her stable id (from the provider's account).
        assert!(
            seen["structured"]["caller"]["user"]
                .as_str()
                .is_some_and(|u| u.starts_with("u-")),
            "{seen}"
        );
        assert_eq!(seen["structured"]["caller"]["agent"], "claude");
        assert_eq!(seen["structured"]["connector_id"], connector.id.as_str());
        assert!(
            seen["registered_client"]
                .as_str()
                .is_some_and(|c| c.starts_with("mcpc_")),
            "dynamic registration"
        );
        assert_eq!(seen["has_refresh_token"], true);
        let auth_url = seen["authorization_url"].as_str().unwrap_or_default();
        assert!(
            auth_url.contains("code_challenge_method=S256") && auth_url.contains("resource="),
            "{auth_url}"
        );
    }
    Ok(())
}
