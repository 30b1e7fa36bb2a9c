//! The MCP endpoint: Streamable HTTP (rmcp on axum) for every gateway of every tenant, at
//! `/t/{tenant}/g/{gateway}/mcp`. This module is the MCP surface only: who is calling lives
//! in [`crate::identity`], the decisions in [`crate::policy`], OAuth in [`crate::oauth`].
//!
//! - [`authenticate`]: names the caller of each request ([`crate::identity::Principal`]).
//! - [`gateways`]: one rmcp service per gateway, each with its own sessions, so a session
//!   opened on one gateway is unknown (404) on every other.
//! - [`server`]: the MCP server of one gateway: tools/list from the tenant's online
//!   connectors, tools/call through the tunnel.
//! - [`shared_state`]: what every gateway server shares (options, registry, policies, audit).
//! - [`call`]: one tools/call, step by step: resolve, decide, hooks, audit, route, relay.
//! - [`refusal`]: every way a request ends without a tool's result, and its JSON-RPC answer.
//! - [`upstream_account`]: sending users to connect their upstream accounts (URL
//!   elicitation) when a connector needs it.
//! - [`confirm`]: asking the user to confirm a call, in each protocol revision's form.
//! - [`relay`]: carries a call's progress, logs and questions between tunnel and client.
//! - [`convert`]: tunnel tool specs and results to MCP types.
//! - [`jsonrpc_guard`]: JSON-RPC errors for malformed, batched, oversize or slow bodies.

pub mod approval;
pub mod authenticate;
pub mod browser_link;
pub mod call;
pub mod confirm;
pub mod convert;
pub mod gateways;
pub mod jsonrpc_guard;
pub mod refusal;
pub mod relay;
pub mod server;
pub mod shared_state;
pub mod upstream_account;
