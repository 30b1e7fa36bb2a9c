//! Enrollment, state directory and certificate: is this connector enrolled, can the
//! service user read its state, and how long is its certificate good for.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::report::Check;
use crate::state::{ConnectorConfig, Identity, StateDir, StateError};

/// Below this share of its lifetime left, a certificate counts as about to expire: the
/// connector renews at two thirds, so a quarter left means renewals are not happening.
const RENEWAL_OVERDUE_SHARE: f64 = 0.25;

/// What the network checks need from the state directory.
pub struct Enrolled {
    /// `connector.toml`.
    pub config: ConnectorConfig,
    /// Chain and key, when readable and within validity.
    pub identity: Option<Identity>,
    /// The pinned runtime CA.
    pub ca: Option<CertificateDer<'static>>,
}

/// Checks the state directory and the identity in it.
pub fn check(
    state_dir: &Path,
    config_file: Option<&Path>,
    out: &mut Vec<Check>,
) -> Option<Enrolled> {
    out.push(state_dir_check(state_dir));
    // The state directory is the service user's alone: from another account it looks empty.
    if let Err(e) = std::fs::metadata(state_dir.join("connector.toml"))
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        out.push(Check::fail(
            "enrollment",
            format!("{} cannot be read by this user: {e}", state_dir.display()),
            "Run doctor as root (`sudo edge-connector doctor`) or as the service user \
             (`sudo -u edge-connector edge-connector doctor`).",
        ));
        return None;
    }
    let state = StateDir::new(state_dir);
    let config = match state.config() {
        Ok(c) => c,
        Err(StateError::NotEnrolled(dir)) => {
            let config_arg = config_file
                .map(|p| format!("--config {} ", p.display()))
                .unwrap_or_else(|| format!("--state-dir {} ", dir.display()));
            out.push(Check::fail(
                "enrollment",
                format!("this connector is not enrolled: {} holds no connector.toml", dir.display()),
                format!(
                    "Make a join token on the runtime (`cloud-runtime connector token create --tenant TENANT`), then run \
                     `sudo -u edge-connector edge-connector enroll {config_arg}--runtime HOST:8443 --token TOKEN --ca-fingerprint sha256:HEX` \
                     with the values it printed."
                ),
            ));
            return None;
        }
        Err(e) => {
            out.push(Check::fail(
                "enrollment",
                format!("the enrollment cannot be read: {e}"),
                format!(
                    "Restore {} from a backup or re-enroll: move the directory aside and run `edge-connector enroll` with a new join token.",
                    state_dir.display()
                ),
            ));
            return None;
        }
    };
    out.push(Check::pass(
        "enrollment",
        format!(
            "enrolled as {}; runtime {} (tunnel {})",
            config.identity, config.runtime, config.quic_endpoint
        ),
    ));
    let ca = match state.ca_der() {
        Ok(ca) => Some(ca),
        Err(e) => {
            out.push(Check::fail(
                "pinned-ca",
                format!("the runtime CA pinned at enrollment cannot be read: {e}"),
                "Re-enroll with a new join token and the CA fingerprint `connector token create` prints.",
            ));
            None
        }
    };
    let identity = match state.identity() {
        Ok(identity) => certificate_check(&identity, out).then_some(identity),
        Err(e) => {
            out.push(Check::fail(
                "certificate",
                format!("the connector's certificate and key cannot be read: {e}"),
                format!(
                    "If the file exists, give it to the service user (`chown -R edge-connector: {}`); otherwise re-enroll with a new join token.",
                    state_dir.display()
                ),
            ));
            None
        }
    };
    Some(Enrolled {
        config,
        identity,
        ca,
    })
}

