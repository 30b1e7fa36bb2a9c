//! The tenant's policy: the revision in force (or an earlier one), a proposed file
//! validated with the line and column of its first error, and applying one, which every
//! replica puts in force within a second ([`crate::policy::live`]). The body of a proposal
//! is the policy file itself (TOML).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AdminApi;
use super::auth;
use super::problem::Problem;
use super::tokens::Scope;
use crate::audit::record::{AuditRecord, Kind};
use crate::policy::apply::{self, ApplyError};
use crate::policy::file::{self, MAX_POLICY_BYTES, PolicyError, TenantPolicy};
use crate::policy::preview;
use shared::identity::TenantId;

/// The name a policy applied through the API or the console carries in its revision and
/// its errors.
pub const FILE_NAME: &str = "policy.toml";

/// `GET /admin/api/v1/t/{tenant}/policy[?revision=N]`.
pub async fn show(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::PolicyRead).await?;
    let revision = match query.as_deref() {
        None | Some("") => None,
        Some(q) => Some(
            q.strip_prefix("revision=")
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    Problem::bad_request("the only query is revision=N, N a positive number")
                })?,
        ),
    };
    let row = match revision {
        Some(r) => api.store.policy_revision(admin.tenant.as_str(), r).await?,
        None => api.store.policy(admin.tenant.as_str()).await?,
    };
    let row = row.ok_or_else(|| Problem::not_found("no such policy revision in this tenant"))?;
    Ok(Json(json!({
        "revision": row.revision,
        "sha256": row.sha256,
        "file_name": row.file_name,
        "applied_at_ms": row.applied_at,
        "source": row.source,
    })))
}

/// `POST /admin/api/v1/t/{tenant}/policy/validate`: nothing is stored.
pub async fn validate(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    auth::admin(&api.store, &headers, &tenant, Scope::PolicyRead).await?;
    let text = text_of(&body)?;
    Ok(match apply::validate(FILE_NAME, text) {
        Ok((policy, sha256)) => {
            let (roles, groups, gateways) = apply::counts(&policy);
            Json(json!({"valid": true, "sha256": sha256,
                        "roles": roles, "groups": groups, "gateways": gateways}))
            .into_response()
        }
        Err(e) => invalid(&e),
    })
}

/// `POST /admin/api/v1/t/{tenant}/policy/preview`: what applying the body would change:
/// the diff against the revision in force and the (agent, user, tool) decisions that
/// would turn, over the tools the tenant's connectors offer now. Nothing is stored.
pub async fn preview(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::PolicyRead).await?;
    let text = text_of(&body)?;
    let proposed = match apply::validate(FILE_NAME, text) {
        Ok((policy, _)) => policy,
        Err(e) => return Ok(invalid(&e)),
    };
    let found = preview_of(&api, &admin.tenant, &proposed, text).await?;
    Ok(Json(json!({
        "diff": found.diff,
        "changes": found.run.changes,
        "checked": found.run.checked,
        "truncated": found.run.truncated,
        "tools": found.tools,
    }))
    .into_response())
}

/// A proposed policy's preview: the diff and the dry run.
#[derive(Debug)]
pub struct Preview {
    /// The unified diff against the revision in force.
    pub diff: String,
    /// The decisions that would turn.
    pub run: preview::DryRun,
    /// How many tools were decided for.
    pub tools: usize,
}

/// Previews `proposed` (whose text is `text`) for `tenant`: the console's and the API's.
pub async fn preview_of(
    api: &AdminApi,
    tenant: &TenantId,
    proposed: &TenantPolicy,
    text: &str,
) -> Result<Preview, Problem> {
    let current = api.store.policy(tenant.as_str()).await?;
    // A stored revision was valid when applied.
    let in_force = current
        .as_ref()
        .and_then(|c| file::parse(&c.file_name, &c.source).ok());
    let mut tools: Vec<String> = api
        .registry
        .tools(tenant)
        .iter()
        .map(|t| t.name.clone())
        .collect();
    tools.sort();
    tools.dedup();
    let run = preview::dry_run(
        &api.store,
        tenant.as_str(),
        in_force.as_ref(),
        proposed,
        &tools,
    )
    .await?;
    Ok(Preview {
        diff: preview::diff(
            current.as_ref().map(|c| (c.revision, c.source.as_str())),
            text,
        ),
        run,
        tools: tools.len(),
    })
}

