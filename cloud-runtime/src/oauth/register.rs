//! RFC 7591 dynamic client registration for public clients (no client secret: MCP clients
//! are native or browser apps that cannot keep one; PKCE protects their codes instead).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use shared::clock::now_ms;

use super::{OAuth, redirect, secret};
use crate::store::oauth::ClientRow;

/// Most redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 10;

#[derive(Debug, Deserialize)]
struct Registration {
    redirect_uris: Vec<String>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
}

fn refuse(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `POST /oauth/register`.
pub async fn register(State(o): State<Arc<OAuth>>, body: Bytes) -> Response {
    let reg: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                "invalid_client_metadata",
                &format!("invalid registration: {e}"),
            );
        }
    };
    if reg.redirect_uris.is_empty() || reg.redirect_uris.len() > MAX_REDIRECT_URIS {
        return refuse(
            "invalid_redirect_uri",
            "register between 1 and 10 redirect URIs",
        );
    }
    if let Some(e) = reg
        .redirect_uris
        .iter()
        .find_map(|u| redirect::check(u).err())
    {
        return refuse("invalid_redirect_uri", &e.to_string());
    }
    if reg
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| m != "none")
    {
        return refuse(
            "invalid_client_metadata",
            "only public clients (token_endpoint_auth_method \"none\") are supported",
        );
    }
    let grants = reg
        .grant_types
        .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    if grants
        .iter()
        .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return refuse(
            "invalid_client_metadata",
            "grant_types may be authorization_code and refresh_token only",
        );
    }
    let responses = reg.response_types.unwrap_or_else(|| vec!["code".into()]);
    if responses.iter().any(|r| r != "code") {
        return refuse("invalid_client_metadata", "response_types may be code only");
    }
    let name = reg.client_name.map(|n| {
        n.chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect::<String>()
    });
    let client = ClientRow {
        client_id: secret::generate("mcpc_"),
        client_name: name.clone(),
        redirect_uris: reg.redirect_uris.clone(),
    };
    if o.store.create_client(&client).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "registration failed").into_response();
    }
    (
        StatusCode::CREATED,
        Json(json!({
            "client_id": client.client_id,
            "client_id_issued_at": now_ms() / 1000,
            "client_name": name,
            "redirect_uris": reg.redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": grants,
            "response_types": responses,
        })),
    )
        .into_response()
}
