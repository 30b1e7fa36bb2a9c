//! Who acts in the tenant and where: its users (ids, names, groups), its agents (roles,
//! OAuth client bindings), never a secret or a key; and its gateways with their MCP URLs.
//! Adding and removing each, an agent's key rotation and its binding to an OAuth client:
//! the functions here are what the API and the console call, each act written to the
//! audit trail as the admin's; the rules (names, secrets made and stored hashed, tool
//! patterns) are [`crate::tenancy`]'s, which the command line uses too.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::AdminApi;
use super::auth;
use super::problem::Problem;
use super::tokens::Scope;
use crate::identity::{GatewayName, valid_name};
use crate::store::{GatewayRow, StoreError};
use crate::tenancy::{self, TenancyError};

/// Longest gateway instructions kept (they are sent to every client at initialize).
const MAX_INSTRUCTIONS: usize = 4096;
/// Most groups a user, or tool patterns a gateway, may be given here.
const MAX_LIST: usize = 64;

/// The answer for what [`tenancy`] refused.
fn refused(e: TenancyError) -> Problem {
    match e {
        TenancyError::Store(StoreError::AlreadyExists(what)) => {
            Problem::conflict(format!("{what}; remove it first or choose another name"))
        }
        TenancyError::Store(e) => Problem::from(e),
        TenancyError::NoUser { .. } => Problem::not_found("this tenant has no such user"),
        TenancyError::NoAgent { .. } => Problem::not_found("this tenant has no such agent"),
        TenancyError::NoClient(_) => Problem::not_found("no OAuth client registered with this id"),
        other => Problem::bad_request(other.to_string()),
    }
}

