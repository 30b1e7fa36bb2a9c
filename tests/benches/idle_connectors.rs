//! Idle connectors held by one runtime process (DESIGN target: at most 64 KB of the
//! runtime's RSS per connector): `BENCH_CONNECTORS` (default 5,000) connectors, each the
//! real connector library (`edge_connector::run_with_tools`: its own QUIC endpoint, a real
//! mutual-TLS handshake, hello, heartbeats), all in this process, against the release
//! runtime in its own process. Prints the runtime's RSS before and after, per connector,
//! and how long the runtime took to admit them all.
//!
//! Enrolling thousands of connectors through the HTTPS endpoint would take hours under its
//! per-address rate limit, so this benchmark enrolls them offline with the same library
//! calls that endpoint makes (a join token in the store, the CA signing the connector's
//! CSR, the enrollment recorded, the connector's state directory written as `enroll`
//! writes it). The tunnels that follow are the ordinary ones.
//!
//! Run: `cargo build --release --bins && cargo bench -p e2e --bench idle_connectors`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cloud_runtime::data_dir::DataDir;
use e2e::Runtime;
use edge_connector::config::{Transport, TunnelConfig};
use edge_connector::state::{ConnectorConfig, StateDir};
use edge_connector::tools::{ToolContext, Toolbox};
use edge_connector::tunnel::session::TunnelSettings;
use shared::identity::ConnectorIdentity;
use tokio_util::sync::CancellationToken;

/// Connectors unless `BENCH_CONNECTORS` says otherwise.
const DEFAULT_CONNECTORS: usize = 5_000;

/// Enrollments in flight at once.
const ENROLL_PARALLEL: usize = 16;

fn connectors() -> usize {
    std::env::var("BENCH_CONNECTORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_CONNECTORS)
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// How many connectors the store lists online.
fn online(rt: &Runtime) -> usize {
    let out = e2e::run_ok(rt.cli().args(["connector", "list", "--json"]));
    serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| {
            v.as_array()
                .map(|a| a.iter().filter(|c| c["status"] == "online").count())
        })
        .unwrap_or(0)
}

/// Enrolls connector `i` of `tenant` offline; returns its state directory.
#[allow(clippy::too_many_arguments)]
async fn enroll(
    https: &str,
    store: &cloud_runtime::store::Store,
    ca: &certs::CertificateAuthority,
    trust_domain: &shared::identity::TrustDomain,
    quic: &str,
    server_name: &str,
    root: &std::path::Path,
    i: usize,
) -> Result<StateDir> {
    let tenant = "acme".parse()?;
    let issued = cloud_runtime::join_token::issue(store, &tenant, Duration::from_secs(900)).await?;
    let identity = ConnectorIdentity {
        trust_domain: trust_domain.clone(),
        tenant: tenant.clone(),
        connector: issued.connector.clone(),
    };
    let key = certs::csr::ConnectorKey::generate()?;
    let cert = ca.sign_connector(
        &key.csr_der(&identity)?,
        &identity,
        Duration::from_secs(24 * 3600),
    )?;
    store
        .complete_enrollment(
            &issued.token.hash,
            &tenant,
            &issued.connector,
            &cert.serial_hex,
            cert.not_after.unix_timestamp() * 1000,
        )
        .await?;
    store
        .record_certificate(&issued.connector, &cert.serial_hex, &cert.cert_der)
        .await?;
    let state = StateDir::new(root.join(format!("c{i}")));
    state.prepare_for_enrollment()?;
    state.save_enrollment(
        &ConnectorConfig {
            identity: identity.to_uri(),
            runtime: https.to_owned(),
            quic_endpoint: quic.to_owned(),
            server_name: server_name.to_owned(),
            ca_fingerprint: ca.fingerprint().to_string(),
            tcp_endpoint: None,
            ssh_host_key: None,
        },
        ca.cert_pem(),
        &cert.chain_pem,
        &key,
    )?;
    Ok(state)
}

fn main() -> Result<()> {
    let n = connectors();
    let mut rt = Runtime::init()?;
    rt.serve_args = vec!["--tunnel-handshake-rate".into(), "2000".into()];
    rt.start()?;
    let pid = rt.serve.as_ref().map(|p| p.pid()).context("serving")?;
    let quic = format!("localhost:{}", rt.quic_port);
    let root = rt.dir.path().join("fleet");
    std::fs::create_dir_all(&root)?;

    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio_rt.block_on(async move {
        let data = DataDir::new(rt.data_dir()).with_database(Some(rt.database_url().parse()?));
        let config = data.config()?;
        let ca = Arc::new(data.ca(&config)?);
        let store = data.store().await?;
        let trust_domain: shared::identity::TrustDomain = config.trust_domain.parse()?;
        let t0 = Instant::now();
        let mut states = Vec::with_capacity(n);
        let https = rt.https_endpoint();
        for batch in (0..n).collect::<Vec<_>>().chunks(ENROLL_PARALLEL) {
            let mut set = tokio::task::JoinSet::new();
            for &i in batch {
                let (https, store, ca, td, quic, host, root) = (
                    https.clone(),
                    store.clone(),
                    ca.clone(),
                    trust_domain.clone(),
                    quic.clone(),
                    config.hostname.clone(),
                    root.clone(),
                );
                set.spawn(async move {
                    enroll(&https, &store, &ca, &td, &quic, &host, &root, i).await
                });
            }
            while let Some(state) = set.join_next().await {
                states.push(state??);
            }
        }
        println!("{n} connectors enrolled offline in {:.1?}", t0.elapsed());

        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = rss_kib(pid);
        let shutdown = CancellationToken::new();
        let tracing = Arc::new(shared::trace::Tracing::new("idle-bench", "0", None)?);
        let allow_all = shared::policy::RuleSet(vec![shared::policy::AllowRule::parse(
            &["*".to_owned()],
            None,
            None,
        )?]);
        let t0 = Instant::now();
        for state in states {
            let identity = state.identity()?.identity;
            let tools = Arc::new(Toolbox::new(
                ToolContext {
                    identity,
                    version: edge_connector::VERSION,
                },
                Arc::default(),
            ));
            tokio::spawn(edge_connector::run_with_tools(
                state,
                tools,
                allow_all.clone(),
                None,
                TunnelSettings::without_password(TunnelConfig {
                    transport: Transport::Quic,
                    ..TunnelConfig::default()
                }),
                tracing.clone(),
                Duration::from_secs(5),
                shutdown.clone(),
            ));
        }
        let mut up = 0;
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            up = tokio::task::block_in_place(|| online(&rt));
            if up >= n {
                break;
            }
        }
        let admitted = t0.elapsed();
        anyhow::ensure!(up >= n, "only {up} of {n} connectors online after {admitted:?}");
        // Let the wave's buffers settle, then read the runtime's memory.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = rss_kib(pid);
        println!(
            "runtime RSS: {before} KiB with no connector, {after} KiB with {n} connected and idle: {:.1} KiB per connector (target ≤ 64 KiB); all {n} admitted {admitted:.1?} after they started (handshake rate 2,000/s)",
            (after.saturating_sub(before)) as f64 / n as f64,
        );
        shutdown.cancel();
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    })
}
