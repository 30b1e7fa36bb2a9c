//! The users' upstream connections: who connected which provider, at which connector. The
//! tokens live in each connector's vault, not here, so every online connector of the
//! tenant is asked over its tunnel ([`crate::tunnel::registry::Registry::connections`]),
//! and a revocation is the connector's own act (the tokens leave its vault; the user's next
//! call asks them to connect again), recorded in its audit log and in the runtime's.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::call::CallFailure;
use shared::identity::ConnectorId;
use shared::wire::{self, ErrorCode};

use super::auth::{self, Admin};
use super::problem::Problem;
use super::tokens::Scope;
use super::{Acted, AdminApi};
use crate::store::ConnectorStatus;

/// How long a connector has to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest provider or user name a revocation may name.
const MAX_NAME: usize = 200;

/// One connection, as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct ConnectionView {
    /// The connector that holds it.
    pub connector: String,
    /// What the connector said about it.
    #[serde(flatten)]
    pub connection: wire::UpstreamConnection,
    /// The user's name here, when the connector keys them by this runtime's user id.
    pub user_name: Option<String>,
}

/// A connector that could not be asked, and why.
#[derive(Debug, Serialize)]
pub struct Unreachable {
    /// Its id.
    pub connector: String,
    /// Why.
    pub message: String,
}

/// The connections every online connector of `admin`'s tenant holds, and the connectors
/// that did not answer.
pub async fn connections(
    api: &AdminApi,
    admin: &Admin,
) -> Result<(Vec<ConnectionView>, Vec<Unreachable>), Problem> {
    let online: Vec<String> = api
        .store
        .connectors()
        .await?
        .into_iter()
        .filter(|c| c.tenant == admin.tenant.as_str() && c.status == ConnectorStatus::Online)
        .map(|c| c.id)
        .collect();
    let names: std::collections::HashMap<String, String> = api
        .store
        .users(admin.tenant.as_str())
        .await?
        .into_iter()
        .map(|u| (u.id.to_string(), u.name))
        .collect();
    let answers = join_all(online.iter().map(|id| ask(api, admin, id, None))).await;
    let mut found = Vec::new();
    let mut unreachable = Vec::new();
    for (id, answer) in online.into_iter().zip(answers) {
        let listed = answer.and_then(|out| {
            #[derive(Deserialize)]
            struct Listed {
                connections: Vec<wire::UpstreamConnection>,
            }
            serde_json::from_slice::<Listed>(&out.structured_json)
                .map(|l| l.connections)
                .map_err(|e| CallFailure::new(ErrorCode::Malformed, e.to_string()))
        });
        match listed {
            Ok(list) => found.extend(list.into_iter().map(|c| ConnectionView {
                connector: id.clone(),
                user_name: names.get(&c.user).cloned(),
                connection: c,
            })),
            Err(f) => unreachable.push(Unreachable {
                connector: id,
                message: f.message,
            }),
        }
    }
    Ok((found, unreachable))
}

/// Asks connector `id` for its connections, or (`revoke`: provider and user) to revoke one.
async fn ask(
    api: &AdminApi,
    admin: &Admin,
    id: &str,
    revoke: Option<(&str, &str)>,
) -> Result<wire::ToolOutput, CallFailure> {
    let connector: ConnectorId = id.parse().map_err(|_| {
        CallFailure::new(
            ErrorCode::Malformed,
            "a connector id in the store is malformed",
        )
    })?;
    let (revoke_provider, revoke_user) = revoke.unwrap_or_default();
    let request = wire::ConnectionsRequest {
        call_id: api.registry.new_call_id(),
        caller: Some(wire::Caller {
            tenant: admin.tenant.to_string(),
            user: admin.name.clone(),
            agent: admin.via.clone(),
        }),
        revoke_provider: revoke_provider.to_owned(),
        revoke_user: revoke_user.to_owned(),
    };
    api.registry
        .connections(&admin.tenant, &connector, request, ASK_TIMEOUT)
        .await
}

/// Has connector `id` of `admin`'s tenant revoke `user`'s connection at `provider`, and
/// records the act; whether there was one.
pub async fn revoke(
    api: &AdminApi,
    admin: &Admin,
    id: &str,
    provider: &str,
    user: &str,
) -> Result<bool, Problem> {
    let unknown = || Problem::not_found("this tenant has no such connector");
    let connector: ConnectorId = id.parse().map_err(|_| unknown())?;
    // Another tenant's connector is as unknown as one that does not exist.
    match api.store.connector(&connector).await? {
        Some(row) if row.tenant == admin.tenant.as_str() => {}
        _ => return Err(unknown()),
    }
    let bad = |what: &str, v: &str| {
        {
            v.is_empty()
                || v.len() > MAX_NAME
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b))
        }
        .then(|| {
            Problem::bad_request(format!(
                "{what} must be 1 to {MAX_NAME} letters, digits, '_', '-', '.' or '@'"
            ))
        })
    };
    if let Some(p) = bad("provider", provider).or_else(|| bad("user", user)) {
        return Err(p);
    }
    let out = ask(api, admin, id, Some((provider, user)))
        .await
        .map_err(|f| match f.code {
            ErrorCode::InvalidArguments => Problem::bad_request(f.message),
            ErrorCode::Unavailable => Problem::unavailable(f.message),
            _ => Problem::unavailable(format!("the connector did not revoke it: {}", f.message)),
        })?;
    let revoked = serde_json::from_slice::<serde_json::Value>(&out.structured_json)
        .ok()
        .and_then(|v| v.get("revoked").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    let _ = super::record_act(api, admin, "admin.connection.revoke", Acted::Connector(id)).await;
    Ok(revoked)
}

/// `GET /admin/api/v1/t/{tenant}/connections`.
pub async fn list(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::UsersRead).await?;
    let (found, unreachable) = connections(&api, &admin).await?;
    Ok(Json(
        json!({"connections": found, "unreachable": unreachable}),
    ))
}

/// The connection to revoke.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    provider: String,
    user: String,
}

/// `POST /admin/api/v1/t/{tenant}/connectors/{id}/connections/revoke`.
pub async fn post_revoke(
    State(api): State<Arc<AdminApi>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::UsersWrite).await?;
    let RevokeRequest { provider, user } = serde_json::from_slice(&body).map_err(|e| {
        Problem::bad_request(format!(
            "the body must be {{\"provider\": ..., \"user\": ...}}: {e}"
        ))
    })?;
    let revoked = revoke(&api, &admin, &id, &provider, &user).await?;
    Ok(Json(
        json!({"connector": id, "provider": provider, "user": user, "revoked": revoked}),
    ))
}
