//! The quickstart's guard rail for a first hour: with one of its fixed ports held by another
//! process (a runtime left running, say), it stops at once and names the port, instead of
//! going on against the wrong process and failing later with a misleading error.

use std::net::{TcpListener, UdpSocket};
use std::process::Command;

use anyhow::Result;
use e2e::{free_port, workspace_root};

#[test]
fn the_quickstart_names_a_busy_port_and_starts_nothing() -> Result<()> {
    let held = TcpListener::bind("127.0.0.1:0")?;
    let https = held.local_addr()?.port();
    let quic = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/quickstart"))
        .env("HTTPS_PORT", https.to_string())
        .env("QUIC_PORT", quic.to_string())
        .env("GHES_PORT", free_port().to_string())
        .env("QUICKSTART_DIR", dir.path())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("tcp port {https} (HTTPS_PORT) is already in use")),
        "{stderr}"
    );
    assert!(
        stderr.contains("HTTPS_PORT=NNNNN"),
        "says how to pick another: {stderr}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path())?.count(),
        0,
        "nothing was started"
    );
    drop(held);
    Ok(())
}
