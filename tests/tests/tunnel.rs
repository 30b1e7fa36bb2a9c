//! End to end through the real binaries on loopback: enrollment, the tunnel, diagnostics,
//! status, revocation, renewal, restarts and drain.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use e2e::{Connector, Runtime, run, run_ok, wait_for};
use nix::sys::signal::Signal;

#[test]
fn enroll_run_ping_and_list() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    c.start(&rt, &[])?;

    let pong = rt.ping(&c.id).map_err(anyhow::Error::msg)?;
    assert_eq!(pong["ok"], true);
    assert_eq!(pong["result"]["structured"]["connector_id"], c.id.as_str());
    assert_eq!(pong["result"]["structured"]["tenant"], "acme");

    // The admin socket's call is audited, with the calling Unix user as its user.
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?);
    // (The outcome record is queued after the answer, so wait for it.)
    let records = wait_for(Duration::from_secs(5), "the ping's audit records", || {
        let tail = run_ok(rt.cli().args(["audit", "tail", "--json"]));
        let records: Vec<serde_json::Value> = tail
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|r: &serde_json::Value| r["tool"] == "diag.ping")
            .collect();
        (records.len() >= 2).then_some(records)
    })?;
    let kinds: Vec<&str> = records.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, ["decision", "outcome"], "{records:?}");
    for r in &records {
        assert_eq!(r["user"], format!("local:uid={uid}"), "{r}");
        assert_eq!(r["agent"], "cloud-runtime-admin", "{r}");
    }
    assert_eq!(records[1]["outcome"], "ok");
    assert_eq!(records[1]["connector"], c.id.as_str());

    let row = rt.connector(&c.id).expect("listed");
    for field in [
        "id",
        "tenant",
        "status",
        "version",
        "last_seen",
        "cert_not_after",
    ] {
        assert!(!row[field].is_null(), "connector list lacks {field}: {row}");
    }
    assert_eq!(row["status"], "online");
    assert_eq!(row["tenant"], "acme");
    assert_eq!(row["transport"], "quic");
    assert_eq!(row["version"], env!("CARGO_PKG_VERSION"));
    let not_after = row["cert_not_after"].as_i64().unwrap_or(0);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let hours = (not_after - now_ms) / 3_600_000;
    assert!(
        (23..=24).contains(&hours),
        "default certificate lifetime is 24 h, got {hours} h"
    );

    // The text form lists it too.
    let table = run_ok(rt.cli().args(["connector", "list"]));
    assert!(table.contains(&c.id) && table.contains("online"), "{table}");

    // The key never left the machine: only the connector's state dir holds it, at 0600.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(c.state_dir.join("identity.pem"))?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key_pem = std::fs::read_to_string(c.state_dir.join("identity.pem"))?;
    let key_b64: String = key_pem
        .split("-----BEGIN PRIVATE KEY-----")
        .nth(1)
        .and_then(|s| s.split("-----END").next())
        .unwrap_or_default()
        .lines()
        .collect();
    assert!(key_b64.len() > 40);
    for entry in walk(&rt.data_dir()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&key_b64),
            "connector private key found in {}",
            entry.display()
        );
    }
    Ok(())
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn calls_are_routed_only_within_the_tenant_and_deadlines_hold() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    c.start(&rt, &[])?;

    let call = |tenant: &str, args: &str, timeout: &str| {
        run(rt.cli().args([
            "connector",
            "call",
            "--tenant",
            tenant,
            "--tool",
            "diag.echo",
            "--args",
            args,
            "--timeout",
            timeout,
        ]))
    };
    let ok = call("acme", r#"{"message":"hello"}"#, "5s");
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains(r#""message":"hello""#));

    // Tenant isolation: globex has no connector, and acme's is never borrowed.
    let other = call("globex", r#"{"message":"hello"}"#, "5s");
    assert!(!other.status.success());
    let text = String::from_utf8_lossy(&other.stdout);
    assert!(
        text.contains("no online connector for tenant globex"),
        "{text}"
    );

    // Deadline: the runtime gives up and says so.
    let slow = call("acme", r#"{"message":"slow","delay_ms":5000}"#, "300ms");
    assert!(!slow.status.success());
    assert!(
        String::from_utf8_lossy(&slow.stdout).contains("DeadlineExceeded"),
        "{slow:?}"
    );

    // Bad arguments are a typed error, and the connector carries on.
    let bad = call("acme", r#"{"nope":1}"#, "5s");
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("InvalidArguments"),
        "{bad:?}"
    );
    let unknown = run(rt.cli().args([
        "connector",
        "call",
        "--tenant",
        "acme",
        "--tool",
        "diag.nope",
    ]));
    assert!(
        String::from_utf8_lossy(&unknown.stdout).contains("UnknownTool"),
        "{unknown:?}"
    );

    // The admin socket reaches diagnostic tools only.
    let real = run(rt.cli().args([
        "connector",
        "call",
        "--tenant",
        "acme",
        "--tool",
        "github_merge_pull_request",
    ]));
    assert!(!real.status.success());
    assert!(String::from_utf8_lossy(&real.stdout).contains("only diagnostic tools"));
    assert!(rt.ping(&c.id).is_ok());
    Ok(())
}

#[test]
fn revocation_drops_the_live_tunnel_and_stops_the_connector() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    c.start(&rt, &[])?;
    let mut other = Connector::enroll(&rt, "acme", "c2")?;
    other.start(&rt, &[])?;

    let t0 = Instant::now();
    run_ok(rt.cli().args(["connector", "revoke", &c.id]));
    let proc = c.process.as_mut().expect("running");
    let status = proc.wait_exit(Duration::from_secs(10))?;
    let took = t0.elapsed();
    println!("revoked connector disconnected and exited {took:?} after `connector revoke`");
    assert!(!status.success(), "a revoked connector exits with an error");
    assert!(c.log().contains("revoked"), "{}", c.log());
    assert_eq!(rt.connector(&c.id).expect("listed")["status"], "revoked");
    assert!(rt.ping(&c.id).is_err());

    // A second start is refused at the handshake, and says why.
    let again = run(Connector::cli()
        .arg("run")
        .arg("--state-dir")
        .arg(&c.state_dir));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("revoked"));

    // The other connector of the tenant is untouched.
    assert!(rt.ping(&other.id).is_ok());
    Ok(())
}

#[test]
fn renews_a_one_minute_certificate_without_a_human() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.serve_args = vec!["--connector-cert-ttl".into(), "60s".into()];
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    c.start(&rt, &[])?;
    let first = rt.connector(&c.id).expect("listed");
    let serial = first["cert_serial"].clone();

    // Renewal is due at two thirds of the lifetime (~40 s).
    let renewed = wait_for(Duration::from_secs(75), "renewal", || {
        rt.connector(&c.id).filter(|r| r["cert_serial"] != serial)
    })?;
    assert!(renewed["cert_not_after"].as_i64() > first["cert_not_after"].as_i64());
    // The connector moved to a tunnel with the new certificate and still answers; the old
    // certificate's tunnel would be closed at its expiry, so calls after it prove the move.
    wait_for(Duration::from_secs(10), "new tunnel", || {
        c.log()
            .contains("replaced by a renewed tunnel")
            .then_some(())
    })?;
    std::thread::sleep(Duration::from_secs(25));
    assert!(rt.ping(&c.id).is_ok(), "{}", c.log());
    assert_eq!(rt.connector(&c.id).expect("listed")["status"], "online");
    Ok(())
}

