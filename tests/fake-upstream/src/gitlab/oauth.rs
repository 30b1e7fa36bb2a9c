//! GitLab's OAuth provider (Doorkeeper): `GET /oauth/authorize` (sign-in page, PKCE S256
//! challenge carried along), its POST (302 with `code` and `state`), and `POST
//! /oauth/token` for `authorization_code` (client secret, exact redirect URI and PKCE
//! verifier checked) and `refresh_token` (single use, rotating) grants. Errors are
//! Doorkeeper's: 400 `invalid_grant`, 401 `invalid_client`...

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::{self, GrantError, TokenRequest};
use crate::model::ClientKind;
use crate::query::Query;
use crate::sign_in;
use crate::state::App;

fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    let qs = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{qs}")
}

const FIELDS: [&str; 7] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
];

/// Checks the authorization request; errors that make the redirect URI untrustworthy are
/// pages, the others redirect back with `error=`.
fn validate(app: &App, p: &Query) -> Result<(), Response> {
    let w = app.world();
    let Some(client) = p.get("client_id").and_then(|id| auth::client(&w, id)) else {
        return Err(sign_in::error_page(
            StatusCode::UNAUTHORIZED,
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        ));
    };
    let Some(redirect) = p.get("redirect_uri").filter(|r| *r == client.redirect_uri) else {
        return Err(sign_in::error_page(
            StatusCode::BAD_REQUEST,
            "The redirect uri included is not valid.",
        ));
    };
    let state = p.get("state").unwrap_or("");
    let back = |error: &str, description: &str| {
        Err(crate::sign_in::found(&with_params(
            redirect,
            &[
                ("error", error),
                ("error_description", description),
                ("state", state),
            ],
        )))
    };
    if p.get("response_type") != Some("code") {
        return back(
            "unsupported_response_type",
            "The authorization server does not support this response type.",
        );
    }
    if p.get("code_challenge").is_some()
        && !matches!(p.get("code_challenge_method"), Some("S256") | None)
    {
        return back("invalid_request", "The code challenge method must be S256.");
    }
    Ok(())
}

/// `GET /oauth/authorize`.
pub async fn authorize_page(State(app): State<Arc<App>>, query: Query) -> Response {
    if let Err(e) = validate(&app, &query) {
        return e;
    }
    let hidden: Vec<(&str, &str)> = FIELDS
        .iter()
        .map(|f| (*f, query.get(f).unwrap_or("")))
        .collect();
    sign_in::form(
        "Sign in · GitLab",
        query.get("client_id").unwrap_or(""),
        "/oauth/authorize",
        &hidden,
        None,
    )
}

/// The form's POST.
pub async fn authorize_decision(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let form = Query::parse(std::str::from_utf8(&body).ok());
    let form = Query(form.0.into_iter().filter(|(_, v)| !v.is_empty()).collect());
    if let Err(e) = validate(&app, &form) {
        return e;
    }
    let redirect = form.get("redirect_uri").unwrap_or("").to_owned();
    let state = form.get("state").unwrap_or("");
    if form.get("decision") == Some("deny") {
        return crate::sign_in::found(&with_params(
            &redirect,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "The resource owner or authorization server denied the request.",
                ),
                ("state", state),
            ],
        ));
    }
    let client_id = form.get("client_id").unwrap_or("").to_owned();
    let mut w = app.world();
    let Some(login) = w
        .user(form.get("username").unwrap_or("").trim())
        .map(|u| u.login.clone())
    else {
        drop(w);
        let hidden: Vec<(&str, &str)> = FIELDS
            .iter()
            .map(|f| (*f, form.get(f).unwrap_or("")))
            .collect();
        let mut r = sign_in::form(
            "Sign in · GitLab",
            &client_id,
            "/oauth/authorize",
            &hidden,
            Some("Invalid login or password."),
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    let scopes = form
        .get("scope")
        .unwrap_or("api")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let challenge = form.get("code_challenge").map(str::to_owned);
    let code = auth::issue_code(
        &mut w,
        &client_id,
        &login,
        &redirect,
        scopes,
        challenge,
        ClientKind::GitLab,
    );
    crate::sign_in::found(&with_params(
        &redirect,
        &[("code", &code), ("state", state)],
    ))
}

/// `POST /oauth/token` (form or JSON).
pub async fn token(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let req: TokenRequest = if is_json {
        serde_json::from_slice(&body).unwrap_or_default()
    } else {
        serde_urlencoded::from_bytes(&body).unwrap_or_default()
    };
    let req = req.with_basic_auth(&headers);
    let result = {
        let mut w = app.world();
        match req.grant_type.as_deref() {
            Some("authorization_code") => auth::exchange_code(&mut w, &req),
            Some("refresh_token") => auth::refresh(&mut w, &req),
            None => Err(GrantError::MissingParameter("grant_type")),
            Some(_) => Err(GrantError::UnsupportedGrantType),
        }
    };
    match result {
        Ok(g) => Json(json!({
            "access_token": g.access_token,
            "token_type": "Bearer",
            "expires_in": g.expires_in.unwrap_or(7200),
            "refresh_token": g.refresh_token,
            "scope": g.scopes.join(" "),
            "created_at": g.created_at.0,
        }))
        .into_response(),
        Err(e) => {
            let (status, error, description) = match e {
                GrantError::InvalidClient => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.".to_owned(),
                ),
                GrantError::MissingParameter(p) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("Missing required parameter: {p}."),
                ),
                GrantError::UnsupportedGrantType => (
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "The authorization grant type is not supported by the authorization server.".to_owned(),
                ),
                _ => (
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.".to_owned(),
                ),
            };
            (
                status,
                Json(json!({"error": error, "error_description": description})),
            )
                .into_response()
        }
    }
}
