//! The tenant's connectors: their state, join tokens that come with the exact commands to
//! install and enroll a connector, and revocation. Each change is written to the audit
//! trail as the admin's act before it is answered.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use shared::identity::ConnectorId;

use super::auth;
use super::problem::Problem;
use super::tokens::Scope;
use super::{Acted, AdminApi};
use crate::join_token;
use crate::store::{ConnectorRow, StoreError};

/// One connector, as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct ConnectorView {
    /// Id.
    pub id: String,
    /// `online`, `offline` or `revoked`.
    pub status: String,
    /// The connector's build version at its last hello.
    pub version: Option<String>,
    /// The live or last tunnel's transport (`quic`, `tcp`).
    pub transport: Option<String>,
    /// The runtime replica that holds or held its tunnel.
    pub replica: Option<String>,
    /// Its last heartbeat, Unix ms.
    pub last_seen_ms: Option<i64>,
    /// When its certificate expires, Unix ms.
    pub cert_not_after_ms: i64,
    /// What an administrator should look at.
    pub warnings: Vec<String>,
}

impl ConnectorView {
    fn of(r: ConnectorRow) -> Self {
        Self {
            status: serde_json::to_value(r.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            id: r.id,
            version: r.version,
            transport: r.transport,
            replica: r.replica,
            last_seen_ms: r.last_seen,
            cert_not_after_ms: r.cert_not_after,
            warnings: r.warnings,
        }
    }
}

/// `GET /admin/api/v1/t/{tenant}/connectors`.
pub async fn list(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::ConnectorsRead).await?;
    let connectors: Vec<ConnectorView> = api
        .store
        .connectors()
        .await?
        .into_iter()
        .filter(|c| c.tenant == admin.tenant.as_str())
        .map(ConnectorView::of)
        .collect();
    Ok(Json(serde_json::json!({ "connectors": connectors })))
}

/// The body of a join-token request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinTokenRequest {
    /// How long the token may be used, in seconds (default one hour).
    ttl_seconds: Option<u64>,
}

/// `POST /admin/api/v1/t/{tenant}/join-tokens`: a one-time join token for a new
/// connector, with the commands that install and enroll it on a deb or rpm host.
pub async fn create_join_token(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::ConnectorsWrite).await?;
    let request: JoinTokenRequest = if body.is_empty() {
        JoinTokenRequest { ttl_seconds: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Problem::bad_request(format!("the body is not a join-token request: {e}"))
        })?
    };
    let ttl = Duration::from_secs(request.ttl_seconds.unwrap_or(3600));
    join_token::check_ttl(ttl).map_err(|e| Problem::bad_request(e.to_string()))?;
    let issued = join_token::issue(&api.store, &admin.tenant, ttl)
        .await
        .map_err(|e| match e {
            join_token::IssueError::Store(e) => Problem::from(e),
            other => Problem::bad_request(other.to_string()),
        })?;
    let connector = issued.connector.to_string();
    // Done already: a failure to record it is logged, and the answer still given.
    let _ = super::record_act(
        &api,
        &admin,
        "admin.join_token.create",
        Acted::Connector(&connector),
    )
    .await;
    let commands = install_commands(&api, &issued.token.text);
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "token": issued.token.text,
            "connector_id": connector,
            "ca_fingerprint": api.ca_fingerprint,
            "expires_at_ms": issued.expires_at,
            "commands": commands,
        })),
    ))
}

/// The commands that install a connector and enroll it with the join token `token`, on
/// deb and on rpm hosts.
#[derive(Debug, Clone, Serialize)]
pub struct InstallCommands {
    /// Debian and Ubuntu.
    pub deb: String,
    /// RHEL, Fedora and the like.
    pub rpm: String,
}

/// The exact commands a connector host runs with the join token `token`.
pub fn install_commands(api: &AdminApi, token: &str) -> InstallCommands {
    let enroll = format!(
        "sudo -u edge-connector edge-connector enroll --config /etc/edge-connector/config.toml --runtime {} --token {token} --ca-fingerprint {}",
        api.enroll_endpoint, api.ca_fingerprint
    );
    let version = env!("CARGO_PKG_VERSION");
    let start = "sudo systemctl enable --now edge-connector";
    InstallCommands {
        deb: format!(
            "sudo apt-get install ./edge-connector_{version}-1_amd64.deb && {enroll} && {start}"
        ),
        rpm: format!(
            "sudo dnf install ./edge-connector-{version}-1.x86_64.rpm && {enroll} && {start}"
        ),
    }
}

/// `POST /admin/api/v1/t/{tenant}/connectors/{id}/revoke`: refused from now on, its live
/// tunnels dropped within a second; revoking again changes nothing.
pub async fn revoke(
    State(api): State<Arc<AdminApi>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::ConnectorsWrite).await?;
    let revoked_now = revoke_connector(&api, &admin, &id).await?;
    Ok(Json(serde_json::json!({
        "id": id,
        "status": "revoked",
        "already_revoked": !revoked_now,
    })))
}

/// Revokes `admin`'s tenant's connector `id` and records the act; false if it was
/// revoked already. Another tenant's connector is as unknown as one that does not exist.
pub async fn revoke_connector(
    api: &AdminApi,
    admin: &auth::Admin,
    id: &str,
) -> Result<bool, Problem> {
    let unknown = || Problem::not_found("this tenant has no such connector");
    let id: ConnectorId = id.parse().map_err(|_| unknown())?;
    // Another tenant's connector is as unknown as one that does not exist.
    match api.store.connector(&id).await? {
        Some(row) if row.tenant == admin.tenant.as_str() => {}
        _ => return Err(unknown()),
    }
    let revoked_now = match api.store.revoke(&id).await {
        Ok(now) => now,
        Err(StoreError::NotFound(_)) => return Err(unknown()),
        Err(e) => return Err(e.into()),
    };
    if revoked_now {
        let _ = super::record_act(
            api,
            admin,
            "admin.connector.revoke",
            Acted::Connector(id.as_str()),
        )
        .await;
    }
    Ok(revoked_now)
}
