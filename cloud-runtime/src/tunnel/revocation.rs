//! Drops live tunnels of revoked connectors.
//!
//! Revocation is written to the store by `cloud-runtime connector revoke`, possibly from
//! another process (or, scaled out, another replica), so the runtime polls the store. The
//! interval keeps a revoked connector's tunnel alive for well under a second.

use std::sync::Arc;
use std::time::Duration;

use shared::close::CloseCode;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::TunnelContext;

/// How often the store is asked for revocations.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Polls until `shutdown`.
pub async fn watch(ctx: Arc<TunnelContext>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if ctx.registry.is_empty() {
            continue;
        }
        match ctx.store.revoked_ids().await {
            Ok(ids) => {
                for id in ids {
                    let n =
                        ctx.registry
                            .close_connector(&id, CloseCode::Revoked, "connector revoked");
                    if n > 0 {
                        info!(connector = %id, tunnels = n, "revoked connector disconnected");
                    }
                }
            }
            Err(e) => warn!(error = %e, "revocation poll failed"),
        }
    }
}
