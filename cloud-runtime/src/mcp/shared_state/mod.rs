//! What every gateway server shares: the endpoint's options and the runtime's parts a call
//! uses (registry, policies, audit trail, telemetry, metrics, store), with the two pieces of
//! state only the MCP side keeps.
//!
//! - [`state_key`]: the key sealing stateless confirmations.
//! - [`elicitations`]: sessions waiting to hear that a user connected an upstream account.
//!
//! Nothing here depends on the rest of [`crate::mcp`], so the server, a tools/call and the
//! upstream-account requests all build on it without importing each other.

pub mod elicitations;
pub mod state_key;

use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditLog;
use crate::audit::digest::DigestKeys;
use crate::metrics::Metrics;
use crate::policy::live::Policies;
use crate::store::Store;
use crate::telemetry::Telemetry;
use crate::tools_changed::ToolsChanged;
use crate::tunnel::registry::Registry;
use elicitations::Elicitations;
use state_key::StateKey;

/// How the MCP endpoint runs.
#[derive(Debug, Clone)]
pub struct McpOptions {
    /// Host names the endpoint answers to (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call (requests without an Origin header are not browsers).
    pub allowed_origins: Vec<String>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Default and maximum time budget of a tool call.
    pub call_timeout: Duration,
    /// The runtime's public base URL (`https://host:port`), for links users open.
    pub public_url: String,
}

/// What every gateway server shares.
#[derive(Debug)]
pub struct Shared {
    /// Online connectors.
    pub registry: Arc<Registry>,
    /// Endpoint options.
    pub options: McpOptions,
    /// The policies in force.
    pub policies: Arc<Policies>,
    /// The audit trail.
    pub audit: AuditLog,
    /// The tenants' keys for argument digests in audit records.
    pub digest_keys: Arc<DigestKeys>,
    /// Spans and log export.
    pub telemetry: Arc<Telemetry>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Seals stateless confirmations.
    pub state_key: StateKey,
    /// Tells live sessions their tools changed.
    pub tools_changed: ToolsChanged,
    /// The store (connect requests, spent confirmations).
    pub store: Store,
    /// Sessions waiting for users to finish connecting upstream accounts.
    pub elicitations: Arc<Elicitations>,
}