/// `name` if it is a usable user, agent, role or group name.
fn name<'a>(value: &'a str, what: &str) -> Result<&'a str, Problem> {
    if valid_name(value) {
        Ok(value)
    } else {
        let shown: String = value.chars().take(64).collect();
        Err(Problem::bad_request(format!(
            "{what} {shown:?} must be 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

/// A JSON body, or 400 saying what it should have been.
fn body<'a, T: Deserialize<'a>>(bytes: &'a [u8], shape: &str) -> Result<T, Problem> {
    serde_json::from_slice(bytes)
        .map_err(|e| Problem::bad_request(format!("the body must be {shape}: {e}")))
}

/// A local user to add.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Their name.
    pub name: String,
    /// Their groups (grants).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Also put them in the tenant's admin group.
    #[serde(default)]
    pub admin: bool,
}

/// Adds `user` to `admin`'s tenant and records the act; their id, groups and sign-in
/// secret (to be shown once).
pub async fn add_user(
    api: &AdminApi,
    admin: &auth::Admin,
    user: NewUser,
) -> Result<(tenancy::AddedUser, Vec<String>), Problem> {
    name(&user.name, "user name")?;
    if user.groups.len() > MAX_LIST {
        return Err(Problem::bad_request(format!("at most {MAX_LIST} groups")));
    }
    let mut groups = Vec::with_capacity(user.groups.len() + 1);
    for g in user.groups {
        name(&g, "group")?;
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    if user.admin {
        let group = api.store.admin_group(admin.tenant.as_str()).await?;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    let added = tenancy::add_user(&api.store, &admin.tenant, &user.name, &groups)
        .await
        .map_err(refused)?;
    let _ = super::record_act(
        api,
        admin,
        "admin.user.add",
        super::Acted::Object(&user.name),
    )
    .await;
    Ok((added, groups))
}

/// `POST /admin/api/v1/t/{tenant}/users`: a local user, with their sign-in secret shown
/// once in the answer.
pub async fn create_user(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::UsersWrite).await?;
    let user: NewUser = body(&bytes, r#"{"name": ..., "groups": [...], "admin": false}"#)?;
    let user_name = user.name.clone();
    let (added, groups) = add_user(&api, &admin, user).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": added.id.to_string(), "name": user_name, "groups": groups, "secret": added.secret}),
        ),
    ))
}

/// Removes `admin`'s tenant's user `user` (their refresh tokens and browser sessions end
/// now) and records the act.
pub async fn remove_user(api: &AdminApi, admin: &auth::Admin, user: &str) -> Result<(), Problem> {
    tenancy::remove_user(&api.store, &admin.tenant, user)
        .await
        .map_err(refused)?;
    let _ = super::record_act(api, admin, "admin.user.remove", super::Acted::Object(user)).await;
    Ok(())
}

/// `DELETE /admin/api/v1/t/{tenant}/users/{name}`.
pub async fn delete_user(
    State(api): State<Arc<AdminApi>>,
    Path((tenant, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::UsersWrite).await?;
    remove_user(&api, &admin, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An agent to register.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    /// Its name.
    pub name: String,
    /// Its role in the tenant's policy.
    pub role: String,
    /// An OAuth client bound to it, if any.
    #[serde(default)]
    pub oauth_client_id: Option<String>,
}

/// Registers `agent` in `admin`'s tenant and records the act; its key (to be shown once).
pub async fn create_agent(
    api: &AdminApi,
    admin: &auth::Admin,
    agent: NewAgent,
) -> Result<String, Problem> {
    name(&agent.name, "agent name")?;
    name(&agent.role, "role")?;
    let client = agent.oauth_client_id.filter(|c| !c.is_empty());
    if let Some(c) = &client
        && api.store.client(c).await?.is_none()
    {
        return Err(refused(TenancyError::NoClient(c.clone())));
    }
    let key = tenancy::create_agent(&api.store, &admin.tenant, &agent.name, &agent.role, client)
        .await
        .map_err(refused)?;
    let _ = super::record_act(
        api,
        admin,
        "admin.agent.create",
        super::Acted::Object(&agent.name),
    )
    .await;
    Ok(key.0)
}

/// `POST /admin/api/v1/t/{tenant}/agents`: an agent, with its key shown once in the answer.
pub async fn post_agent(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::AgentsWrite).await?;
    let agent: NewAgent = body(
        &bytes,
        r#"{"name": ..., "role": ..., "oauth_client_id": null}"#,
    )?;
    let (agent_name, role, client) = (
        agent.name.clone(),
        agent.role.clone(),
        agent.oauth_client_id.clone(),
    );
    let key = create_agent(&api, &admin, agent).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"name": agent_name, "role": role, "oauth_client_id": client.filter(|c| !c.is_empty()), "key": key}),
        ),
    ))
}

/// Removes `admin`'s tenant's agent `agent` (its key refused from the next request on)
/// and records the act.
pub async fn remove_agent(api: &AdminApi, admin: &auth::Admin, agent: &str) -> Result<(), Problem> {
    tenancy::remove_agent(&api.store, &admin.tenant, agent)
        .await
        .map_err(refused)?;
    let _ = super::record_act(
        api,
        admin,
        "admin.agent.remove",
        super::Acted::Object(agent),
    )
    .await;
    Ok(())
}

