//! The runtime's command line as a script and an operator see it: commands end quietly when
//! their reader goes away (`| head`, `| grep -q`); `idp set` and `idp show` name the
//! redirect URI to register at the identity provider.

use std::process::Stdio;

use anyhow::Result;
use e2e::{Runtime, run_ok};

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
