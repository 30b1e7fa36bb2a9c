//! The packages: `packaging/build` makes the .deb and .rpm of both binaries, and the tools
//! a reviewer would use inspect them: `dpkg-deb -I/-c`, `lintian` (no errors),
//! `rpm -qip/-qlp`, `systemd-analyze verify` and `security` on the units, and `objdump -T`
//! for the glibc baseline (at most GLIBC_2.28: RHEL 8, Debian 11, Ubuntu 20.04).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use e2e::{run, run_ok, workspace_root};

const PACKAGES: [&str; 2] = ["edge-connector", "cloud-runtime"];
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The connector unit's `systemd-analyze security` exposure must not exceed this.
const MAX_CONNECTOR_EXPOSURE: f64 = 2.0;

fn build() -> PathBuf {
    let root = workspace_root();
    let started = std::time::Instant::now();
    run_ok(Command::new(root.join("packaging/build")).current_dir(&root));
    println!("packaging/build took {:.0?}", started.elapsed());
    root.join("target/packages")
}

fn deb(out: &Path, p: &str) -> PathBuf {
    out.join(format!("{p}_{VERSION}-1_amd64.deb"))
}

fn rpm(out: &Path, p: &str) -> PathBuf {
    out.join(format!("{p}-{VERSION}-1.x86_64.rpm"))
}

/// The highest `GLIBC_x.y[.z]` symbol version a binary needs.
fn max_glibc(binary: &Path) -> Result<(u32, u32, u32)> {
    let out = run_ok(Command::new("objdump").arg("-T").arg(binary));
    out.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.').map(|n| n.parse::<u32>().ok());
            Some((
                parts.next()??,
                parts.next()??,
                parts.next().flatten().unwrap_or(0),
            ))
        })
        .max()
        .context("no GLIBC symbol versions")
}

