//! Who acts in the tenant and where: its users (ids, names, groups), its agents (roles,
//! OAuth client bindings), never a secret or a key; and its gateways with their MCP URLs.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::json;

use super::AdminApi;
use super::auth;
use super::problem::Problem;
use super::tokens::Scope;
use crate::tenancy::{self, TenancyError};

/// `GET /admin/api/v1/t/{tenant}/users`.
pub async fn users(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::UsersRead).await?;
    let users = tenancy::users(&api.store, &admin.tenant)
        .await
        .map_err(|e| match e {
            TenancyError::Store(e) => Problem::from(e),
            other => Problem::unavailable(other.to_string()),
        })?;
    Ok(Json(json!({ "users": users })))
}

/// `GET /admin/api/v1/t/{tenant}/agents`.
pub async fn agents(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::AgentsRead).await?;
    let agents: Vec<serde_json::Value> = api
        .store
        .agents(admin.tenant.as_str())
        .await?
        .into_iter()
        .map(|a| json!({"name": a.name, "role": a.role, "oauth_client_id": a.oauth_client_id}))
        .collect();
    Ok(Json(json!({ "agents": agents })))
}

/// `POST /admin/api/v1/t/{tenant}/agents/{name}/rotate-key`: a new key, shown once in the
/// answer; the old one is refused from the next request on.
pub async fn rotate_agent_key(
    State(api): State<Arc<AdminApi>>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::AgentsWrite).await?;
    let key = rotate_key(&api, &admin, &name).await?;
    Ok(Json(json!({ "agent": name, "key": key })))
}

/// Rotates `admin`'s tenant's agent `name`'s key and records the act; the new key.
pub async fn rotate_key(
    api: &AdminApi,
    admin: &auth::Admin,
    name: &str,
) -> Result<String, Problem> {
    let key = tenancy::rotate_agent_key(&api.store, &admin.tenant, name)
        .await
        .map_err(|e| match e {
            TenancyError::Store(e) => Problem::from(e),
            TenancyError::NoAgent { .. } => Problem::not_found("this tenant has no such agent"),
            other => Problem::bad_request(other.to_string()),
        })?;
    // Rotated already: a failure to record it is logged, and the key still given.
    let _ = super::record_act(
        api,
        admin,
        "admin.agent.rotate_key",
        super::Acted::Object(name),
    )
    .await;
    Ok(key.0)
}

/// `GET /admin/api/v1/t/{tenant}/gateways`: each with the URL an MCP client connects to.
pub async fn gateways(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::GatewaysRead).await?;
    let gateways: Vec<serde_json::Value> = api
        .store
        .gateways(Some(admin.tenant.as_str()))
        .await?
        .into_iter()
        .map(|g| {
            json!({
                "mcp_url": format!("{}/t/{}/g/{}/mcp", api.public_url, g.tenant, g.name),
                "name": g.name,
                "tools": g.tools,
                "instructions": g.instructions,
            })
        })
        .collect();
    Ok(Json(json!({ "gateways": gateways })))
}
