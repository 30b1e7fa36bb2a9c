//! `edge-connector doctor`: checks the things that break first in the field and says, for
//! each failure, what is wrong and how to fix it. Every probe is outbound (the UDP one on a
//! `connect()`ed socket, like the tunnel's): doctor opens no listening socket either.
//!
//! One module per check family:
//! - [`identity`]: state directory, enrollment, certificate validity and time left;
//! - [`network`]: DNS, the QUIC handshake over UDP with the enrolled identity, TCP to HTTPS;
//! - [`tunnel_tcp`]: the tunnel's SSH-over-TCP path, direct or a real CONNECT through the proxy;
//! - [`clock`]: skew against the runtime's clock (HTTPS `Date`);
//! - [`vault`]: the vault's key and file;
//! - [`upstreams`]: each `[[provider]]` over HTTPS with its `ca_bundle` and proxy;
//! - [`proxy`]: the proxy variables, compared with the running service's;
//! - [`listening`]: that no running edge-connector holds a listening socket;
//! - [`report`]: the findings, as text or JSON.

pub mod clock;
pub mod identity;
pub mod listening;
pub mod network;
pub mod proxy;
pub mod report;
pub mod tunnel_tcp;
pub mod upstreams;
pub mod vault;

use std::path::Path;
use std::time::Duration;

pub use report::{Check, Report, Status};

use crate::config::Config;
use crate::egress::ProxyEnv;

/// How long one probe waits for an answer before calling the path blocked.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs every check against `config`, with the proxy variables of `env`.
pub async fn run(config: &Config, env: &ProxyEnv) -> Report {
    let proc_root = Path::new("/proc");
    let mut checks = Vec::new();
    let enrolled = identity::check(&config.state_dir, config.path.as_deref(), &mut checks);
    match &enrolled {
        Some(e) => {
            let quic = e.config.quic_endpoint.clone();
            if let Some(target) = network::resolve("runtime-dns", "QUIC", &quic, &mut checks).await {
                network::quic(e, &target, &mut checks).await;
            }
            let https = e.config.runtime.clone();
            let tcp_ok = match network::resolve("runtime-https-dns", "HTTPS", &https, &mut checks).await {
                Some(target) => network::tcp(&target, &mut checks).await,
                None => false,
            };
            match (&e.ca, tcp_ok) {
                (Some(ca), true) => clock::check(&https, ca, &mut checks).await,
                _ => checks.push(Check::skip("clock", "the runtime's HTTPS endpoint is not reachable (see above)")),
            }
            let vault = || crate::connect_proxy::vault_password(config);
            checks.push(tunnel_tcp::check(&config.tunnel, &e.config, env, vault).await);
        }
        None => checks.push(Check::skip(
            "runtime",
            "runtime reachability is checked once the connector is enrolled (the runtime's endpoints come from enrollment)",
        )),
    }
    checks.push(vault::check(config));
    if config.providers.is_empty() {
        checks.push(Check::pass(
            "upstreams",
            "no [[provider]] configured: the connector serves its diagnostic tools only",
        ));
    }
    for p in &config.providers {
        let auth = crate::providers::proxy::auth_for(p, |name| {
            let vault = crate::vault::Vault::open(config).map_err(|e| e.to_string())?;
            vault
                .get(name)
                .map(|e| e.map(|e| e.secret))
                .map_err(|e| e.to_string())
        });
        checks.push(upstreams::check(p, env, auth).await);
    }
    checks.push(proxy::check(env, proc_root));
    checks.push(listening::check(proc_root));
    Report::new(
        config.path.as_ref().map(|p| p.display().to_string()),
        checks,
    )
}

/// A report for a configuration that does not load: nothing else can be checked.
pub fn unloadable_config(path: Option<&Path>, error: &str) -> Report {
    Report::new(
        path.map(|p| p.display().to_string()),
        vec![Check::fail(
            "config",
            format!("the configuration cannot be used: {error}"),
            "Fix the file at the line named (every option is described in the packaged example, \
             /usr/share/doc/edge-connector/examples/config.toml); the connector refuses to start until it loads.",
        )],
    )
}

/// The running edge-connector processes other than this one, found by the name the kernel
/// records for them.
fn connector_pids(proc_root: &Path) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir(proc_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm"))
                .is_ok_and(|c| c.trim_end() == "edge-connector")
        })
        .collect()
}

/// An error with its causes, which is where reqwest keeps the interesting part.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