/// The overall exposure `systemd-analyze security` prints for a unit file.
fn exposure(unit: &Path) -> Result<f64> {
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit));
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().find(|l| l.contains("Overall exposure level")) else {
        bail!(
            "no exposure line: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    line.split(": ")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("unparsable: {line}"))
}

#[test]
fn packages_build_and_pass_inspection() -> Result<()> {
    let out = build();
    let scratch = tempfile::tempdir()?;
    for p in PACKAGES {
        let deb = deb(&out, p);
        let rpm = rpm(&out, p);
        println!(
            "{p}: {} {} bytes, {} {} bytes",
            deb.display(),
            std::fs::metadata(&deb)?.len(),
            rpm.display(),
            std::fs::metadata(&rpm)?.len()
        );

        // dpkg-deb: control fields, maintainer scripts, conffiles, contents.
        let info = run_ok(Command::new("dpkg-deb").arg("-I").arg(&deb));
        println!("{info}");
        assert!(
            info.contains("libc6 (>= 2.28)"),
            "{p}: glibc baseline not declared"
        );
        for script in ["postinst", "prerm", "postrm", "conffiles"] {
            assert!(info.contains(script), "{p}: no {script}");
        }
        let name = run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Package"));
        assert_eq!(name.trim(), p);
        let contents = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
        println!("{contents}");
        for f in [
            format!("./usr/bin/{p}"),
            format!("./lib/systemd/system/{p}.service"),
            format!("./usr/share/doc/{p}/copyright"),
            format!("./usr/share/doc/{p}/changelog.Debian.gz"),
        ] {
            assert!(contents.contains(&f), "{p}: {f} missing from the .deb");
        }
        let extracted = scratch.path().join(p);
        run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extracted));
        let listed = std::fs::read_to_string(extracted_control(&deb, scratch.path())?)?;
        let expected_conffiles: &[&str] = match p {
            "edge-connector" => &[
                "/etc/edge-connector/config.toml",
                "/etc/edge-connector/policy.toml",
            ],
            _ => &["/etc/cloud-runtime/cloud-runtime.env"],
        };
        for c in expected_conffiles {
            assert!(
                listed.lines().any(|l| l == *c),
                "{p}: {c} is not a conffile: {listed}"
            );
        }

        // lintian: no errors; warnings shown.
        let lint = run(Command::new("lintian").arg(&deb));
        let lint_out = String::from_utf8_lossy(&lint.stdout).into_owned();
        println!(
            "lintian {p}:\n{lint_out}{}",
            String::from_utf8_lossy(&lint.stderr)
        );
        let errors: Vec<&str> = lint_out.lines().filter(|l| l.starts_with("E:")).collect();
        assert!(errors.is_empty(), "{p}: lintian errors: {errors:#?}");

        // rpm: header, files, requirements, config files marked noreplace, scriptlets.
        let rinfo = run_ok(Command::new("rpm").arg("-qip").arg(&rpm));
        println!("{rinfo}");
        assert!(rinfo.contains("License     : Apache-2.0"), "{rinfo}");
        let files = run_ok(Command::new("rpm").arg("-qlp").arg(&rpm));
        println!("{files}");
        for f in [
            format!("/usr/bin/{p}"),
            format!("/usr/lib/systemd/system/{p}.service"),
            format!("/usr/share/licenses/{p}/LICENSE"),
        ] {
            assert!(
                files.lines().any(|l| l == f),
                "{p}: {f} missing from the .rpm"
            );
        }
        let requires = run_ok(Command::new("rpm").args(["-qp", "--requires"]).arg(&rpm));
        assert!(requires.contains("glibc >= 2.28"), "{requires}");
        let flags = run_ok(
            Command::new("rpm")
                .args([
                    "-qp",
                    "--queryformat",
                    "[%{FILENAMES} %{FILEFLAGS:fflags}\n]",
                ])
                .arg(&rpm),
        );
        for c in expected_conffiles {
            let line = flags.lines().find(|l| l.starts_with(&format!("{c} ")));
            assert!(
                line.is_some_and(|l| l.ends_with('n') || l.contains("cn")),
                "{p}: {c} is not %config(noreplace): {flags}"
            );
        }
        let scripts = run_ok(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm));
        assert!(scripts.contains("useradd -r"), "{scripts}");

        // The units: verified against the packaged binary, exposure printed.
        let unit = extracted.join(format!("lib/systemd/system/{p}.service"));
        let text = std::fs::read_to_string(&unit)?;
        let exec = text
            .lines()
            .find(|l| l.starts_with("ExecStart="))
            .context("ExecStart")?;
        if p == "edge-connector" {
            assert_eq!(
                exec,
                "ExecStart=/usr/bin/edge-connector run --config /etc/edge-connector/config.toml"
            );
            assert!(text.contains("LoadCredential=vault.key:/etc/edge-connector/vault.key"));
            assert!(text.contains("ConditionPathExists=/var/lib/edge-connector/connector.toml"));
        }
        // verify checks that ExecStart's binary exists: point it at the extracted one.
        let verify_dir = scratch.path().join(format!("verify-{p}"));
        std::fs::create_dir_all(&verify_dir)?;
        let copy = verify_dir.join(format!("{p}.service"));
        std::fs::write(
            &copy,
            text.replace(
                &format!("/usr/bin/{p}"),
                &extracted.join("usr/bin").join(p).display().to_string(),
            ),
        )?;
        let verify = run(Command::new("systemd-analyze").arg("verify").arg(&copy));
        let complaints = String::from_utf8_lossy(&verify.stderr).into_owned();
        assert!(
            verify.status.success() && complaints.trim().is_empty(),
            "systemd-analyze verify {p}.service: {complaints}"
        );
        let level = exposure(&unit)?;
        println!("systemd-analyze security {p}.service: exposure {level}");
        if p == "edge-connector" {
            assert!(
                level <= MAX_CONNECTOR_EXPOSURE,
                "connector exposure {level} > {MAX_CONNECTOR_EXPOSURE}"
            );
        }

        // The shipped binary: glibc baseline, and it runs here.
        let binary = extracted.join("usr/bin").join(p);
        let (major, minor, patch) = max_glibc(&binary)?;
        println!("{p}: highest GLIBC symbol version needed: {major}.{minor}.{patch}");
        assert!((major, minor) <= (2, 28), "{p} needs GLIBC_{major}.{minor}");
        let version = run_ok(Command::new(&binary).arg("--version"));
        assert!(version.contains(VERSION), "{version}");
    }
    Ok(())
}

/// The `conffiles` control file of a .deb, extracted into `dir`.
fn extracted_control(deb: &Path, dir: &Path) -> Result<PathBuf> {
    let control = dir.join(format!(
        "control-{}",
        deb.file_name().and_then(|n| n.to_str()).unwrap_or("deb")
    ));
    run_ok(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    Ok(control.join("conffiles"))
}
