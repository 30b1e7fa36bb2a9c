//! A benchmark connector: the real edge-connector library (enrollment state, QUIC tunnel,
//! session, local policy) serving the connector's own diagnostic tools, with its audit log
//! (`--audit`, as `edge-connector run` always has it) or without, so that one run of the
//! tunnel benchmark measures what the connector's own record costs per call.
//!
//! Usage: `bench_connector --state-dir DIR [--audit]` (enroll with `edge-connector enroll`
//! first).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use edge_connector::audit::AuditConfig;
use edge_connector::config::{Transport, TunnelConfig};
use edge_connector::state::StateDir;
use edge_connector::tools::{ToolContext, Toolbox};
use edge_connector::tunnel::session::TunnelSettings;
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let mut state_dir = None;
    let mut audit = false;
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--state-dir" => state_dir = argv.next(),
            "--audit" => audit = true,
            other => bail!(
                "unknown argument {other:?}; usage: bench_connector --state-dir DIR [--audit]"
            ),
        }
    }
    let state_dir = state_dir.context("usage: bench_connector --state-dir DIR [--audit]")?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            token.cancel();
        });
        let state = StateDir::new(&state_dir);
        let identity = state.identity()?.identity;
        let toolbox = Toolbox::new(
            ToolContext {
                identity,
                version: edge_connector::VERSION,
            },
            Arc::default(),
        );
        let allow_all = shared::policy::RuleSet(vec![shared::policy::AllowRule::parse(
            &["*".to_owned()],
            None,
            None,
        )?]);
        edge_connector::run_with_tools(
            state,
            Arc::new(toolbox),
            allow_all,
            audit.then(AuditConfig::default),
            TunnelSettings::without_password(TunnelConfig {
                transport: Transport::Quic,
                ..TunnelConfig::default()
            }),
            Arc::new(shared::trace::Tracing::new("bench-connector", "0", None)?),
            Duration::from_secs(5),
            shutdown,
        )
        .await?;
        Ok(())
    })
}
