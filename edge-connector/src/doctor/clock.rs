//! Clock skew against the runtime, read from the `Date` header of its enrollment info
//! endpoint over HTTPS, verified against the CA pinned at enrollment. A wrong clock breaks
//! certificate validity (connector certificates live a day by default) long before anything
//! else notices.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use shared::enroll::ENROLL_INFO_PATH;

use super::PROBE_TIMEOUT;
use super::report::Check;

/// Skew beyond which certificates and tokens start to fail.
const FAIL_SKEW: Duration = Duration::from_secs(30);
/// Skew worth a warning: time sync is off or drifting. The `Date` header has a resolution
/// of one second, so smaller differences mean nothing.
const WARN_SKEW: Duration = Duration::from_secs(5);

const ID: &str = "clock";

/// Asks `https://{runtime}` for its time and compares.
pub async fn check(runtime: &str, ca: &CertificateDer<'static>, out: &mut Vec<Check>) {
    let client = match client(ca) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::fail(
                ID,
                format!("cannot build the HTTPS client from the pinned CA: {e}"),
                "Re-enroll: ca.pem in the state directory is damaged.",
            ));
            return;
        }
    };
    let url = format!("https://{runtime}{ENROLL_INFO_PATH}");
    let sent = Instant::now();
    let sent_wall = SystemTime::now();
    let resp = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => {
            out.push(Check::fail(
                "runtime-https",
                format!("HTTPS to {runtime} failed: {}", super::chain(&e)),
                "TCP reaches the runtime but HTTPS does not work: if a TLS-inspecting proxy or firewall sits in between, \
                 exempt the runtime's host from inspection; if the runtime was re-initialised, re-enroll.",
            ));
            out.push(Check::skip(
                ID,
                "the runtime's time is unknown (HTTPS failed)",
            ));
            return;
        }
    };
    // The server stamped its Date somewhere between sending and receiving: take the middle.
    let local = sent_wall + sent.elapsed() / 2;
    let Some(remote) = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        out.push(Check::skip(ID, format!("{url} sent no usable Date header")));
        return;
    };
    out.push(verdict(local, remote, runtime));
}

fn verdict(local: SystemTime, remote: SystemTime, runtime: &str) -> Check {
    let (skew, direction) = match local.duration_since(remote) {
        Ok(ahead) => (ahead, "ahead of"),
        Err(behind) => (behind.duration(), "behind"),
    };
    let secs = skew.as_secs();
    let summary =
        format!("this machine's clock is about {secs} s {direction} the runtime's ({runtime})");
    let fix = "Enable time synchronisation (`timedatectl set-ntp true`, or chrony) and allow NTP (UDP 123) to your \
               time servers; check with `timedatectl status` or `chronyc tracking`.";
    if skew > FAIL_SKEW {
        Check::fail(
            ID,
            format!("{summary}: certificates will be refused as not yet valid or expired"),
            fix,
        )
    } else if skew > WARN_SKEW {
        Check::warn(ID, summary, fix)
    } else {
        Check::pass(
            ID,
            format!(
                "in sync with the runtime (within {} s)",
                WARN_SKEW.as_secs()
            ),
        )
    }
}

fn client(ca: &CertificateDer<'static>) -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| e.to_string())?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_judged_both_ways() {
        let now = SystemTime::now();
        let at = |secs: i64| {
            if secs >= 0 {
                now + Duration::from_secs(secs.unsigned_abs())
            } else {
                now - Duration::from_secs(secs.unsigned_abs())
            }
        };
        assert_eq!(verdict(now, at(1), "rt").status, super::super::Status::Pass);
        let w = verdict(now, at(-10), "rt");
        assert_eq!(w.status, super::super::Status::Warn);
        assert!(w.summary.contains("10 s ahead of"), "{}", w.summary);
        let f = verdict(now, at(7200), "rt");
        assert_eq!(f.status, super::super::Status::Fail);
        assert!(f.summary.contains("7200 s behind"), "{}", f.summary);
    }
}
