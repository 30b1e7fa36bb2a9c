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

/// The uid running this test.
fn my_uid() -> Result<u32> {
    Ok(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(
        "/proc/self",
    )?))
}

/// Owner, mode and content: what a planted link must not let a root command change.
fn fingerprint(p: &std::path::Path) -> Result<(u32, u32, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p)?;
    Ok((m.uid(), m.mode(), std::fs::read(p)?))
}

/// Issue 13: the service user owns the state directory, and an operator runs vault commands
/// as root there. A link the (compromised) service user planted at `vault.lock` or
/// `vault.age` must not make root hand over, overwrite or read a root-only file; and a state
/// directory owned by anyone else, or writable by others, is refused with its fix.
#[test]
fn vault_commands_run_as_root_refuse_links_planted_by_the_service_user() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if my_uid()? != 0 {
        eprintln!("skipped: needs root (as in CI)");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let connector = Connector {
        state_dir: dir.path().join("state"),
        id: String::new(),
        process: None,
        env: Vec::new(),
    };
    std::fs::create_dir_all(&connector.state_dir)?;
    let config = connector.configure("", "version = 1\n", &[("seed", "first secret value")])?;
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(&config, format!("service_user = \"65534\"\n{text}"))?;
    let chown_all = |uid: u32| -> Result<()> {
        std::os::unix::fs::chown(&connector.state_dir, Some(uid), Some(uid))?;
        for e in std::fs::read_dir(&connector.state_dir)? {
            std::os::unix::fs::lchown(e?.path(), Some(uid), Some(uid))?;
        }
        Ok(())
    };
    chown_all(65534)?;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "another secret value")?;
    let root_file = dir.path().join("root-only");
    std::fs::write(&root_file, "root's own secret")?;
    std::fs::set_permissions(&root_file, std::fs::Permissions::from_mode(0o600))?;
    let before = fingerprint(&root_file)?;
    let vault = |args: &[&str]| {
        let mut cmd = Connector::cli();
        cmd.arg("vault")
            .args(args)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null());
        run(&mut cmd)
    };
    let secret_arg = secret.to_str().context("path")?;
    for planted in ["vault.lock", "vault.age"] {
        let link = connector.state_dir.join(planted);
        let aside = connector.state_dir.join("aside");
        std::fs::rename(&link, &aside)?;
        std::os::unix::fs::symlink(&root_file, &link)?;
        for args in [
            &["set", "new", "--file", secret_arg][..],
            &["rm", "seed"],
            &["rotate-key"],
        ] {
            let out = vault(args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{planted} {args:?} succeeded");
            assert!(
                stderr.contains(&link.display().to_string()) && stderr.contains("symbolic link"),
                "{planted} {args:?}: {stderr}"
            );
            assert_eq!(
                fingerprint(&root_file)?,
                before,
                "{planted} {args:?} changed the root file"
            );
        }
        std::fs::remove_file(&link)?;
        std::fs::rename(&aside, &link)?;
    }
    // Without the links, root's commands work and leave the files to the service user.
    assert!(
        vault(&["set", "new", "--file", secret_arg])
            .status
            .success()
    );
    assert_eq!(list(&config)?, ["new", "seed"].map(String::from).into());
    for f in ["vault.age", "vault.lock"] {
        let m = std::fs::metadata(connector.state_dir.join(f))?;
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&m), 65534, "{f}");
    }
    // A directory of some other user, or one others may write, is refused with its fix.
    chown_all(4242)?;
    let out = vault(&["set", "other", "--file", secret_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "chown -R 65534: {}",
            connector.state_dir.display()
        )),
        "{stderr}"
    );
    chown_all(65534)?;
    std::fs::set_permissions(&connector.state_dir, std::fs::Permissions::from_mode(0o777))?;
    let out = vault(&["rm", "seed"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("chmod 0700 {}", connector.state_dir.display())),
        "{stderr}"
    );
    assert_eq!(fingerprint(&root_file)?, before);
    Ok(())
}