/// Validity and time left; true when the certificate can open a tunnel now.
fn certificate_check(identity: &Identity, out: &mut Vec<Check>) -> bool {
    let cert = &identity.cert;
    let now = OffsetDateTime::now_utc();
    let lifetime = cert.not_after - cert.not_before;
    let left = cert.not_after - now;
    let renew = "The running connector renews its certificate over the tunnel at two thirds of its lifetime: \
                 start it (`systemctl start edge-connector`) and check `journalctl -u edge-connector` for renewal errors.";
    if now < cert.not_before {
        out.push(Check::fail(
            "certificate",
            format!(
                "the certificate is not valid before {} — {} from now; this machine's clock is probably wrong",
                when(cert.not_before),
                human(cert.not_before - now)
            ),
            "Fix the clock (enable NTP: `timedatectl set-ntp true`, or chrony), then run doctor again.",
        ));
        return false;
    }
    if left <= time::Duration::ZERO {
        out.push(Check::fail(
            "certificate",
            format!("the certificate expired at {} ({} ago)", when(cert.not_after), human(-left)),
            "An expired certificate cannot open the tunnel, so it can no longer be renewed: re-enroll with a new join token \
             (`cloud-runtime connector token create`, then `edge-connector enroll`) into an empty state directory.",
        ));
        return false;
    }
    let share = left.as_seconds_f64() / lifetime.as_seconds_f64().max(1.0);
    let summary = format!(
        "certificate serial {} valid until {} ({} left, {} days; lifetime {})",
        cert.serial_hex,
        when(cert.not_after),
        human(left),
        left.whole_days(),
        human(lifetime)
    );
    if share < RENEWAL_OVERDUE_SHARE {
        out.push(Check::fail(
            "certificate",
            format!("{summary}: it expires soon and renewal is overdue"),
            renew,
        ));
    } else {
        out.push(Check::pass("certificate", summary));
    }
    true
}

/// The state directory: present, private, and owned through and through by one user.
fn state_dir_check(dir: &Path) -> Check {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => {
            return Check::fail(
                "state-dir",
                format!("{} is not usable: {e}", dir.display()),
                format!(
                    "The packages create it; otherwise: `install -d -m 0700 -o edge-connector -g edge-connector {}`.",
                    dir.display()
                ),
            );
        }
    };
    if meta.mode() & 0o077 != 0 {
        return Check::warn(
            "state-dir",
            format!(
                "{} is mode {:04o}: others may read the connector's private key",
                dir.display(),
                meta.mode() & 0o7777
            ),
            format!("`chmod 0700 {}`", dir.display()),
        );
    }
    let foreign: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() != meta.uid()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if !foreign.is_empty() {
        return Check::warn(
            "state-dir",
            format!(
                "{} is owned by uid {} but holds files of another user ({}): the service may not be able to read them",
                dir.display(),
                meta.uid(),
                foreign.join(", ")
            ),
            format!(
                "Run enroll and vault commands as the service user (`sudo -u edge-connector ...`); to repair: `chown -R edge-connector: {}`.",
                dir.display()
            ),
        );
    }
    Check::pass(
        "state-dir",
        format!(
            "{} is private (0700) and owned by uid {}",
            dir.display(),
            meta.uid()
        ),
    )
}

/// A point in time as people read it: `2026-12-03 03:41 UTC`.
fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// A duration the way people say it: `3 d 4 h`, `5 h 10 min`, `42 s`.
pub fn human(d: time::Duration) -> String {
    let s = d.whole_seconds().unsigned_abs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_speech() {
        assert_eq!(human(time::Duration::seconds(42)), "42 s");
        assert_eq!(human(time::Duration::minutes(90)), "90 min");
        assert_eq!(
            human(time::Duration::hours(5) + time::Duration::minutes(10)),
            "5 h 10 min"
        );
        assert_eq!(
            human(time::Duration::days(3) + time::Duration::hours(4)),
            "3 d 4 h"
        );
    }

    #[test]
    fn a_missing_state_dir_fails_with_the_command_that_makes_it() {
        let mut out = Vec::new();
        assert!(check(Path::new("/nonexistent/ec"), None, &mut out).is_none());
        assert_eq!(out[0].id, "state-dir");
        assert!(
            out[0]
                .fix
                .as_deref()
                .unwrap()
                .contains("install -d -m 0700")
        );
        assert_eq!(out[1].id, "enrollment");
        assert!(out[1].summary.contains("not enrolled"));
    }
}
