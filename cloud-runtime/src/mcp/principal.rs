//! Who is calling: every MCP request carries two identities, the human user and the agent
//! (application) acting for them, within one tenant.
//!
//! Today the only way in is the explicit development mode (`serve --dev-unauthenticated`),
//! which refuses to start on a non-loopback address and calls every request the fixed
//! principal below. Requests in any other mode are refused with 401 until user sign-in
//! (OAuth 2.1) is available.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::identity::TenantId;

/// The identities behind one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Tenant (from the URL, confirmed by the credentials).
    pub tenant: TenantId,
    /// The human user.
    pub user: String,
    /// The agent application.
    pub agent: String,
}

/// User name of the development principal.
pub const DEV_USER: &str = "dev-user";
/// Agent name of the development principal.
pub const DEV_AGENT: &str = "dev-agent";

/// Authentication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Loopback-only, unauthenticated development.
    DevUnauthenticated,
    /// Production: refuses until OAuth sign-in exists.
    Required,
}

/// Middleware: attaches the [`Principal`] to the request or refuses it.
pub async fn authenticate(
    State(mode): State<AuthMode>,
    Path((tenant, _gateway)): Path<(String, String)>,
    mut req: Request,
    next: Next,
) -> Response {
    let Ok(tenant) = tenant.parse::<TenantId>() else {
        return (StatusCode::NOT_FOUND, "no such gateway").into_response();
    };
    match mode {
        AuthMode::DevUnauthenticated => {
            req.extensions_mut().insert(Principal {
                tenant,
                user: DEV_USER.to_owned(),
                agent: DEV_AGENT.to_owned(),
            });
            next.run(req).await
        }
        AuthMode::Required => (
            StatusCode::UNAUTHORIZED,
            "user sign-in is not available yet; run `serve --dev-unauthenticated` on a loopback address for development",
        )
            .into_response(),
    }
}
