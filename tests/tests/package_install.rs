//! The .deb packages installed on this machine (CI runs on a throwaway root machine): the
//! connector is enrolled against a runtime on loopback as its service user, its unit's
//! ExecStart runs the way systemd would run it (service user, umask, a credentials
//! directory with the vault key; no systemd runs as PID 1 here), it comes online, a
//! package rebuilt with another version upgrades it keeping a locally edited config, and
//! purge removes user, configuration and state. Cleans up on failure too. Skipped, with
//! the reason, when not root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::{Process, Runtime, run, run_ok, wait_for, workspace_root};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const UNIT: &str = "/lib/systemd/system/edge-connector.service";
const CONFIG: &str = "/etc/edge-connector/config.toml";
const STATE: &str = "/var/lib/edge-connector";
const KEY: &str = "/etc/edge-connector/vault.key";
const ENABLED: &str = "/etc/systemd/system/multi-user.target.wants/edge-connector.service";

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).stdout == b"0\n"
}

/// Builds the packages into `out`, stamped `version` if given (then from the same
/// binaries, without recompiling).
fn build(out: &Path, version: Option<&str>) {
    let root = workspace_root();
    let mut cmd = Command::new(root.join("packaging/build"));
    // Fast compression: these packages are installed and thrown away.
    cmd.current_dir(&root)
        .env("PACKAGES_OUT", out)
        .arg("--fast");
    if let Some(v) = version {
        cmd.args(["--skip-build", "--version", v]);
    }
    run_ok(&mut cmd);
}

fn dpkg(args: &[&str]) -> String {
    run_ok(
        Command::new("dpkg")
            .args(["--force-confdef", "--force-confold"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn installed_version(package: &str) -> Option<String> {
    let out = run(Command::new("dpkg-query").args(["-W", "-f", "${Status} ${Version}", package]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.strip_prefix("install ok installed ")
        .map(str::to_owned)
}

fn user_exists(name: &str) -> bool {
    run(Command::new("getent").args(["passwd", name]))
        .status
        .success()
}

/// Purges `package` when dropped, whatever happened, and stops what the test started.
struct Cleanup {
    package: &'static str,
    service: Option<Service>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut s) = self.service.take() {
            s.stop();
        }
        if installed_version(self.package).is_some()
            || Path::new(&format!("/etc/{}", self.package)).exists()
        {
            let _ = run(Command::new("dpkg").args(["--purge", self.package]));
        }
    }
}

/// The unit's ExecStart, run as systemd would: as the service user, with the unit's
/// umask and `$CREDENTIALS_DIRECTORY` holding the `LoadCredential=` file.
struct Service {
    runuser: Process,
    credentials: tempfile::TempDir,
}

impl Service {
    fn start(log: PathBuf) -> Result<Self> {
        let unit = std::fs::read_to_string(UNIT)?;
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .context("ExecStart in the unit")?;
        let umask = unit
            .lines()
            .find_map(|l| l.strip_prefix("UMask="))
            .context("UMask in the unit")?;
        let (name, source) = unit
            .lines()
            .find_map(|l| l.strip_prefix("LoadCredential="))
            .and_then(|c| c.split_once(':'))
            .context("LoadCredential in the unit")?;
        // Like systemd: a private directory the service user can read, and nobody else.
        let credentials = tempfile::tempdir()?;
        let file = credentials.path().join(name);
        std::fs::copy(source, &file)?;
        for p in [credentials.path(), file.as_path()] {
            run_ok(
                Command::new("chown")
                    .arg("edge-connector:edge-connector")
                    .arg(p),
            );
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400))?;
        std::fs::set_permissions(credentials.path(), std::fs::Permissions::from_mode(0o500))?;
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "edge-connector", "--", "env"])
            .arg(format!(
                "CREDENTIALS_DIRECTORY={}",
                credentials.path().display()
            ))
            .args(["sh", "-c", &format!("umask {umask} && exec \"$@\""), "sh"])
            .args(exec.split_whitespace());
        println!("starting the unit's command: {cmd:?}");
        Ok(Self {
            runuser: Process::spawn(cmd, log)?,
            credentials,
        })
    }

    /// The connector itself: runuser's child.
    fn connector_pid(&self) -> Option<i32> {
        let parent = self.runuser.pid().to_string();
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            (ppid == parent).then(|| e.file_name().to_str()?.parse().ok())?
        })
    }

    /// SIGTERM to the connector (it drains and exits), then reap runuser.
    fn stop(&mut self) {
        if let Some(pid) = self.connector_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if self.runuser.wait_exit(Duration::from_secs(40)).is_err() {
            self.runuser.kill();
        }
    }
}

