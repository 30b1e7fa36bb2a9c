//! Discovery documents: RFC 8414 authorization-server metadata and RFC 9728
//! protected-resource metadata for each gateway.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::identity::TenantId;

use super::{OAuth, SCOPE};
use crate::identity::GatewayName;

/// `GET /.well-known/oauth-authorization-server`.
pub async fn authorization_server(State(o): State<Arc<OAuth>>) -> Json<serde_json::Value> {
    Json(json!({
        "issuer": o.issuer,
        "authorization_endpoint": format!("{}/oauth/authorize", o.issuer),
        "token_endpoint": format!("{}/oauth/token", o.issuer),
        "registration_endpoint": format!("{}/oauth/register", o.issuer),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": [SCOPE],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
    }))
}

/// `GET /.well-known/oauth-protected-resource/t/{tenant}/g/{gateway}/mcp`.
pub async fn protected_resource(
    State(o): State<Arc<OAuth>>,
    Path((tenant, gateway)): Path<(String, String)>,
) -> Response {
    // Anything that is not a tenant and a gateway name is no gateway.
    let (Ok(tenant), Ok(gateway)) = (tenant.parse::<TenantId>(), GatewayName::parse(&gateway))
    else {
        return (StatusCode::NOT_FOUND, "no such gateway").into_response();
    };
    match o.store.gateway(tenant.as_str(), gateway.as_str()).await {
        Ok(Some(_)) => Json(json!({
            "resource": o.resource_url(&tenant, &gateway),
            "authorization_servers": [o.issuer],
            "bearer_methods_supported": ["header"],
            "scopes_supported": [SCOPE],
            "resource_name": format!("mcp-edge gateway {gateway} of {tenant}"),
        }))
        .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such gateway").into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
