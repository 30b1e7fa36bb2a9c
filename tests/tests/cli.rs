//! The runtime's command line as a script sees it: commands end quietly when their reader
//! goes away (`| head`, `| grep -q`).

use std::process::Stdio;

use anyhow::Result;
use e2e::Runtime;

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