#[test]
fn connector_deb_installs_enrolls_runs_upgrades_and_purges() -> Result<()> {
    if !is_root() {
        println!("SKIPPED: installing packages needs root (CI runs as root)");
        return Ok(());
    }
    let work = tempfile::tempdir()?;
    let (v1, v2) = (work.path().join("v1"), work.path().join("v2"));
    build(&v1, None);
    let next = format!("{VERSION}.1");
    build(&v2, Some(&next));
    let mut cleanup = Cleanup {
        package: "edge-connector",
        service: None,
    };
    if let Some(v) = installed_version("edge-connector") {
        println!("edge-connector {v} was installed on this machine; purging it first");
        dpkg(&["--purge", "edge-connector"]);
    }

    // Install: user, private state directory, vault key, unit enabled but not started.
    let deb1 = v1.join(format!("edge-connector_{VERSION}-1_amd64.deb"));
    println!("{}", dpkg(&["-i", &deb1.display().to_string()]));
    assert_eq!(
        installed_version("edge-connector").as_deref(),
        Some(&*format!("{VERSION}-1"))
    );
    assert!(user_exists("edge-connector"));
    let state = std::fs::metadata(STATE)?;
    assert_eq!(state.mode() & 0o7777, 0o700, "state dir mode");
    let owner = run_ok(Command::new("stat").args(["-c", "%U", STATE]));
    assert_eq!(owner.trim(), "edge-connector");
    let key = std::fs::metadata(KEY)?;
    assert_eq!(
        (key.mode() & 0o777, key.uid()),
        (0o600, 0),
        "vault key mode/owner"
    );
    assert!(Path::new(ENABLED).exists(), "unit not enabled");
    let verify = run(Command::new("systemd-analyze").arg("verify").arg(UNIT));
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // Idempotent maintainer scripts: installing again changes nothing.
    let key_before = std::fs::read(KEY)?;
    dpkg(&["-i", &deb1.display().to_string()]);
    assert_eq!(
        std::fs::read(KEY)?,
        key_before,
        "reinstall replaced the vault key"
    );

    // Enroll as the service user against a runtime on loopback.
    let mut rt = Runtime::init()?;
    rt.start()?;
    let token = rt.token("acme", "15m");
    let enrolled = run_ok(Command::new("runuser").args([
        "-u",
        "edge-connector",
        "--",
        "/usr/bin/edge-connector",
        "enroll",
        "--config",
        CONFIG,
        "--runtime",
        &rt.https_endpoint(),
        "--token",
        &token.token,
        "--ca-fingerprint",
        &token.ca_fingerprint,
    ]));
    println!("{enrolled}");
    assert!(Path::new(STATE).join("connector.toml").exists());

    // The unit's command, as the service user: online.
    cleanup.service = Some(Service::start(work.path().join("connector-1.log"))?);
    rt.wait_online(&token.connector_id, Duration::from_secs(30))
        .with_context(|| {
            cleanup
                .service
                .as_ref()
                .map(|s| s.runuser.log_text())
                .unwrap_or_default()
        })?;
    println!("connector list: {:?}", rt.connector(&token.connector_id));
    // doctor, as the service would see things (the vault key from the credential).
    let mut doctor = Command::new("runuser");
    doctor.args(["-u", "edge-connector", "--", "env"]);
    if let Some(s) = &cleanup.service {
        doctor.arg(format!(
            "CREDENTIALS_DIRECTORY={}",
            s.credentials.path().display()
        ));
    }
    doctor.args(["/usr/bin/edge-connector", "doctor", "--config", CONFIG]);
    let report = run(&mut doctor);
    let report_text = String::from_utf8_lossy(&report.stdout).into_owned();
    println!("{report_text}");
    assert!(
        report_text.contains("opens with the key from"),
        "vault via credential: {report_text}"
    );
    if let Some(mut s) = cleanup.service.take() {
        s.stop();
    }

    // A local edit, then the upgrade: the edit survives, so does the enrollment.
    let edited = std::fs::read_to_string(CONFIG)?.replace(
        "#state_dir = \"/var/lib/edge-connector\"",
        "state_dir = \"/var/lib/edge-connector\"  # edited on this machine",
    );
    assert!(edited.contains("# edited on this machine"));
    std::fs::write(CONFIG, &edited)?;
    let deb2 = v2.join(format!("edge-connector_{next}-1_amd64.deb"));
    println!("{}", dpkg(&["-i", &deb2.display().to_string()]));
    assert_eq!(
        installed_version("edge-connector").as_deref(),
        Some(&*format!("{next}-1"))
    );
    assert_eq!(
        std::fs::read_to_string(CONFIG)?,
        edited,
        "the upgrade replaced the edited config"
    );
    assert_eq!(
        std::fs::read(KEY)?,
        key_before,
        "the upgrade replaced the vault key"
    );
    assert!(Path::new(STATE).join("connector.toml").exists());
    cleanup.service = Some(Service::start(work.path().join("connector-2.log"))?);
    wait_for(
        Duration::from_secs(30),
        "connector online after the upgrade",
        || {
            rt.connector(&token.connector_id)
                .filter(|c| c["status"] == "online")
        },
    )
    .with_context(|| {
        cleanup
            .service
            .as_ref()
            .map(|s| s.runuser.log_text())
            .unwrap_or_default()
    })?;
    if let Some(mut s) = cleanup.service.take() {
        s.stop();
    }

    // Purge: user, configuration, state and enablement gone.
    println!("{}", dpkg(&["--purge", "edge-connector"]));
    assert_eq!(installed_version("edge-connector"), None);
    assert!(!user_exists("edge-connector"), "user left behind");
    for gone in ["/etc/edge-connector", STATE, ENABLED] {
        assert!(!Path::new(gone).exists(), "{gone} left behind");
    }
    rt.stop()?;
    Ok(())
}

