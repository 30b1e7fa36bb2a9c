//! The edge connector: installed inside the customer's network, it dials out to the cloud
//! runtime over mutual-TLS QUIC and runs tools there on behalf of users. It opens no
//! listening socket.
//!
//! - [`config`]: the customer's configuration file (state, policy, vault, upstreams).
//! - [`state`]: the state directory (enrollment, pinned CA, identity).
//! - [`state_guard`]: who may own the state directory, checked before anything is written.
//! - [`enroll`]: one-time enrollment with a join token and a pinned CA fingerprint.
//! - [`providers`]: the GitHub Enterprise and GitLab instances: HTTP, OAuth, each API.
//! - [`local_policy`]: the customer's own allow-list, enforced on every call.
//! - [`tunnel`]: dialling, sessions, call serving, reconnects.
//! - [`connect_proxy`]: HTTP `CONNECT` through the corporate egress proxy (the TCP tunnel,
//!   enrollment, and asking a proxy why it refused an upstream request).
//! - [`tools`]: the tools served over the tunnel, each provider's in its own folder.
//! - [`toolset`]: what the tunnel serves (a set of tools, by name).
//! - [`call_context`]: what a running call can do (progress, questions, upstream actions).
//! - [`backoff`]: exponential backoff with full jitter (reconnects, upstream retries).
//! - [`doctor`]: checks of this machine's readiness, each failure with its fix.
//! - [`egress`]: every destination the connector contacts, for the firewall.
//! - [`health`]: the tunnel's state for `edge-connector status` and systemd (READY,
//!   WATCHDOG, STATUS, exit after `exit_after_disconnected`).
//! - [`vault`]: the age-encrypted store of every credential the connector holds.
//! - [`audit`]: the connector's own hash-chained, signed record of every call.
//! - [`audit_gate`]: the layers around the local policy that write it ("no record, no
//!   request").

#![forbid(unsafe_code)]

pub mod audit;
pub mod audit_gate;
pub mod backoff;
pub mod call_context;
pub mod config;
pub mod connect_proxy;
pub mod doctor;
pub mod egress;
pub mod enroll;
pub mod health;
pub mod local_policy;
pub mod providers;
pub mod state;
pub mod state_guard;
pub mod tools;
pub mod toolset;
pub mod tunnel;
pub mod user_proof;
pub mod vault;

use std::sync::Arc;
use std::time::Duration;

