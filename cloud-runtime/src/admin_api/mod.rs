//! The tenant admin API: JSON over HTTPS under `/admin/api/v1/t/{tenant}/...`, described
//! by the OpenAPI 3.1 document served at `/admin/api/v1/openapi.json`, for a tenant's own
//! administrators and their automation. Platform operators keep the command line on the
//! runtime's host; both reach the same functions here and in [`crate::join_token`] and the
//! store.
//!
//! - [`tokens`]: admin API tokens: made on the runtime's host (`cloud-runtime admin-token`),
//!   shown once, stored hashed, bound to one tenant and a set of [`tokens::Scope`]s,
//!   expiring, revocable.
//! - [`auth`]: who is calling: 401 without a usable token, 404 for a tenant the token is
//!   not of (nothing about other tenants leaks), 403 without the endpoint's scope.
//! - [`connectors`]: the tenant's connectors, join tokens with the exact install-and-enroll
//!   commands, revocation; each change written to the audit trail as the admin's act.
//! - [`policy`]: the policy in force and its revisions, validating a proposed file,
//!   previewing it (diff and dry run), applying one, rolling back to a revision.
//! - [`audit`]: the tenant's audit records: search, NDJSON export, chain verification.
//! - [`connections`]: the users' upstream connections, which each connector holds in its
//!   vault, listed and revoked over the tunnel.
//! - [`clients`]: the OAuth clients that act in the tenant, and their revocation.
//! - [`principals`]: the tenant's users and agents (never a secret or key; an agent's key
//!   rotated), and its gateways with their MCP URLs.
//! - [`openapi`]: the document.
//! - [`problem`]: error answers, `{"error": code, "message": text}`.

pub mod audit;
pub mod auth;
pub mod clients;
pub mod connections;
pub mod connectors;
pub mod openapi;
pub mod policy;
pub mod principals;
pub mod problem;
pub mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, delete, get, post};

use std::path::PathBuf;

use crate::audit::AuditLog;
use crate::audit::record::{AuditRecord, Kind};
use crate::store::Store;

/// The path every admin API route starts with.
pub const BASE: &str = "/admin/api/v1";

/// What the admin API's handlers share.
#[derive(Debug)]
pub struct AdminApi {
    /// The store.
    pub store: Store,
    /// The audit trail, where each change is written as the admin's act.
    pub audit: AuditLog,
    /// The runtime's HTTPS endpoint as connectors enroll at it (`host:port`).
    pub enroll_endpoint: String,
    /// The CA fingerprint connectors pin at enrollment (`sha256:...`).
    pub ca_fingerprint: String,
    /// The runtime's public base URL (`https://host:port`), which gateway URLs start with.
    pub public_url: String,
    /// The single-process audit log (runtimes on SQLite), for verification.
    pub audit_file: PathBuf,
    /// One permit: a verification reads every chain, so they take turns.
    pub verifying: tokio::sync::Semaphore,
    /// The live connectors, for the tools a policy preview decides.
    pub registry: Arc<crate::tunnel::registry::Registry>,
}

/// What an admin's act was done to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Acted<'a> {
    /// Nothing in particular (an export).
    Nothing,
    /// A connector (its id).
    Connector(&'a str),
    /// Another object (an agent's name).
    Object(&'a str),
}

/// Writes an admin's act to the audit trail and waits until it is written; a failure is
/// logged and answered 503.
pub(crate) async fn record_act(
    api: &AdminApi,
    admin: &auth::Admin,
    action: &str,
    on: Acted<'_>,
) -> Result<(), problem::Problem> {
    let (connector, target) = match on {
        Acted::Nothing => (None, None),
        Acted::Connector(id) => (Some(id.to_owned()), Some(id.to_owned())),
        Acted::Object(name) => (None, Some(name.to_owned())),
    };
    let written = api
        .audit
        .write(AuditRecord {
            user: admin.name.clone(),
            agent: admin.via.clone(),
            connector,
            target,
            outcome: Some("ok".to_owned()),
            ..AuditRecord::event(Kind::Admin, admin.tenant.as_str(), action)
        })
        .await;
    written.map_err(|e| {
        tracing::error!(error = %e, action, admin = %admin.name, "admin action not written to the audit trail");
        problem::Problem::unavailable("the audit trail is unavailable; retry shortly")
    })
}

/// The admin API's routes.
pub fn routes(api: Arc<AdminApi>) -> Router {
    Router::new()
        .route(&format!("{BASE}/openapi.json"), get(openapi::serve))
        .route(
            &format!("{BASE}/t/{{tenant}}/connectors"),
            get(connectors::list),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/connectors/{{id}}/revoke"),
            post(connectors::revoke),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/join-tokens"),
            post(connectors::create_join_token),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/policy"),
            get(policy::show).put(policy::put),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/policy/validate"),
            post(policy::validate),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/policy/preview"),
            post(policy::preview),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/policy/revisions"),
            get(policy::history),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/policy/rollback"),
            post(policy::rollback),
        )
        .route(&format!("{BASE}/t/{{tenant}}/audit"), get(audit::search))
        .route(
            &format!("{BASE}/t/{{tenant}}/audit/export"),
            get(audit::export),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/audit/verify"),
            get(audit::verify),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/users"),
            get(principals::users).post(principals::create_user),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/users/{{name}}"),
            delete(principals::delete_user),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/agents"),
            get(principals::agents).post(principals::post_agent),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/agents/{{name}}"),
            delete(principals::delete_agent),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/agents/{{name}}/bind-client"),
            post(principals::post_bind_client),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/agents/{{name}}/rotate-key"),
            post(principals::rotate_agent_key),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/connections"),
            get(connections::list),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/connectors/{{id}}/connections/revoke"),
            post(connections::post_revoke),
        )
        .route(&format!("{BASE}/t/{{tenant}}/clients"), get(clients::list))
        .route(
            &format!("{BASE}/t/{{tenant}}/clients/{{id}}/revoke"),
            post(clients::revoke),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/gateways"),
            get(principals::gateways).post(principals::post_gateway),
        )
        .route(
            &format!("{BASE}/t/{{tenant}}/gateways/{{name}}"),
            delete(principals::delete_gateway),
        )
        // Anything else under the base is a typed 404 too, not an empty page.
        .route(&format!("{BASE}/{{*rest}}"), any(unknown))
        .layer(axum::middleware::from_fn(auth::csrf_guard))
        // Answers carry tokens and tenant data: no cache keeps them.
        .layer(axum::middleware::map_response(no_store))
        .with_state(api)
}

async fn no_store(mut resp: axum::response::Response) -> axum::response::Response {
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

async fn unknown() -> problem::Problem {
    problem::Problem::not_found("no such admin API endpoint")
}
