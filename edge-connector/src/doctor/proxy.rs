//! Proxy settings: which proxy variables doctor sees, and whether the running service sees
//! the same. A proxy exported in an operator's shell is not in a systemd service's
//! environment, which is the usual reason upstreams work from the shell and not from the
//! service.

use std::path::Path;

use super::report::Check;
use crate::egress::ProxyEnv;

const ID: &str = "proxy-env";
const NAMES: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Reports the proxy variables and compares them with the running service's.
pub fn check(env: &ProxyEnv, proc_root: &Path) -> Check {
    let mine = describe(env);
    let service = super::connector_pids(proc_root)
        .into_iter()
        .find_map(|pid| {
            let raw = std::fs::read(proc_root.join(pid.to_string()).join("environ")).ok()?;
            Some((pid, environ(&raw)))
        });
    match service {
        Some((pid, theirs)) if describe(&theirs) != mine => Check::warn(
            ID,
            format!(
                "doctor runs with {mine}, but the running edge-connector (process {pid}) has {}",
                describe(&theirs)
            ),
            "Upstream checks above used doctor's environment (for providers with proxy = \"env\"). Give the service the proxy settings it needs with \
             `systemctl edit edge-connector` ([Service] Environment=HTTPS_PROXY=http://PROXY:PORT NO_PROXY=...), or set \
             proxy = \"http://PROXY:PORT\" per [[provider]] in config.toml, which does not depend on the environment.",
        ),
        Some((pid, _)) => Check::pass(
            ID,
            format!("{mine}; the running service (process {pid}) sees the same"),
        ),
        None => Check::pass(ID, mine),
    }
}

/// The variables of a `/proc/<pid>/environ` block.
fn environ(raw: &[u8]) -> ProxyEnv {
    let get = |names: [&str; 2]| {
        raw.split(|b| *b == 0).find_map(|kv| {
            let kv = std::str::from_utf8(kv).ok()?;
            let (k, v) = kv.split_once('=')?;
            (names.contains(&k) && !v.trim().is_empty()).then(|| v.to_owned())
        })
    };
    ProxyEnv {
        https: get([NAMES[0], NAMES[1]]),
        http: get([NAMES[2], NAMES[3]]),
        all: get([NAMES[4], NAMES[5]]),
        no: get([NAMES[6], NAMES[7]]),
    }
}

/// The variables in words, proxy credentials removed.
fn describe(env: &ProxyEnv) -> String {
    let shown = |v: &str| {
        url::Url::parse(v)
            .map(|u| crate::egress::redact(&u))
            .unwrap_or_else(|_| v.to_owned())
    };
    let mut parts = Vec::new();
    for (name, value) in [
        ("HTTPS_PROXY", &env.https),
        ("HTTP_PROXY", &env.http),
        ("ALL_PROXY", &env.all),
    ] {
        if let Some(v) = value {
            parts.push(format!("{name}={}", shown(v)));
        }
    }
    if let Some(v) = &env.no {
        parts.push(format!("NO_PROXY={v}"));
    }
    if parts.is_empty() {
        "no proxy variables set".to_owned()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_environ_and_hides_credentials() {
        let env =
            environ(b"PATH=/usr/bin\0https_proxy=http://u:secret@proxy:3128\0NO_PROXY=.corp\0");
        let text = describe(&env);
        assert_eq!(text, "HTTPS_PROXY=http://proxy:3128 NO_PROXY=.corp");
        assert!(!text.contains("secret"));
        assert_eq!(describe(&ProxyEnv::default()), "no proxy variables set");
    }
}
