//! OAuth 2.1 for MCP clients, per the MCP authorization specification: the runtime is both
//! the protected resource (each gateway URL) and the authorization server.
//!
//! - [`metadata`]: RFC 9728 protected-resource metadata per gateway, RFC 8414
//!   authorization-server metadata.
//! - [`register`]: RFC 7591 dynamic client registration.
//! - [`client_metadata`]: client ID metadata documents, fetched with SSRF fences.
//! - [`redirect`]: which redirect URIs a client may register (https, or http on loopback).
//! - [`authorize`]: the authorization endpoint (code flow, PKCE S256 only, RFC 8707 resource
//!   indicators), user sign-in (local users) and consent.
//! - [`token`]: the token endpoint: code exchange and refresh-token rotation.
//! - [`signer`]: short-lived, audience-bound ES256 access tokens.
//! - [`bearer`]: checks the token and the agent identity on every MCP request.
//! - [`browser`]: signed-in browser sessions (for connect pages).
//! - [`idp`]: sign-in at the tenant's OpenID Connect identity provider.
//! - [`secret`]: random secrets and their hashes.

pub mod authorize;
pub mod bearer;
pub mod browser;
pub mod client_metadata;
pub mod idp;
pub mod metadata;
pub mod recheck;
pub mod redirect;
pub mod register;
pub mod revoked_clients;
pub mod secret;
pub mod signer;
pub mod token;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use shared::identity::TenantId;

use crate::identity::GatewayName;
use crate::store::Store;
use signer::SignerCell;

/// Lifetime of an access token.
pub const ACCESS_TTL_SECS: i64 = 600;
/// Lifetime of a refresh token.
pub const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// Lifetime of an authorization code.
pub const CODE_TTL_MS: i64 = 60 * 1000;
/// Time a user has to sign in.
pub const PENDING_TTL_MS: i64 = 10 * 60 * 1000;
/// The one scope: use the gateway's tools.
pub const SCOPE: &str = "mcp";

/// What the OAuth endpoints share.
#[derive(Debug)]
pub struct OAuth {
    /// The store.
    pub store: Store,
    /// Issuer URL (`https://host[:port]`), also the base of every resource URL.
    pub issuer: String,
    /// Access-token signer.
    pub signer: Arc<SignerCell>,
    /// Client of tenants' identity providers.
    pub idp: idp::IdpClient,
    /// Fetcher of client ID metadata documents.
    pub metadata: client_metadata::MetadataFetcher,
    /// The clients revoked in each tenant, as every bearer check asks.
    pub revoked_clients: revoked_clients::RevokedClients,
}

impl OAuth {
    /// The resource URL of a gateway (the audience of its tokens).
    pub fn resource_url(&self, tenant: &TenantId, gateway: &GatewayName) -> String {
        format!("{}/t/{tenant}/g/{gateway}/mcp", self.issuer)
    }

    /// Tenant and gateway of one of our resource URLs.
    pub fn parse_resource(&self, resource: &str) -> Option<(TenantId, GatewayName)> {
        let path = resource.strip_prefix(&self.issuer)?;
        let rest = path.strip_prefix("/t/")?.strip_suffix("/mcp")?;
        let (tenant, gateway) = rest.split_once("/g/")?;
        Some((tenant.parse().ok()?, GatewayName::parse(gateway).ok()?))
    }

    /// Where the tenant's identity provider sends the user back.
    pub fn idp_redirect_uri(&self) -> String {
        format!("{}/oauth/idp/callback", self.issuer)
    }

    /// The protected-resource metadata URL of a gateway (RFC 9728 path insertion).
    pub fn metadata_url(&self, tenant: &TenantId, gateway: &GatewayName) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource/t/{tenant}/g/{gateway}/mcp",
            self.issuer
        )
    }
}

/// The OAuth routes.
pub fn routes(oauth: Arc<OAuth>) -> Router {
    Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::authorization_server),
        )
        .route(
            "/.well-known/oauth-protected-resource/t/{tenant}/g/{gateway}/mcp",
            get(metadata::protected_resource),
        )
        .route("/oauth/register", post(register::register))
        .route("/oauth/authorize", get(authorize::authorize))
        .route("/oauth/login", post(authorize::login))
        .route("/oauth/idp/callback", get(authorize::idp_callback))
        .route("/oauth/consent", post(authorize::consent))
        .route("/oauth/consent/deny", post(authorize::deny))
        .route("/oauth/token", post(token::token))
        .with_state(oauth)
}
