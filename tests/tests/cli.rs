//! The runtime's command line as a script and an operator see it: commands end quietly when
//! their reader goes away (`| head`, `| grep -q`); `idp set` and `idp show` name the
//! redirect URI to register at the identity provider; bad configuration exits 64, other
//! failures 1; a store that cannot be opened is named, never with its password.

use std::process::Stdio;

use anyhow::Result;
use e2e::{Runtime, run, run_ok};

#[test]
fn commands_end_quietly_when_stdout_is_a_closed_pipe() -> Result<()> {
    let rt = Runtime::init()?;
    for args in [
        &["connector", "list", "--json"][..],
        &["connector", "list"],
        &["tenant", "list"],
        &["gateway", "list", "--json"],
        &["policy", "show", "--tenant", "acme"],
    ] {
        // A pipe whose reader is gone before the command writes: every write fails.
        let (reader, writer) = std::io::pipe()?;
        drop(reader);
        let out = rt
            .cli()
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.is_empty(),
            "{args:?} on a closed pipe said: {stderr}"
        );
        assert_eq!(out.status.code(), Some(141), "{args:?}: {}", out.status);
    }
    Ok(())
}

#[test]
fn idp_set_and_show_name_the_redirect_uri_to_register() -> Result<()> {
    let rt = Runtime::init()?;
    let secret = rt.dir.path().join("idp-secret");
    std::fs::write(&secret, "s3cret-not-to-be-shown\n")?;
    let set = run_ok(
        rt.cli()
            .args([
                "idp",
                "set",
                "--tenant",
                "acme",
                "--issuer",
                "https://idp.example",
            ])
            .args(["--client-id", "runtime-client", "--client-secret-file"])
            .arg(&secret),
    );
    assert!(
        set.contains("redirect URI at the provider: https://localhost:8443/oauth/idp/callback"),
        "{set}"
    );
    let show = run_ok(
        rt.cli()
            .args(["idp", "show", "--tenant", "acme", "--https-port", "443"]),
    );
    for want in [
        "issuer:       https://idp.example",
        "client id:    runtime-client",
        "redirect URI: https://localhost/oauth/idp/callback",
    ] {
        assert!(show.contains(want), "{want:?} missing from:\n{show}");
    }
    assert!(
        !show.contains("s3cret"),
        "idp show printed the secret:\n{show}"
    );
    let none = run_ok(rt.cli().args(["idp", "show", "--tenant", "globex"]));
    assert!(none.contains("no identity provider"), "{none}");
    Ok(())
}

#[test]
fn bad_configuration_exits_64_and_other_failures_1() -> Result<()> {
    let rt = Runtime::init()?;
    let empty = rt.dir.path().join("never-initialized");
    let loopback = [
        "--quic-listen",
        "127.0.0.1:0",
        "--https-listen",
        "127.0.0.1:0",
    ];
    let cases: [(Vec<&str>, &str); 5] = [
        (
            [&["serve", "--heartbeat-interval", "10ms"][..], &loopback].concat(),
            "--heartbeat-interval must be between 100ms and 60s",
        ),
        (
            [&["serve", "--connector-cert-ttl", "1s"][..], &loopback].concat(),
            "--connector-cert-ttl must be between",
        ),
        (
            vec![
                "serve",
                "--dev-unauthenticated",
                "--quic-listen",
                "127.0.0.1:0",
                "--https-listen",
                "0.0.0.0:0",
            ],
            "allowed only on a loopback address",
        ),
        (
            [
                &["serve", "--dev-http-listen", "127.0.0.1:0"][..],
                &loopback,
            ]
            .concat(),
            "--dev-http-listen needs --dev-unauthenticated",
        ),
        (
            vec![
                "tenant",
                "list",
                "--data-dir",
                empty.to_str().unwrap_or_default(),
            ],
            "is not an initialized data directory",
        ),
    ];
    for (args, says) in cases {
        let out = run(rt.cli().args(&args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?} said: {stderr}");
    }
    // Not configuration: the tenant exists already.
    let out = run(rt.cli().args(["tenant", "create", "acme"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("tenant acme already exists"), "{stderr}");
    Ok(())
}

#[test]
fn a_database_that_cannot_be_used_is_named_without_its_password() -> Result<()> {
    let rt = Runtime::init()?;
    // Nothing listens on port 1: the store cannot open, and the error says which one.
    let unreachable = "postgres://runtime:hunter2-not-to-be-shown@127.0.0.1:1/runtime";
    for args in [
        &["tenant", "list", "--database-url", unreachable][..],
        &["migrate", "--database-url", unreachable],
    ] {
        let out = run(rt.cli().args(args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("postgres://runtime:***@127.0.0.1:1/runtime"),
            "{args:?} said: {stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{args:?} said: {stderr}");
    }
    // An engine this runtime does not have, or a password where it would be echoed: refused
    // before anything is opened.
    for (url, says) in [
        ("mysql://runtime:hunter2@db/runtime", "names no engine"),
        (
            "postgres://runtime@db/runtime?password=hunter2",
            "not as a query parameter",
        ),
    ] {
        let out = run(rt.cli().args(["tenant", "list", "--database-url", url]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{url}: {stderr}");
        assert!(stderr.contains(says), "{url} said: {stderr}");
        assert!(!stderr.contains("hunter2"), "{url} said: {stderr}");
    }
    // The runtime's own store: migrate says where it stands.
    let newest = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cloud-runtime/migrations/sqlite"
    ))?
    .count();
    let out = run_ok(rt.cli().arg("migrate"));
    assert!(
        out.contains(&format!(
            "schema at migration {newest} ({newest} migrations applied)"
        )),
        "{out}"
    );
    Ok(())
}
