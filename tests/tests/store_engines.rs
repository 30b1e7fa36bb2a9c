//! The runtime's store moved from its embedded SQLite file to a real PostgreSQL server
//! (Debian's, started by the test): `migrate-store` copies everything, the commands read the
//! same answers from both, the audit trail and the connectors' receipts verify against both,
//! a second copy is refused, and `serve` then runs on PostgreSQL with the same connector.

use anyhow::Result;
use e2e::postgres::Postgres;
use e2e::{Connector, Runtime, run, run_ok};

/// What the read-only commands print, for comparing two stores.
fn answers(rt: &Runtime) -> Vec<String> {
    [
        &["tenant", "list"][..],
        &["connector", "list", "--json"],
        &["gateway", "list", "--json"],
        &["policy", "show", "--tenant", "acme"],
        &["audit", "verify", "--receipts"],
    ]
    .iter()
    .map(|args| run_ok(rt.cli().args(*args)))
    .collect()
}

#[test]
fn a_single_process_install_moves_to_postgresql_with_nothing_lost() -> Result<()> {
    let pg = Postgres::start()?;
    let mut rt = Runtime::init_on_sqlite()?;
    run_ok(rt.cli().args([
        "gateway", "create", "--tenant", "acme", "eng", "--tools", "diag.*",
    ]));
    run_ok(
        rt.cli()
            .args(["user", "add", "--tenant", "acme", "ada", "--groups", "eng"]),
    );
    run_ok(
        rt.cli()
            .args(["agent", "create", "--tenant", "acme", "ci", "--role", "dev"]),
    );
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    c.start(&rt, &[])?;
    // Calls leave records in the runtime's chain and receipts signed by the connector,
    // whose key the store keeps.
    for _ in 0..3 {
        rt.ping(&c.id).map_err(anyhow::Error::msg)?;
    }
    drop(c.process.take());
    rt.stop()?;
    let before = answers(&rt);

    let url = pg.create_database("runtime")?;
    let from = format!("sqlite:{}", rt.data_dir().display());
    let out = run_ok(
        rt.cli()
            .args(["migrate-store", "--from", &from, "--to", &url]),
    );
    assert!(out.contains("copied "), "{out}");
    assert!(out.contains(" connectors"), "{out}");
    rt.set_database_url(&url);
    assert_eq!(answers(&rt), before);

    // Copying again would merge two installs: refused, and nothing changes.
    let again = run(rt
        .cli()
        .args(["migrate-store", "--from", &from, "--to", &url]));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already holds"), "{stderr}");
    assert_eq!(answers(&rt), before);

    // The runtime on PostgreSQL knows the connector, which comes back and is served; the
    // trail, with the new call's receipt, still verifies.
    rt.start()?;
    c.start(&rt, &[])?;
    let pong = rt.ping(&c.id).map_err(anyhow::Error::msg)?;
    assert_eq!(pong["ok"], true, "{pong}");
    let row = rt.connector(&c.id).expect("listed on PostgreSQL");
    assert_eq!(row["status"], "online", "{row}");
    rt.stop()?;
    run_ok(rt.cli().args(["audit", "verify", "--receipts"]));
    Ok(())
}
