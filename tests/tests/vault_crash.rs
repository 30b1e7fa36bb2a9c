//! DESIGN invariant 5 for the vault: `edge-connector vault set` (and `rotate-key`) killed
//! with SIGKILL at random moments, over and over, never leaves a vault that cannot be read,
//! and never loses an entry whose write had finished.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use e2e::{Connector, run};
use serde_json::Value;

fn list(config: &std::path::Path) -> Result<BTreeSet<String>> {
    let out = run(Connector::cli()
        .args(["vault", "list", "--json", "--config"])
        .arg(config));
    anyhow::ensure!(
        out.status.success(),
        "the vault cannot be read: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Value> = serde_json::from_slice(&out.stdout)?;
    Ok(v.iter()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect())
}

#[test]
fn kill_9_during_vault_writes_never_leaves_an_unreadable_vault() -> Result<()> {
    // The vault needs no enrollment: a state directory and a configuration.
    let dir = tempfile::tempdir()?;
    let connector = Connector {
        state_dir: dir.path().join("state"),
        id: String::new(),
        process: None,
        env: Vec::new(),
    };
    std::fs::create_dir_all(&connector.state_dir)?;
    let config = connector.configure("", "version = 1\n", &[("seed", "first secret value")])?;
    let secret = dir.path().join("secret");
    std::fs::write(
        &secret,
        "a secret value that takes a moment to encrypt and sync",
    )?;
    let mut committed: BTreeSet<String> = list(&config)?;
    // How long one whole `vault set` takes here: the kills are spread over that window.
    let t = Instant::now();
    assert!(
        run(Connector::cli()
            .args(["vault", "set", "timing", "--file"])
            .arg(&secret)
            .arg("--config")
            .arg(&config))
        .status
        .success()
    );
    let window = t.elapsed().as_micros() as u64;
    committed.insert("timing".into());
    let (mut killed, mut finished, mut rotations) = (0, 0, 0);
    let started = Instant::now();
    for i in 0..120u64 {
        let name = format!("entry/{i}");
        let mut cmd = Connector::cli();
        if i % 10 == 9 {
            cmd.args(["vault", "rotate-key", "--config"]).arg(&config);
            rotations += 1;
        } else {
            cmd.args(["vault", "set", &name, "--file"])
                .arg(&secret)
                .arg("--config")
                .arg(&config);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning edge-connector")?;
        // Anywhere from process start to just past the end of the write.
        std::thread::sleep(Duration::from_micros((i * 7919) % (window + window / 5)));
        let _ = child.kill();
        let status = child.wait()?;
        if status.success() {
            finished += 1;
            if i % 10 != 9 {
                committed.insert(name);
            }
        } else {
            killed += 1;
        }
        let now = list(&config)?;
        assert!(
            committed.is_subset(&now),
            "an entry whose write finished was lost: {:?}",
            committed.difference(&now).collect::<Vec<_>>()
        );
    }
    println!(
        "120 writers ({rotations} key rotations) killed at random points of a {} ms write: {killed} killed, {finished} finished; the vault opened after every one ({} entries) in {:.1} s",
        window / 1000,
        committed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        killed > 10,
        "the kills should land inside writes ({killed} did)"
    );
    // A last clean write removes what killed writers left behind.
    assert!(
        run(Connector::cli()
            .args(["vault", "set", "final", "--file"])
            .arg(&secret)
            .arg("--config")
            .arg(&config))
        .status
        .success()
    );
    let leftovers: Vec<_> = std::fs::read_dir(&connector.state_dir)?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".vault.age.tmp-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    Ok(())
}