use shared::policy::RuleSet;
use shared::trace::Tracing;
use tokio_util::sync::CancellationToken;

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the connector stopped for good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The state directory is unusable.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Dial(#[from] tunnel::dial::DialError),
    /// The runtime refused us for good.
    #[error("{0}")]
    Refused(String),
    /// No tunnel for `[tunnel] exit_after_disconnected`: exit so that systemd restarts us.
    #[error(transparent)]
    Disconnected(#[from] crate::health::service::Disconnected),
    /// The local policy file is unusable.
    #[error(transparent)]
    LocalPolicy(#[from] crate::local_policy::LocalPolicyError),
    /// The identity provider of the local policy cannot be set up.
    #[error(transparent)]
    UserProof(#[from] crate::user_proof::keys::KeysError),
    /// An upstream instance cannot be set up.
    #[error(transparent)]
    Providers(#[from] crate::providers::ProviderError),
    /// The span exporter could not be built.
    #[error(transparent)]
    Telemetry(#[from] shared::trace::ExporterError),
    /// The connector's own audit log cannot be opened: it runs no call unrecorded.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    /// Forwarding the audit log to syslog cannot start.
    #[error(transparent)]
    AuditForward(#[from] audit::forward::ForwardError),
}

/// Runs the connector described by `config` with its own tools until `shutdown` (draining
/// in-flight calls for at most `drain_timeout`), until the runtime refuses it, or until it
/// has had no tunnel for `[tunnel] exit_after_disconnected`. Meanwhile it keeps the status
/// file and the systemd notifications current ([`health::service`]).
pub async fn run(
    config: config::Config,
    drain_timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let state = state::StateDir::new(&config.state_dir).with_service_user(&config.service_user);
    let identity = state.identity()?;
    let policy = local_policy::load(config.policy_file.as_deref())?;
    let tracing = Arc::new(Tracing::new(
        "edge-connector",
        VERSION,
        config.telemetry.otlp_endpoint.as_ref(),
    )?);
    let enrolled = state.config()?;
    let providers = Arc::new(providers::Providers::new(&config, &enrolled.runtime, None)?);
    let toolbox = tools::Toolbox::new(
        tools::ToolContext {
            identity: identity.identity.clone(),
            version: VERSION,
        },
        providers,
    );
    let (gate, witness) = open_audit(
        &state,
        &config.service_user,
        config.audit,
        config.audit_syslog.as_ref(),
        Arc::new(toolbox),
    )?;
    let health = health::Health::new();
    // The health task may stop the connector (exit_after_disconnected); SIGTERM stops both.
    let stop = shutdown.child_token();
    let watcher = tokio::spawn(health::service::run(
        health.clone(),
        health::service::ServiceOptions {
            status_file: state.root().join(health::status_file::FILE_NAME),
            exit_after_disconnected: config.tunnel.exit_after_disconnected,
        },
        stop.clone(),
    ));
    let vault_config = config.clone();
    let ctx = tunnel::session::SessionContext {
        state,
        tunnel: tunnel::session::TunnelSettings {
            config: config.tunnel.clone(),
            proxy_password: Arc::new(move || connect_proxy::vault_password(&vault_config)),
        },
        tools: Arc::new(local_policy::Enforced::new(Arc::new(gate), policy)?),
        audit: Some(Arc::new(witness)),
        tracing: tracing.clone(),
        drain_timeout,
        health: health.clone(),
    };
    let result = tunnel::supervisor::run(Arc::new(ctx), stop.clone()).await;
    if let Err(e) = &result {
        health.stopped(e.to_string());
    }
    stop.cancel();
    let gave_up = watcher.await;
    tracing.shutdown();
    match (result, gave_up) {
        (Ok(()), Ok(Err(disconnected))) => Err(disconnected.into()),
        (result, _) => result,
    }
}

/// Opens the audit log in `state` (making its key on the first start of a connector
/// enrolled before the log existed) and returns its layers around `tools`.
fn open_audit(
    state: &state::StateDir,
    service_user: &str,
    config: audit::AuditConfig,
    syslog: Option<&audit::syslog::SyslogConfig>,
    tools: Arc<dyn toolset::ToolSet>,
) -> Result<(audit_gate::Gate, audit_gate::Witness), RunError> {
    let owner = state_guard::check(state.root(), service_user).map_err(state::StateError::from)?;
    let (key, made) = audit::AuditKey::load_or_create(&audit::key_path(state.root()), owner)?;
    if made {
        tracing::info!(key = %key.public(), "made the audit signing key");
    }
    let tap = match syslog {
        Some(syslog) => {
            let queue = audit::forward::start(syslog)?;
            Some(Box::new(move |segment: &[u8]| queue.offer(segment)) as audit::writer::Tap)
        }
        None => None,
    };
    let log = audit::AuditLog::open_with_tap(&audit::log_dir(state.root()), key, config, tap)?;
    Ok(audit_gate::layers(Arc::new(log), tools))
}

/// Like [`run`], serving the given tool set behind `rules` (test connectors serve fixture
/// tools this way), without a status file or systemd notifications. With `audit`, the
/// calls are recorded in the state directory's audit log as [`run`] records them (the
/// benchmarks compare both); without, they are not recorded by the connector at all.
#[allow(clippy::too_many_arguments)]
pub async fn run_with_tools(
    state: state::StateDir,
    tools: Arc<dyn toolset::ToolSet>,
    rules: RuleSet,
    audit: Option<audit::AuditConfig>,
    tunnel: tunnel::session::TunnelSettings,
    tracing: Arc<Tracing>,
    drain_timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let (tools, witness): (Arc<dyn toolset::ToolSet>, _) = match audit {
        Some(config) => {
            let user = state_guard::DEFAULT_SERVICE_USER;
            let (gate, witness) = open_audit(&state, user, config, None, tools)?;
            (Arc::new(gate), Some(Arc::new(witness)))
        }
        None => (tools, None),
    };
    let ctx = Arc::new(tunnel::session::SessionContext {
        state,
        tunnel,
        tools: Arc::new(local_policy::Enforced::new(tools, rules.into())?),
        audit: witness,
        tracing,
        drain_timeout,
        health: health::Health::new(),
    });
    tunnel::supervisor::run(ctx, shutdown).await
}
