//! The OAuth clients that act in the tenant: each with the name it registered with, the
//! hosts its authorizations go to, when it first and last got tokens here, and the agent it
//! acts as; and revocation, after which it gets no token in the tenant and its refresh
//! tokens are spent, and an access token it holds is refused within a second
//! ([`crate::oauth::revoked_clients`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::auth::{self, Admin};
use super::problem::Problem;
use super::tokens::Scope;
use super::{Acted, AdminApi};
use crate::store::client_grants::ClientGrant;

/// One client as the API shows it.
pub fn view(c: &ClientGrant) -> Value {
    json!({
        "client_id": c.client_id,
        "client_name": c.client_name,
        "redirect_hosts": c.redirect_hosts(),
        "first_used_at_ms": c.first_used_at,
        "last_used_at_ms": c.last_used_at,
        "revoked_at_ms": c.revoked_at,
        "agent": c.agent,
    })
}

/// `GET /admin/api/v1/t/{tenant}/clients`.
pub async fn list(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::ClientsRead).await?;
    let clients = api.store.client_grants(admin.tenant.as_str()).await?;
    Ok(Json(
        json!({ "clients": clients.iter().map(view).collect::<Vec<_>>() }),
    ))
}

/// `POST /admin/api/v1/t/{tenant}/clients/{id}/revoke`: revoking again changes nothing.
pub async fn revoke(
    State(api): State<Arc<AdminApi>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::ClientsWrite).await?;
    let revoked_now = revoke_client(&api, &admin, &id).await?;
    Ok(Json(json!({
        "client_id": id,
        "status": "revoked",
        "already_revoked": !revoked_now,
    })))
}

/// Revokes `admin`'s tenant's client `id` and records the act; false if it was revoked
/// already. A client that never acted in the tenant is as unknown as one that does not
/// exist.
pub async fn revoke_client(api: &AdminApi, admin: &Admin, id: &str) -> Result<bool, Problem> {
    if id.len() > 256 {
        return Err(Problem::not_found("no such client acts in this tenant"));
    }
    match api
        .store
        .revoke_client_grant(admin.tenant.as_str(), id)
        .await?
    {
        None => Err(Problem::not_found("no such client acts in this tenant")),
        Some(now) => {
            if now {
                let _ =
                    super::record_act(api, admin, "admin.client.revoke", Acted::Object(id)).await;
            }
            Ok(now)
        }
    }
}
