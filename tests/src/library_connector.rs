//! The connector library run as a test binary (`fixture_connector`, `bench_connector`):
//! enrollment state, tunnel, session and local policy as `edge-connector run` has them,
//! serving a tool set the binary chooses, until Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use edge_connector::audit::AuditConfig;
use edge_connector::config::{Transport, TunnelConfig};
use edge_connector::state::StateDir;
use edge_connector::toolset::ToolSet;
use edge_connector::tunnel::session::TunnelSettings;
use tokio_util::sync::CancellationToken;

/// Serves `tools` (all allowed by the local policy) from the enrollment in `state_dir`
/// over `transport`, with the audit log if `audit`; `name` names the spans' service.
pub fn run(
    state_dir: &str,
    name: &'static str,
    tools: Arc<dyn ToolSet>,
    audit: Option<AuditConfig>,
    transport: Transport,
) -> anyhow::Result<()> {
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
        let allow_all = shared::policy::RuleSet(vec![shared::policy::AllowRule::parse(
            &["*".to_owned()],
            None,
            None,
        )?]);
        edge_connector::run_with_tools(
            StateDir::new(state_dir),
            tools,
            allow_all,
            audit,
            TunnelSettings::without_password(TunnelConfig {
                transport,
                ..TunnelConfig::default()
            }),
            Arc::new(shared::trace::Tracing::new(name, "0", None)?),
            Duration::from_secs(5),
            shutdown,
        )
        .await?;
        Ok(())
    })
}
