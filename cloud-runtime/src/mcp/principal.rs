//! Who is calling: every MCP request carries two identities, the human user and the agent
//! (application) acting for them, within one tenant.
//!
//! In production both come from OAuth ([`crate::oauth::bearer`]). The explicit development
//! mode (`serve --dev-unauthenticated`, refused on non-loopback addresses) names every
//! request with a fixed principal instead, for the conformance suite and local tinkering.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::identity::{TenantId, UserId};

use crate::oauth::{OAuth, bearer};

/// The identities behind one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Tenant (from the URL, confirmed by the credentials).
    pub tenant: TenantId,
    /// The human user's stable id: what grants, sessions, the connector's vault entries and
    /// audit records follow.
    pub user_id: UserId,
    /// The human user's name (display; names can pass to someone else).
    pub user: String,
    /// The user's groups (their grants), as asserted when their token was issued.
    pub groups: Vec<String>,
    /// The agent application.
    pub agent: String,
    /// The agent's role.
    pub role: String,
}

/// Whether `s` is usable as a user, agent, role or group name: 1 to 64 of letters, digits,
/// '.', '_', '-', '@'. One rule for names typed by an admin and names asserted by an identity
/// provider, so neither can smuggle separators into audit records or the tunnel.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

/// User name of the development principal.
pub const DEV_USER: &str = "dev-user";
/// Agent name of the development principal.
pub const DEV_AGENT: &str = "dev-agent";
/// Role of the development agent (define it in the tenant policy to allow tools).
pub const DEV_ROLE: &str = "dev";
/// Group of the development user.
pub const DEV_GROUP: &str = "dev";

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Loopback-only, unauthenticated development.
    DevUnauthenticated,
    /// OAuth bearer token plus agent identity.
    OAuth(Arc<OAuth>),
}

/// Middleware: attaches the [`Principal`] to the request or refuses it.
pub async fn authenticate(
    State(auth): State<Auth>,
    Path((tenant, gateway)): Path<(String, String)>,
    mut req: Request,
    next: Next,
) -> Response {
    // Gateway names follow the tenant-name rules; anything else is no gateway, and never
    // reaches a response header (the 401 challenge names the gateway).
    let (Ok(tenant_id), Ok(_)) = (tenant.parse::<TenantId>(), gateway.parse::<TenantId>()) else {
        return (StatusCode::NOT_FOUND, "no such gateway").into_response();
    };
    let principal = match &auth {
        Auth::DevUnauthenticated => Principal {
            tenant: tenant_id,
            user_id: UserId::from_bytes(&[0; 16]),
            user: DEV_USER.to_owned(),
            groups: vec![DEV_GROUP.to_owned()],
            agent: DEV_AGENT.to_owned(),
            role: DEV_ROLE.to_owned(),
        },
        Auth::OAuth(o) => match bearer::authenticate(o, req.headers(), &tenant, &gateway).await {
            Ok(p) => p,
            Err(resp) => return resp,
        },
    };
    req.extensions_mut().insert(principal);
    next.run(req).await
}