/// `DELETE /admin/api/v1/t/{tenant}/agents/{name}`.
pub async fn delete_agent(
    State(api): State<Arc<AdminApi>>,
    Path((tenant, agent)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::AgentsWrite).await?;
    remove_agent(&api, &admin, &agent).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Binds `admin`'s tenant's agent `agent` to the registered OAuth client `client_id` (its
/// users' tokens then act as that agent) and records the act.
pub async fn bind_client(
    api: &AdminApi,
    admin: &auth::Admin,
    agent: &str,
    client_id: &str,
) -> Result<(), Problem> {
    tenancy::bind_agent_client(&api.store, &admin.tenant, agent, client_id)
        .await
        .map_err(refused)?;
    let _ = super::record_act(
        api,
        admin,
        "admin.agent.bind_client",
        super::Acted::Object(agent),
    )
    .await;
    Ok(())
}

/// The OAuth client to bind an agent to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientBinding {
    client_id: String,
}

/// `POST /admin/api/v1/t/{tenant}/agents/{name}/bind-client`.
pub async fn post_bind_client(
    State(api): State<Arc<AdminApi>>,
    Path((tenant, agent)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::AgentsWrite).await?;
    let ClientBinding { client_id } = body(&bytes, r#"{"client_id": ...}"#)?;
    bind_client(&api, &admin, &agent, &client_id).await?;
    Ok(Json(json!({"agent": agent, "oauth_client_id": client_id})))
}

/// A gateway to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGateway {
    /// Its name (the URL segment).
    pub name: String,
    /// The tool-name patterns it exposes.
    pub tools: Vec<String>,
    /// Text sent to clients at initialize.
    #[serde(default)]
    pub instructions: Option<String>,
}

/// Creates `gateway` in `admin`'s tenant and records the act; its row.
pub async fn create_gateway(
    api: &AdminApi,
    admin: &auth::Admin,
    gateway: NewGateway,
) -> Result<GatewayRow, Problem> {
    let gateway_name = GatewayName::parse(&gateway.name)
        .map_err(|e| Problem::bad_request(format!("gateway name: {e}")))?;
    if gateway.tools.len() > MAX_LIST {
        return Err(Problem::bad_request(format!(
            "at most {MAX_LIST} tool patterns"
        )));
    }
    let tools = tenancy::tool_patterns(gateway.tools).map_err(refused)?;
    let instructions = gateway.instructions.filter(|i| !i.trim().is_empty());
    if instructions
        .as_ref()
        .is_some_and(|i| i.len() > MAX_INSTRUCTIONS)
    {
        return Err(Problem::bad_request(format!(
            "instructions may be at most {MAX_INSTRUCTIONS} bytes"
        )));
    }
    let row = GatewayRow {
        tenant: admin.tenant.to_string(),
        name: gateway_name.to_string(),
        instructions,
        tools,
    };
    api.store
        .create_gateway(&row)
        .await
        .map_err(|e| refused(TenancyError::Store(e)))?;
    let _ = super::record_act(
        api,
        admin,
        "admin.gateway.create",
        super::Acted::Object(&row.name),
    )
    .await;
    Ok(row)
}

/// The JSON of `gateway` as the API shows it, with its MCP URL.
fn gateway_json(api: &AdminApi, g: &GatewayRow) -> serde_json::Value {
    json!({
        "mcp_url": format!("{}/t/{}/g/{}/mcp", api.public_url, g.tenant, g.name),
        "name": g.name,
        "tools": g.tools,
        "instructions": g.instructions,
    })
}

/// `POST /admin/api/v1/t/{tenant}/gateways`.
pub async fn post_gateway(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::GatewaysWrite).await?;
    let gateway: NewGateway = body(
        &bytes,
        r#"{"name": ..., "tools": [...], "instructions": null}"#,
    )?;
    let row = create_gateway(&api, &admin, gateway).await?;
    Ok((StatusCode::CREATED, Json(gateway_json(&api, &row))))
}

/// Removes `admin`'s tenant's gateway `gateway` and records the act.
pub async fn remove_gateway(
    api: &AdminApi,
    admin: &auth::Admin,
    gateway: &str,
) -> Result<(), Problem> {
    if !api
        .store
        .remove_gateway(admin.tenant.as_str(), gateway)
        .await?
    {
        return Err(Problem::not_found("this tenant has no such gateway"));
    }
    let _ = super::record_act(
        api,
        admin,
        "admin.gateway.remove",
        super::Acted::Object(gateway),
    )
    .await;
    Ok(())
}

/// `DELETE /admin/api/v1/t/{tenant}/gateways/{name}`.
pub async fn delete_gateway(
    State(api): State<Arc<AdminApi>>,
    Path((tenant, gateway)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::GatewaysWrite).await?;
    remove_gateway(&api, &admin, &gateway).await?;
    Ok(StatusCode::NO_CONTENT)
}

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
        .map(|g| gateway_json(&api, &g))
        .collect();
    Ok(Json(json!({ "gateways": gateways })))
}