/// Two tunnels of one connector (two `[[tunnel.replica]]` addresses that reach the same
/// runtime): both stay up side by side, one renewal moves both to the new certificate, and
/// the connector says the addresses are not two replicas.
#[test]
fn two_tunnels_of_one_connector_share_one_renewal() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.serve_args = vec!["--connector-cert-ttl".into(), "60s".into()];
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    let config = c.configure(
        &format!(
            "[[tunnel.replica]]\nquic = \"localhost:{port}\"\n[[tunnel.replica]]\nquic = \"127.0.0.1:{port}\"\n",
            port = rt.quic_port
        ),
        "version = 1\n[[allow]]\ntools = [\"diag.*\"]\n",
        &[],
    )?;
    c.start_configured(&rt, &config)?;
    let up = |c: &Connector| c.log().matches("tunnel up").count();
    wait_for(Duration::from_secs(10), "both tunnels", || {
        (up(&c) == 2).then_some(())
    })?;
    assert!(c.log().contains("both reached replica"), "{}", c.log());
    let serial = rt.connector(&c.id).expect("listed")["cert_serial"].clone();

    wait_for(Duration::from_secs(75), "renewal", || {
        rt.connector(&c.id).filter(|r| r["cert_serial"] != serial)
    })?;
    wait_for(
        Duration::from_secs(10),
        "both tunnels on the new certificate",
        || {
            (c.log().matches("replaced by a renewed tunnel").count() == 2 && up(&c) == 4)
                .then_some(())
        },
    )
    .with_context(|| c.log())?;
    assert_eq!(
        c.log().matches("certificate renewed").count(),
        1,
        "{}",
        c.log()
    );
    // Past the first certificate's expiry: both tunnels are the renewed ones and serve.
    std::thread::sleep(Duration::from_secs(25));
    for _ in 0..4 {
        assert!(rt.ping(&c.id).is_ok(), "{}", c.log());
    }
    assert!(!c.log().contains("renewal refused"), "{}", c.log());
    assert_eq!(up(&c), 4, "no tunnel was lost: {}", c.log());
    Ok(())
}

