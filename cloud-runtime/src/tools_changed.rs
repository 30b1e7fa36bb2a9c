//! "The tools of tenant T may look different now": raised when a connector comes or goes
//! and when a policy is applied, and turned into `notifications/tools/list_changed` for the
//! tenant's live MCP sessions.

use shared::identity::TenantId;
use tokio::sync::broadcast;

/// How many changes a slow session may fall behind before it is told "something changed"
/// without the details (it re-lists anyway).
const BACKLOG: usize = 64;

/// The change notices of one runtime.
#[derive(Debug, Clone)]
pub struct ToolsChanged(broadcast::Sender<TenantId>);

impl Default for ToolsChanged {
    fn default() -> Self {
        Self(broadcast::channel(BACKLOG).0)
    }
}

impl ToolsChanged {
    /// Tells every listener that `tenant`'s tools may have changed.
    pub fn notify(&self, tenant: &TenantId) {
        // No listener (no live session) is not an error.
        let _ = self.0.send(tenant.clone());
    }

    /// A listener for all tenants' notices.
    pub fn subscribe(&self) -> broadcast::Receiver<TenantId> {
        self.0.subscribe()
    }
}
