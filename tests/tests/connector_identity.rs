//! A connector identity is one certificate at a time: a copy of the connector's key and
//! certificate, taken before a renewal, is refused at the handshake once the real connector
//! has renewed and used the new certificate; the refusal is audited and `connector list`
//! warns of a possible key copy. (Security review, issue 13, finding 1.)

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use e2e::{Connector, Process, Runtime, run_ok, wait_for};

/// Copies a connector's state directory (its key and certificate included), keeping modes.
fn copy_state_dir(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

#[test]
fn a_copied_key_is_refused_once_the_connector_has_renewed() -> Result<()> {
    let mut rt = Runtime::init()?;
    // The shortest lifetime the runtime allows that leaves the copied certificate valid for
    // a while after the renewal (renewal at two thirds, ~40 s; expiry at 60 s).
    rt.serve_args = vec!["--connector-cert-ttl".into(), "60s".into()];
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    c.start(&rt, &[])?;
    let copy = c.state_dir.with_file_name("c1-copy");
    copy_state_dir(&c.state_dir, &copy)?;
    let old_serial = rt.connector(&c.id).expect("listed")["cert_serial"].clone();

    // The real connector renews and moves to a tunnel with the new certificate.
    let renewed = wait_for(
        Duration::from_secs(75),
        "renewed certificate in use",
        || {
            rt.connector(&c.id)
                .filter(|r| r["cert_serial"] != old_serial && !r["cert_confirmed_at"].is_null())
        },
    )?;
    assert!(renewed["warnings"].as_array().is_some_and(Vec::is_empty));

    // The copy, with the old (still unexpired) certificate, is refused at the handshake and
    // stops, saying why.
    let mut cmd = Command::new(e2e::bin("edge-connector"));
    cmd.arg("run").arg("--state-dir").arg(&copy);
    let mut copied = Process::spawn(cmd, copy.with_extension("log"))?;
    let status = copied.wait_exit(Duration::from_secs(15))?;
    assert!(!status.success(), "{}", copied.log_text());
    assert!(
        copied.log_text().contains("replaced by a renewal"),
        "{}",
        copied.log_text()
    );

    // The real connector still serves calls.
    let pong = rt.ping(&c.id).map_err(anyhow::Error::msg)?;
    assert_eq!(pong["ok"], true, "{pong}");
    assert_eq!(rt.connector(&c.id).expect("listed")["status"], "online");

    // `connector list` warns, in JSON and in the table.
    let row = rt.connector(&c.id).expect("listed");
    // (At least once: the copy may retry before it reads the close code, as after a revoke.)
    assert!(row["superseded_count"].as_i64() >= Some(1), "{row}");
    assert_eq!(row["superseded_last_serial"], old_serial, "{row}");
    let warnings = row["warnings"].as_array().cloned().unwrap_or_default();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("possible key copy"))),
        "{row}"
    );
    let table = run_ok(rt.cli().args(["connector", "list"]));
    assert!(table.contains("WARNING: possible key copy"), "{table}");

    // And the audit trail names the connector and the refused certificate.
    let record = wait_for(Duration::from_secs(5), "the refusal's audit record", || {
        run_ok(rt.cli().args(["audit", "tail", "--json"]))
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r["kind"] == "certificate" && r["tool"] == "tunnel.handshake")
    })?;
    assert_eq!(record["connector"], c.id.as_str(), "{record}");
    assert_eq!(record["tenant"], "acme", "{record}");
    assert_eq!(record["decision"], "deny", "{record}");
    let serial = old_serial.as_str().unwrap_or_default();
    assert_eq!(
        record["target"],
        format!("certificate {serial}").as_str(),
        "{record}"
    );
    assert!(
        record["reason"]
            .as_str()
            .is_some_and(|r| r.contains("possible key copy")),
        "{record}"
    );
    Ok(())
}
