//! Names the caller of every MCP request: attaches the [`Principal`] (tenant, user, agent) to
//! the request, or refuses it.
//!
//! In production both identities come from OAuth ([`crate::oauth::bearer`]). The explicit
//! development mode (`serve --dev-unauthenticated`, refused on non-loopback addresses) names
//! every request with a fixed principal instead ([`Principal::dev`]), for the conformance
//! suite and local tinkering.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::identity::TenantId;

use crate::identity::{GatewayName, Principal};
use crate::oauth::OAuth;
use crate::oauth::bearer;

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
    // Anything that is not a tenant and a gateway name is no gateway, and never reaches a
    // response header (the 401 challenge names the gateway).
    let (Ok(tenant), Ok(gateway)) = (tenant.parse::<TenantId>(), GatewayName::parse(&gateway))
    else {
        return (StatusCode::NOT_FOUND, "no such gateway").into_response();
    };
    let principal = match &auth {
        Auth::DevUnauthenticated => Principal::dev(tenant),
        Auth::OAuth(o) => match bearer::authenticate(o, req.headers(), &tenant, &gateway).await {
            Ok(p) => p,
            Err(resp) => return resp,
        },
    };
    req.extensions_mut().insert(principal);
    next.run(req).await
}
