//! The approval page (`/approve/{id}`): what a call will do, in the connector's words, and a
//! button that signs the user in again at the tenant's identity provider with the
//! connector's nonce ([`crate::mcp::approval`]). The ID token that comes back is kept as the
//! approval only when the user who signed in is the one who must approve.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::html::{escape, page, text_page};
use crate::oauth::{OAuth, authorize, secret};
use crate::store::approval::ApprovalRow;

fn unavailable() -> Response {
    text_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "The approval could not be loaded. Try again.",
    )
}

/// The approval `id`, if it is still open.
async fn open(o: &OAuth, id: &str) -> Result<ApprovalRow, Response> {
    let well_formed = id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(text_page(
            StatusCode::NOT_FOUND,
            "Unknown link",
            "This link is not valid.",
        ));
    }
    match o.store.approval(id).await {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(text_page(
            StatusCode::NOT_FOUND,
            "Link expired",
            "This approval has expired or was used already. Call the tool again for a new one.",
        )),
        Err(_) => Err(unavailable()),
    }
}

/// `GET /approve/{id}`: what the call will do, and the button to approve it.
pub async fn show(State(o): State<Arc<OAuth>>, Path(id): Path<String>) -> Response {
    let row = match open(&o, &id).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if row.approved {
        return text_page(
            StatusCode::OK,
            "Approved",
            "You approved this call. Return to your agent; it can call the tool again.",
        );
    }
    page(
        StatusCode::OK,
        "Approve this call?",
        &format!(
            "<p>Your agent asks to run, as you:</p><pre>{summary}</pre>\
             <p>The connector inside your network runs it only with your approval, given by \
             signing in again at your identity provider. Approve only if you asked for exactly this.</p>\
             <p><a href=\"/approve/{id}/sign-in\">Approve at your identity provider</a></p>",
            summary = escape(&row.summary),
            id = escape(&row.id),
        ),
    )
}

/// `GET /approve/{id}/sign-in`: to the identity provider, with the connector's nonce.
pub async fn sign_in(
    State(o): State<Arc<OAuth>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let row = match open(&o, &id).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let pending_id = secret::generate("");
    if o.store
        .set_approval_pending(&row.id, &pending_id)
        .await
        .is_err()
    {
        return unavailable();
    }
    authorize::approval_sign_in(
        &o,
        &headers,
        &row.tenant,
        &format!("/approve/{}", row.id),
        &row.nonce,
        pending_id,
    )
    .await
}
