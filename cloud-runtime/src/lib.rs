//! The cloud runtime: the public, multi-tenant side of the product.
//!
//! It runs the CA that identifies connectors, enrolls them with one-time join tokens, accepts
//! their outbound mutual-TLS QUIC tunnels, keeps track of which are online, and routes tool
//! calls to them.
//!
//! - [`data_dir`]: what `init` creates (CA, server certificate, config, store).
//! - [`config_error`]: bad configuration, which the command line exits 64 for.
//! - [`store`]: tenants, join tokens, connectors (SQLite, portable SQL).
//! - [`join_token`]: minting, issuing and parsing one-time join tokens.
//! - [`tenancy`]: what operators set up in a tenant: users, agents, gateways, the identity
//!   provider.
//! - [`enroll`]: the HTTPS enrollment endpoint.
//! - [`https`]: TLS + HTTP serving with limits.
//! - [`tls`]: TLS configurations for QUIC (mTLS) and HTTPS.
//! - [`tunnel`]: the QUIC listener, sessions, registry, calls and revocation.
//! - [`cluster`]: replicas joined over NATS: a call reaches the replica holding the tunnel.
//! - [`identity`]: who is calling (principal) and the names that say so.
//! - [`mcp`]: the MCP endpoint (Streamable HTTP) of every gateway.
//! - [`oauth`]: OAuth 2.1 for MCP clients (metadata, registration, authorization, tokens).
//! - [`policy`]: the permission intersection, policy files, hooks.
//! - [`tools_changed`]: notices that a tenant's tools may have changed.
//! - [`connect`]: the pages where users connect their upstream accounts.
//! - [`html`]: the HTML page helper (escaping, the protective headers of every page).
//! - [`rate_limit`]: per-address limits on the endpoints reachable before authentication.
//! - [`audit`]: the tamper-evident audit trail and its OpenTelemetry export.
//! - [`metrics`]: Prometheus metrics.
//! - [`telemetry`]: OpenTelemetry spans of tool calls.
//! - [`admin`]: the local admin socket (diagnostic calls, online list).
//! - [`admin_api`]: the tenant admin API over HTTPS (admin tokens, connectors, join
//!   tokens), with its OpenAPI document.
//! - [`admin_console`]: the tenant admin web console (server-rendered, signed-in admins).
//! - [`runtime_keys`]: where `serve` takes its secret keys from (files, or sealed copies).
//! - [`sealed_keys`]: the runtime's secret keys in the shared store, sealed with the
//!   operator's key-encryption key, for replicas.
//! - [`server`]: composes the above into `serve`.

#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_api;
pub mod admin_console;
pub mod approve;
pub mod audit;
pub mod cluster;
pub mod config_error;
pub mod connect;
pub mod data_dir;
pub mod enroll;
pub mod health;
pub mod html;
pub mod https;
pub mod identity;
pub mod join_token;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod policy;
pub mod rate_limit;
pub mod replica;
pub mod runtime_keys;
pub mod sealed_keys;
pub mod server;
pub mod sign_in_again;
pub mod store;
pub mod telemetry;
pub mod tenancy;
pub mod tls;
pub mod tools_changed;
pub mod tunnel;