#[test]
fn connector_reconnects_after_runtime_restarts() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    c.start(&rt, &[])?;

    // Graceful: SIGTERM sends go-away; the connector comes back within its jittered window.
    rt.stop()?;
    rt.start()?;
    rt.wait_online(&c.id, Duration::from_secs(30))?;
    assert!(rt.ping(&c.id).is_ok());

    // Abrupt: kill -9; the restarted runtime's stateless reset (same key) ends the old
    // connection at once, and the connector reconnects with backoff.
    if let Some(mut p) = rt.serve.take() {
        p.kill();
    }
    rt.start()?;
    rt.wait_online(&c.id, Duration::from_secs(45))?;
    assert!(rt.ping(&c.id).is_ok());
    assert!(
        c.process.as_mut().expect("running").try_wait().is_none(),
        "connector kept running"
    );
    Ok(())
}

#[test]
fn sigterm_drains_in_flight_calls() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    c.start(&rt, &[])?;

    let mut slow = rt.cli();
    slow.args([
        "connector",
        "call",
        "--tenant",
        "acme",
        "--tool",
        "diag.echo",
        "--args",
        r#"{"message":"finish me","delay_ms":2000}"#,
    ]);
    let call = std::thread::spawn(move || run(&mut slow));
    wait_for(Duration::from_secs(5), "call in flight", || {
        rt.connector(&c.id).and_then(|_| {
            let online = run(rt.cli().args([
                "connector",
                "call",
                "--tenant",
                "acme",
                "--tool",
                "diag.ping",
            ]));
            online.status.success().then_some(())
        })
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let proc = c.process.as_mut().expect("running");
    proc.signal(Signal::SIGTERM);
    let out = call.join().expect("call thread");
    assert!(out.status.success(), "in-flight call was cut: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("finish me"));
    let status = proc.wait_exit(Duration::from_secs(10))?;
    assert!(status.success(), "clean exit after drain: {}", c.log());
    assert!(c.log().contains("draining"));
    Ok(())
}

#[test]
fn a_reconnect_wave_beyond_the_handshake_rate_is_spread_out_and_all_come_back() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.serve_args = vec!["--tunnel-handshake-rate".into(), "1".into()];
    rt.start()?;
    let mut connectors = (0..5)
        .map(|i| Connector::enroll(&rt, "acme", &format!("c{i}")))
        .collect::<Result<Vec<_>>>()?;
    // All at once, as after a runtime restart.
    for c in &mut connectors {
        let mut cmd = Connector::cli();
        cmd.arg("run").arg("--state-dir").arg(&c.state_dir);
        c.process = Some(e2e::Process::spawn(cmd, c.state_dir.with_extension("log"))?);
    }
    let t0 = Instant::now();
    let mut online_after: Vec<Option<Duration>> = vec![None; connectors.len()];
    while online_after.iter().any(Option::is_none) {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(60),
            "not all online: {online_after:?}\n{}",
            connectors
                .iter()
                .map(Connector::log)
                .collect::<Vec<_>>()
                .join("\n")
        );
        let rows = rt.connectors();
        for (i, c) in connectors.iter().enumerate() {
            let online = rows
                .iter()
                .any(|r| r["id"] == c.id.as_str() && r["status"] == "online");
            if online && online_after[i].is_none() {
                online_after[i] = Some(t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut online_after: Vec<Duration> = online_after.into_iter().flatten().collect();
    online_after.sort();
    println!("5 connectors at 1 handshake/s came online after {online_after:?}");
    let told = connectors
        .iter()
        .filter(|c| c.log().contains("runtime busy"))
        .count();
    assert!(
        told >= 1,
        "at most one handshake per second: the rest were told to wait"
    );
    // Told to wait is not refused: nobody gave up, and every one answers.
    for c in &mut connectors {
        assert!(
            c.process.as_mut().and_then(|p| p.try_wait()).is_none(),
            "{}",
            c.log()
        );
        assert!(rt.ping(&c.id).is_ok(), "{}", c.log());
    }
    Ok(())
}

#[test]
fn two_connectors_of_a_tenant_one_killed_under_load_calls_go_on_through_the_other() -> Result<()> {
    for transport in ["quic", "tcp"] {
        let mut rt = Runtime::init()?;
        rt.serve_args = vec![
            "--ssh-listen".into(),
            format!("127.0.0.1:{}", e2e::free_port()),
        ];
        rt.start()?;
        let mut a = Connector::enroll(&rt, "acme", "a")?;
        a.start(&rt, &["--transport", transport])?;
        let mut b = Connector::enroll(&rt, "acme", "b")?;
        b.start(&rt, &["--transport", transport])?;

        let call = |rt: &Runtime| rt.echo("ha", 100);
        // Both serve: calls are spread over the two.
        for _ in 0..6 {
            assert!(call(&rt).status.success());
        }
        let (mut ok, mut retryable, mut other) = (0, 0, Vec::new());
        let t0 = Instant::now();
        let mut killed = false;
        while t0.elapsed() < Duration::from_secs(25) {
            if !killed && t0.elapsed() > Duration::from_secs(1) {
                a.process.as_mut().expect("running").kill();
                killed = true;
            }
            let out = call(&rt);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() {
                ok += 1;
            } else if ["Unavailable", "DeadlineExceeded", "Draining"]
                .iter()
                .any(|code| text.contains(&format!("error: {code}")))
            {
                // Retryable codes: a call the killed connector had acknowledged ends when
                // its tunnel is declared lost (or at its deadline) and never runs twice.
                // One it had not acknowledged moves to the other connector.
                retryable += 1;
            } else {
                other.push(text);
            }
            if killed && rt.connector(&a.id).is_some_and(|r| r["status"] != "online") && ok > 10 {
                break;
            }
        }
        println!(
            "{transport}: one of two connectors killed -9 under load: {ok} calls ok, {retryable} retryable failures, {} other",
            other.len()
        );
        assert!(other.is_empty(), "only retryable failures: {other:?}");
        // After the runtime noticed, every call goes through the survivor.
        wait_for(Duration::from_secs(30), "the killed tunnel noticed", || {
            rt.connector(&a.id).filter(|r| r["status"] != "online")
        })?;
        for _ in 0..5 {
            let out = call(&rt);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(rt.ping(&b.id).is_ok());
    }
    Ok(())
}

#[test]
fn unacknowledged_reads_move_to_another_connector_and_acknowledged_calls_are_never_resent()
-> Result<()> {
    let moved = |rt: &Runtime| {
        let log = rt.serve.as_ref().expect("serving").log_text();
        log.matches("call not acknowledged").count()
    };
    for transport in ["quic", "tcp"] {
        let mut rt = Runtime::init()?;
        rt.serve_args = vec![
            "--ssh-listen".into(),
            format!("127.0.0.1:{}", e2e::free_port()),
        ];
        rt.start()?;
        let mut a = Connector::enroll(&rt, "acme", "a")?;
        a.start(&rt, &["--transport", transport])?;
        let mut b = Connector::enroll(&rt, "acme", "b")?;
        b.start(&rt, &["--transport", transport])?;

        // A frozen connector keeps its tunnel (the kernel still acknowledges packets) but
        // acknowledges no call: every read offered to it runs on the other one instead.
        a.process.as_ref().expect("running").signal(Signal::SIGSTOP);
        let mut calls = 0;
        while moved(&rt) < 2 && calls < 20 {
            let out = rt.echo(&format!("frozen-{calls}"), 0);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{transport}: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains(&b.id), "{transport}: ran on b: {stdout}");
            calls += 1;
        }
        let moved_while_frozen = moved(&rt);
        println!(
            "{transport}: connector a frozen: {calls} reads ok on b, {moved_while_frozen} of them offered to a first"
        );
        assert_eq!(
            moved_while_frozen, 2,
            "{transport}: some reads went to a first"
        );
        a.process.as_ref().expect("running").signal(Signal::SIGCONT);
        wait_for(Duration::from_secs(30), "a answering again", || {
            rt.ping(&a.id).ok()
        })?;

        // Calls a acknowledged and is running when it dies are retryable failures, and are
        // not offered to b (which would run them a second time).
        let outs: Vec<std::process::Output> = std::thread::scope(|s| {
            let calls: Vec<_> = (0..4)
                .map(|i| {
                    let rt = &rt;
                    s.spawn(move || rt.echo(&format!("in-flight-{i}"), 4000))
                })
                .collect();
            // Acknowledged long before a second passes.
            std::thread::sleep(Duration::from_secs(1));
            a.process.as_mut().expect("running").kill();
            calls.into_iter().filter_map(|c| c.join().ok()).collect()
        });
        let mut failed = Vec::new();
        for out in &outs {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                assert!(
                    stdout.contains(&b.id),
                    "{transport}: only b answered: {stdout}"
                );
            } else {
                assert!(
                    ["Unavailable", "DeadlineExceeded"]
                        .iter()
                        .any(|code| stderr.contains(&format!("error: {code}"))),
                    "{transport}: a retryable failure: {stderr}"
                );
                failed.push(stderr.trim().to_owned());
            }
        }
        println!(
            "{transport}: 4 calls in flight, a killed -9: {} ok on b, failed on a: {failed:?}",
            outs.len() - failed.len()
        );
        assert_eq!(outs.len(), 4);
        assert!(!failed.is_empty(), "{transport}: calls were running on a");
        assert_eq!(
            moved(&rt),
            moved_while_frozen,
            "{transport}: acknowledged calls are never offered elsewhere"
        );
        assert!(rt.ping(&b.id).is_ok());
    }
    Ok(())
}

#[test]
fn the_connector_s_local_rate_refuses_calls_beyond_it_whatever_the_runtime_sends() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    let config = c.configure(
        "",
        "version = 1\nmax_calls_per_minute = 3\n[[allow]]\ntools = [\"diag.*\"]\n",
        &[],
    )?;
    c.start_configured(&rt, &config)?;
    let outcomes: Vec<String> = (0..4)
        .map(|i| {
            let out = rt.echo(&format!("call-{i}"), 0);
            if out.status.success() {
                "ok".to_owned()
            } else {
                String::from_utf8_lossy(&out.stderr).trim().to_owned()
            }
        })
        .collect();
    println!("4 calls of diag.echo at 3 per minute: {outcomes:?}");
    assert_eq!(outcomes[..3], ["ok", "ok", "ok"]);
    assert!(
        outcomes[3].contains("RateLimited")
            && outcomes[3].contains("3 calls of diag.echo per minute"),
        "{}",
        outcomes[3]
    );
    // Another tool has its own budget.
    assert!(rt.ping(&c.id).is_ok());
    Ok(())
}
