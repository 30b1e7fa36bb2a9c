//! `/sign-in-again/{tenant}`: where a user goes when a connector finds the proof of who they
//! are too old (its `user_proof_max_age`). The browser signs in at the tenant's identity
//! provider again, whatever session it has there; the ID token that comes back is the proof
//! the user's calls carry from then on.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use shared::identity::TenantId;

use crate::html::text_page;
use crate::oauth::{OAuth, authorize};

/// `GET /sign-in-again/{tenant}`.
pub async fn start(
    State(o): State<Arc<OAuth>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(tenant) = tenant.parse::<TenantId>() else {
        return text_page(
            StatusCode::NOT_FOUND,
            "Unknown link",
            "This link is not valid.",
        );
    };
    authorize::fresh_sign_in(&o, &headers, tenant.as_str(), "/sign-in-again/done").await
}

/// `GET /sign-in-again/done`.
pub async fn done() -> Response {
    text_page(
        StatusCode::OK,
        "Signed in",
        "You signed in again. Return to your agent; it can call the tool again.",
    )
}
