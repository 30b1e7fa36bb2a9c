//! The MCP endpoint: Streamable HTTP (rmcp on axum) for every gateway of every tenant, at
//! `/t/{tenant}/g/{gateway}/mcp`.
//!
//! - [`principal`]: who is calling (tenant, user, agent), attached to each request.
//! - [`gateways`]: one rmcp service per gateway, each with its own sessions, so a session
//!   opened on one gateway is unknown (404) on every other.
//! - [`server`]: the MCP server of one gateway: tools/list from the tenant's online
//!   connectors, tools/call through the tunnel.
//! - [`authorization`]: sending users to connect their upstream accounts (URL elicitation).
//! - [`call`]: one tools/call: decision, hooks, audit, the tunnel.
//! - [`confirm`]: asking the user to confirm a call, in each protocol revision's form.
//! - [`relay`]: carries a call's progress, logs and questions between tunnel and client.
//! - [`convert`]: tunnel tool specs and results to MCP types.
//! - [`jsonrpc_guard`]: JSON-RPC errors for malformed, batched, oversize or slow bodies.

pub mod authorization;
pub mod call;
pub mod confirm;
pub mod convert;
pub mod gateways;
pub mod jsonrpc_guard;
pub mod principal;
pub mod relay;
pub mod server;

use std::time::Duration;

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