/// `PUT /admin/api/v1/t/{tenant}/policy`: validates the body and puts it in force as the
/// tenant's next revision; an invalid one changes nothing.
pub async fn put(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::PolicyWrite).await?;
    let text = text_of(&body)?;
    let applied = match apply::apply_text(&api.store, &admin.tenant, FILE_NAME, text).await {
        Ok(applied) => applied,
        Err(ApplyError::Invalid(e)) => return Ok(invalid(&e)),
        Err(ApplyError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(Problem::bad_request(e.to_string())),
    };
    record(
        &api,
        &admin,
        "admin.policy.apply",
        format!("policy revision {}", applied.revision),
        &applied.sha256,
    )
    .await;
    Ok(applied_response(&applied))
}

/// `GET /admin/api/v1/t/{tenant}/policy/revisions`: every revision, newest first.
pub async fn history(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::PolicyRead).await?;
    let revisions = api.store.policy_history(admin.tenant.as_str()).await?;
    Ok(Json(json!({ "revisions": revisions })))
}

/// Puts revision `revision` of `admin`'s tenant back in force as its next revision, and
/// records the act: the API's and the console's rollback.
pub(crate) async fn roll_back_as(
    api: &AdminApi,
    admin: &auth::Admin,
    revision: i64,
) -> Result<apply::Applied, ApplyError> {
    let applied = apply::roll_back(&api.store, &admin.tenant, revision).await?;
    record(
        api,
        admin,
        "admin.policy.rollback",
        format!(
            "policy revision {} (from revision {revision})",
            applied.revision
        ),
        &applied.sha256,
    )
    .await;
    Ok(applied)
}

/// The body of a rollback.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    revision: i64,
}

/// `POST /admin/api/v1/t/{tenant}/policy/rollback`: revision N's file in force again, as
/// the next revision.
pub async fn rollback(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::PolicyWrite).await?;
    let Rollback { revision } = serde_json::from_slice(&body)
        .map_err(|e| Problem::bad_request(format!("the body must be {{\"revision\": N}}: {e}")))?;
    let applied = match roll_back_as(&api, &admin, revision).await {
        Ok(applied) => applied,
        Err(ApplyError::NoRevision { .. }) => {
            return Err(Problem::not_found("no such policy revision in this tenant"));
        }
        // A revision that no longer validates (the rules grew stricter) stays out of force.
        Err(ApplyError::Invalid(e)) => return Ok(invalid(&e)),
        Err(ApplyError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(Problem::bad_request(e.to_string())),
    };
    Ok(applied_response(&applied))
}

fn applied_response(applied: &apply::Applied) -> Response {
    let (roles, groups, gateways) = applied.counts;
    (
        StatusCode::CREATED,
        Json(
            json!({"revision": applied.revision, "sha256": applied.sha256,
                    "roles": roles, "groups": groups, "gateways": gateways}),
        ),
    )
        .into_response()
}

/// Writes a policy change to the audit trail as the admin's act.
pub(crate) async fn record(
    api: &AdminApi,
    admin: &auth::Admin,
    action: &str,
    target: String,
    sha256: &str,
) {
    let written = api
        .audit
        .write(AuditRecord {
            user: admin.name.clone(),
            agent: admin.via.clone(),
            target: Some(target),
            reason: Some(format!("sha256 {sha256}")),
            outcome: Some("ok".to_owned()),
            ..AuditRecord::event(Kind::Admin, admin.tenant.as_str(), action)
        })
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, admin = %admin.name, action, "policy change not written to the audit trail");
    }
}

/// The body as a policy file's text: UTF-8, within the size a policy may have.
fn text_of(body: &Bytes) -> Result<&str, Problem> {
    if body.len() > MAX_POLICY_BYTES {
        return Err(Problem::bad_request(format!(
            "a policy file is at most {MAX_POLICY_BYTES} bytes"
        )));
    }
    std::str::from_utf8(body).map_err(|_| Problem::bad_request("the policy file is not UTF-8 text"))
}

/// 422 with where the file is wrong.
fn invalid(e: &PolicyError) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "error": "invalid_policy",
            "message": e.to_string(),
            "line": e.line,
            "column": e.column,
            "field": e.field,
        })),
    )
        .into_response()
}