#[test]
fn runtime_deb_installs_initialises_and_purges() -> Result<()> {
    if !is_root() {
        println!("SKIPPED: installing packages needs root (CI runs as root)");
        return Ok(());
    }
    let work = tempfile::tempdir()?;
    build(work.path(), None);
    let _cleanup = Cleanup {
        package: "cloud-runtime",
        service: None,
    };
    if installed_version("cloud-runtime").is_some() {
        dpkg(&["--purge", "cloud-runtime"]);
    }
    let deb = work
        .path()
        .join(format!("cloud-runtime_{VERSION}-1_amd64.deb"));
    println!("{}", dpkg(&["-i", &deb.display().to_string()]));
    assert!(user_exists("cloud-runtime"));
    assert!(Path::new("/etc/cloud-runtime/cloud-runtime.env").exists());
    // The unit's data directory, made as the service user; then the unit verifies.
    let init = run_ok(Command::new("runuser").args([
        "-u",
        "cloud-runtime",
        "--",
        "/usr/bin/cloud-runtime",
        "init",
        "--data-dir",
        "/var/lib/cloud-runtime",
        "--hostname",
        "localhost",
    ]));
    println!("{init}");
    assert!(Path::new("/var/lib/cloud-runtime/runtime.toml").exists());
    let verify = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg("/lib/systemd/system/cloud-runtime.service"));
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    println!("{}", dpkg(&["--purge", "cloud-runtime"]));
    assert!(!user_exists("cloud-runtime"));
    for gone in ["/etc/cloud-runtime", "/var/lib/cloud-runtime"] {
        assert!(!Path::new(gone).exists(), "{gone} left behind");
    }
    Ok(())
}
