//! Authentication of MCP requests: the user from the bearer token, the agent from its key.
//!
//! The token must be one of ours, unexpired, and issued for exactly this gateway's URL: a
//! token for tenant A's gateway is worthless on tenant B's, or on another gateway of A. The
//! agent is named by its key in `X-MCP-Agent-Key`, or, for clients that can only do OAuth,
//! by the agent the OAuth client was bound to. A request without both is refused.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::identity::{TenantId, UserId};

use super::{OAuth, SCOPE, secret};
use crate::identity::{AgentName, GatewayName, GroupName, Principal, RoleName, UserName};

/// Header carrying an agent's key.
pub const AGENT_KEY_HEADER: &str = "x-mcp-agent-key";

fn unauthorized(
    o: &OAuth,
    tenant: &TenantId,
    gateway: &GatewayName,
    error: Option<&str>,
) -> Response {
    let mut challenge = format!(
        "Bearer resource_metadata=\"{}\", scope=\"{SCOPE}\"",
        o.metadata_url(tenant, gateway)
    );
    if let Some(e) = error {
        challenge.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{e}\""
        ));
    }
    let mut resp = (StatusCode::UNAUTHORIZED, "authentication required").into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Authenticates a request to `tenant`'s `gateway`.
pub async fn authenticate(
    o: &OAuth,
    headers: &HeaderMap,
    tenant: &TenantId,
    gateway: &GatewayName,
) -> Result<Principal, Response> {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    else {
        return Err(unauthorized(o, tenant, gateway, None));
    };
    let claims = o
        .signer
        .get()
        .verify(token.trim(), &o.issuer, &o.resource_url(tenant, gateway))
        .map_err(|_| {
            unauthorized(
                o,
                tenant,
                gateway,
                Some("token is invalid, expired or for another resource"),
            )
        })?;
    if claims.tenant != tenant.as_str() {
        return Err(unauthorized(
            o,
            tenant,
            gateway,
            Some("token is for another tenant"),
        ));
    }
    // The token is good until it expires; the client an administrator revoked is not.
    match o
        .revoked_clients
        .is_revoked(&o.store, tenant.as_str(), &claims.client_id)
        .await
    {
        Ok(false) => {}
        Ok(true) => {
            return Err(unauthorized(
                o,
                tenant,
                gateway,
                Some("this client was revoked in this tenant"),
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "bearer check: the store is unavailable");
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable; retry",
            )
                .into_response());
        }
    }
    let agent = match headers.get(AGENT_KEY_HEADER).and_then(|v| v.to_str().ok()) {
        Some(key) => o
            .store
            .agent_by_key(&secret::hash(key.trim()))
            .await
            .ok()
            .flatten()
            .filter(|a| a.tenant == tenant.as_str()),
        None => o
            .store
            .agent_by_client(tenant.as_str(), &claims.client_id)
            .await
            .ok()
            .flatten(),
    };
    // Agent names and roles were checked when the agent was made; one that no longer passes
    // names no agent.
    let agent = agent.and_then(|a| {
        Some((
            AgentName::parse(&a.name).ok()?,
            RoleName::parse(&a.role).ok()?,
        ))
    });
    let Some((agent, role)) = agent else {
        return Err((
            StatusCode::FORBIDDEN,
            axum::Json(json!({
                "error": "agent_required",
                "error_description": "present a valid agent key of this tenant in the X-MCP-Agent-Key header, or use an OAuth client bound to an agent",
            })),
        )
            .into_response());
    };
    let (Ok(user_id), Ok(user)) = (UserId::parse(&claims.sub), UserName::parse(&claims.name))
    else {
        return Err(unauthorized(
            o,
            tenant,
            gateway,
            Some("token names no user; sign in again"),
        ));
    };
    Ok(Principal {
        tenant: tenant.clone(),
        user_id,
        user,
        // Groups were checked when the token was issued.
        groups: claims
            .groups
            .iter()
            .filter_map(|g| GroupName::parse(g).ok())
            .collect(),
        agent,
        role,
    })
}
