//! Who may use a tenant's console. A browser signed in (through the runtime's sign-in, at
//! the tenant's identity provider or as a local user) to this tenant, as a user in the
//! tenant's admin group, is its admin; a browser signed in elsewhere, or not at all, is
//! sent to sign in; a user who is not an admin is refused.
//!
//! Every form that changes something carries the session's CSRF token
//! ([`crate::oauth::browser::csrf_token`]) and is refused without it, and a request whose
//! browser says it came from another site is refused whatever it carries.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use shared::identity::TenantId;

use super::Console;
use crate::admin_api::auth::{self, Admin, Session};
use crate::html::text_page;
use crate::oauth::{authorize, browser};

/// A signed-in admin, and the CSRF token their forms carry.
#[derive(Debug, Clone)]
pub struct ConsoleAdmin {
    /// The admin, as the admin API's functions take one.
    pub admin: Admin,
    /// The session's CSRF token.
    pub csrf: String,
}

fn unavailable() -> Response {
    text_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "The store is unavailable; try again shortly.",
    )
}

/// The admin of `tenant` this browser is signed in as; otherwise the response to send
/// (a sign-in that comes back to `here`, or a refusal).
pub async fn admin(
    console: &Console,
    headers: &HeaderMap,
    tenant: &str,
    here: &str,
) -> Result<ConsoleAdmin, Response> {
    let store = &console.api.store;
    let no_tenant = || text_page(StatusCode::NOT_FOUND, "Not found", "No such tenant.");
    let tenant_id: TenantId = tenant.parse().map_err(|_| no_tenant())?;
    if !store
        .tenant_exists(&tenant_id)
        .await
        .map_err(|_| unavailable())?
    {
        return Err(no_tenant());
    }
    let admin = match auth::session(store, headers, &tenant_id)
        .await
        .map_err(|_| unavailable())?
    {
        Session::Admin(admin) => admin,
        Session::None | Session::Elsewhere => {
            return Err(authorize::browser_sign_in(
                &console.oauth,
                headers,
                tenant,
                here,
                &format!("Sign in to administer tenant {tenant}."),
            )
            .await);
        }
        Session::NotAdmin => {
            return Err(text_page(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "You are signed in, but not an administrator of this tenant (ask for its admin group).",
            ));
        }
    };
    let csrf = browser::csrf_token(headers).ok_or_else(unavailable)?;
    Ok(ConsoleAdmin { admin, csrf })
}

/// Like [`admin`], for a form that changes something: also refused (403) without the
/// session's CSRF token in `csrf`, from another site, or without a session at all (a
/// change is never the start of a sign-in).
pub async fn admin_for_change(
    console: &Console,
    headers: &HeaderMap,
    tenant: &str,
    csrf: &str,
) -> Result<ConsoleAdmin, Response> {
    let refused = || {
        text_page(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "This form is stale or did not come from this console: reload the page and try again.",
        )
    };
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site");
    if cross_site || !browser::csrf_matches(headers, csrf) {
        return Err(refused());
    }
    let here = format!("/admin/t/{tenant}/");
    match admin(console, headers, tenant, &here).await {
        Ok(a) => Ok(a),
        Err(resp) if resp.status().is_redirection() => Err(refused()),
        Err(resp) => Err(resp),
    }
}

/// The sign-out form's fields.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token (missing: refused as a wrong one is).
    #[serde(default)]
    pub csrf: String,
}

/// `POST /admin/t/{tenant}/sign-out`: ends the browser's session.
pub async fn sign_out(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Err(resp) = admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        return resp;
    }
    match browser::sign_out(&console.api.store, &headers).await {
        Ok(clear) => {
            let mut resp = Redirect::to(&format!("/admin/t/{tenant}/")).into_response();
            resp.headers_mut().insert(header::SET_COOKIE, clear);
            resp
        }
        Err(_) => unavailable(),
    }
}
