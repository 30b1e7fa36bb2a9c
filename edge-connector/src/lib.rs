//! The edge connector: installed inside the customer's network, it dials out to the cloud
//! runtime over mutual-TLS QUIC and runs tools there on behalf of users. It opens no
//! listening socket.
//!
//! - [`state`]: the state directory (config, pinned CA, identity).
//! - [`enroll`]: one-time enrollment with a join token and a pinned CA fingerprint.
//! - [`tunnel`]: dialling, sessions, call serving, reconnects.
//! - [`tools`]: the tools served over the tunnel.

#![forbid(unsafe_code)]

pub mod enroll;
pub mod state;
pub mod tools;
pub mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs the connector from `state` with its own tools until `shutdown` (draining in-flight
/// calls for at most `drain_timeout`) or until the runtime refuses it.
pub async fn run(
    state: state::StateDir,
    drain_timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), tunnel::supervisor::RunError> {
    let identity = state.identity()?;
    let toolbox = tools::Toolbox::new(tools::ToolContext {
        identity: identity.identity.clone(),
        version: env!("CARGO_PKG_VERSION"),
    });
    run_with_tools(state, Arc::new(toolbox), drain_timeout, shutdown).await
}

/// Like [`run`], serving the given tool set (test connectors serve fixture tools this way).
pub async fn run_with_tools(
    state: state::StateDir,
    tools: Arc<dyn tools::ToolSet>,
    drain_timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), tunnel::supervisor::RunError> {
    let ctx = Arc::new(tunnel::session::SessionContext {
        state,
        tools,
        drain_timeout,
    });
    tunnel::supervisor::run(ctx, shutdown).await
}
