//! The SSH-over-TCP transport: the same tunnel where UDP is blocked, the runtime's host key
//! pinned at enrollment, and `auto` moving between QUIC and TCP without losing a call.

use std::net::UdpSocket;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;
use e2e::{Connector, Runtime, free_port, run, run_ok, wait_for};

/// A runtime serving the SSH tunnel beside QUIC.
fn runtime_with_ssh() -> Result<Runtime> {
    let mut rt = Runtime::init()?;
    rt.serve_args = vec!["--ssh-listen".into(), format!("127.0.0.1:{}", free_port())];
    rt.start()?;
    Ok(rt)
}

/// Rewrites the `key = "..."` line of the connector's `connector.toml`.
fn set_enrollment_field(state_dir: &Path, key: &str, value: &str) -> Result<()> {
    let file = state_dir.join("connector.toml");
    let text = std::fs::read_to_string(&file)?;
    let prefix = format!("{key} = ");
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{key} = {value:?}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&file, out.join("\n") + "\n")?;
    Ok(())
}

fn enrollment_field(state_dir: &Path, key: &str) -> Result<String> {
    let text = std::fs::read_to_string(state_dir.join("connector.toml"))?;
    let v: toml::Value = toml::from_str(&text)?;
    Ok(v[key].as_str().unwrap_or_default().to_owned())
}

#[test]
fn the_tunnel_runs_over_ssh_on_tcp_with_calls_restart_and_revocation() -> Result<()> {
    let mut rt = runtime_with_ssh()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    // Enrollment told the connector where the SSH tunnel is and which host key it has.
    assert!(enrollment_field(&c.state_dir, "tcp_endpoint")?.starts_with("localhost:"));
    assert!(enrollment_field(&c.state_dir, "ssh_host_key")?.starts_with("ssh-ed25519 "));

    c.start(&rt, &["--transport", "tcp"])?;
    assert_eq!(rt.connector(&c.id).expect("listed")["transport"], "tcp");
    assert!(rt.ping(&c.id).is_ok(), "{}", c.log());
    let out = rt.echo("over ssh", 0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("over ssh"));

    // Go-away on a runtime restart works over SSH too.
    rt.stop()?;
    rt.start()?;
    rt.wait_online(&c.id, Duration::from_secs(30))?;
    assert_eq!(rt.connector(&c.id).expect("listed")["transport"], "tcp");
    assert!(rt.ping(&c.id).is_ok(), "{}", c.log());

    // Revocation drops the live SSH tunnel, and the connector stops for good.
    run_ok(rt.cli().args(["connector", "revoke", &c.id]));
    let status = c
        .process
        .as_mut()
        .expect("running")
        .wait_exit(Duration::from_secs(15))?;
    assert!(!status.success());
    assert!(c.log().contains("revoked"), "{}", c.log());
    // A second start is refused at the handshake, and says why.
    let again = run(Connector::cli()
        .args(["run", "--transport", "tcp", "--state-dir"])
        .arg(&c.state_dir));
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    Ok(())
}

#[test]
fn a_runtime_with_another_host_key_is_refused_naming_both_fingerprints() -> Result<()> {
    let rt = runtime_with_ssh()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    let pinned = enrollment_field(&c.state_dir, "ssh_host_key")?;
    // A key that is not the runtime's: what a machine in the middle would present, seen
    // from the connector's side.
    set_enrollment_field(
        &c.state_dir,
        "ssh_host_key",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEZ3tCTXylgmlsehGXuER1yS78JFrmuoYkF72MHCnfBE",
    )?;
    let mut cmd = Connector::cli();
    cmd.args(["run", "--transport", "tcp", "--state-dir"])
        .arg(&c.state_dir);
    let log = c.state_dir.with_extension("log");
    c.process = Some(e2e::Process::spawn(cmd, log)?);
    wait_for(Duration::from_secs(20), "host key refusal", || {
        c.log().contains("enrollment pinned").then_some(())
    })?;
    let log = c.log();
    assert!(log.matches("SHA256:").count() >= 2, "{log}");
    assert!(!pinned.is_empty());
    assert_ne!(
        rt.connector(&c.id).expect("listed")["status"],
        "online",
        "no tunnel with an unpinned host key"
    );
    Ok(())
}

#[test]
fn auto_takes_tcp_when_udp_gets_no_answer_and_moves_back_to_quic_without_losing_a_call()
-> Result<()> {
    let rt = runtime_with_ssh()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    let quic = enrollment_field(&c.state_dir, "quic_endpoint")?;
    // A UDP port that swallows every datagram: a firewall dropping QUIC.
    let black_hole = UdpSocket::bind("127.0.0.1:0")?;
    set_enrollment_field(
        &c.state_dir,
        "quic_endpoint",
        &format!("127.0.0.1:{}", black_hole.local_addr()?.port()),
    )?;
    c.start(&rt, &[])?;
    assert_eq!(rt.connector(&c.id).expect("listed")["transport"], "tcp");
    assert!(c.log().contains("seems blocked"), "{}", c.log());
    assert!(c.log().contains("ask the firewall team"), "{}", c.log());

    // Calls run all along while the tunnel moves back to QUIC once UDP answers.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let caller = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let cli = rt
            .cli()
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
            .collect::<Vec<_>>();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut cmd = std::process::Command::new(e2e::bin("cloud-runtime"));
                for (k, v) in &cli {
                    if let Some(v) = v {
                        cmd.env(k, v);
                    }
                }
                let out = run(cmd.args([
                    "connector",
                    "call",
                    "--tenant",
                    "acme",
                    "--tool",
                    "diag.echo",
                    "--args",
                    r#"{"message":"moving","delay_ms":300}"#,
                ]));
                if out.status.success() {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("call failed: {}", String::from_utf8_lossy(&out.stderr));
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    wait_for(Duration::from_secs(20), "calls over tcp", || {
        (ok.load(Ordering::Relaxed) >= 2).then_some(())
    })?;
    set_enrollment_field(&c.state_dir, "quic_endpoint", &quic)?;
    wait_for(Duration::from_secs(30), "tunnel back on quic", || {
        rt.connector(&c.id).filter(|r| r["transport"] == "quic")
    })?;
    let before = ok.load(Ordering::Relaxed);
    wait_for(Duration::from_secs(20), "calls over quic", || {
        (ok.load(Ordering::Relaxed) >= before + 2).then_some(())
    })?;
    stop.store(true, Ordering::Relaxed);
    caller.join().expect("caller thread");
    println!(
        "calls while moving tcp -> quic: {} ok, {} failed",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "{}", c.log());
    assert!(c.log().contains("QUIC works again"), "{}", c.log());
    Ok(())
}
