//! GitHub's OAuth web flow: `GET /login/oauth/authorize` (the sign-in page), its POST (the
//! user's decision, a 302 back to the client), and `POST /login/oauth/access_token`, which
//! answers errors with HTTP 200 and `{"error", "error_description", "error_uri"}` as GitHub
//! does. OAuth apps get non-expiring tokens; GitHub Apps get 8-hour tokens with single-use
//! rotating refresh tokens. GHES does no PKCE.

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

const TROUBLESHOOTING: &str = "https://docs.github.com/enterprise-server@3.19/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-oauth-app-access-token-request-errors";

/// GitHub accepts a redirect URI on the callback's host and port whose path is the
/// callback's path or below it.
fn redirect_allowed(registered: &str, given: &str) -> bool {
    let (Ok(r), Ok(g)) = (url::Url::parse(registered), url::Url::parse(given)) else {
        return false;
    };
    r.scheme() == g.scheme()
        && r.host_str() == g.host_str()
        && r.port_or_known_default() == g.port_or_known_default()
        && (g.path() == r.path()
            || g.path()
                .starts_with(&format!("{}/", r.path().trim_end_matches('/'))))
}

fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    let qs = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{qs}")
}

/// Checks client and redirect URI; on success the redirect URI to use.
fn validate(
    app: &App,
    client_id: Option<&str>,
    redirect: Option<&str>,
) -> Result<(String, String), Response> {
    let w = app.world();
    let Some(client) = client_id.and_then(|id| auth::client(&w, id)) else {
        return Err(sign_in::error_page(
            StatusCode::NOT_FOUND,
            "The client_id is not associated with a registered application.",
        ));
    };
    let redirect = redirect.unwrap_or(&client.redirect_uri).to_owned();
    if !redirect_allowed(&client.redirect_uri, &redirect) {
        return Err(sign_in::error_page(
            StatusCode::BAD_REQUEST,
            "The redirect_uri MUST match the registered callback URL for this application.",
        ));
    }
    Ok((client.client_id.clone(), redirect))
}

/// `GET /login/oauth/authorize?client_id&redirect_uri&state&scope`: the sign-in form.
pub async fn authorize_page(State(app): State<Arc<App>>, query: Query) -> Response {
    let (client_id, redirect) =
        match validate(&app, query.get("client_id"), query.get("redirect_uri")) {
            Ok(x) => x,
            Err(e) => return e,
        };
    let state = query.get("state").unwrap_or("");
    let scope = query.get("scope").unwrap_or("");
    sign_in::form(
        "Sign in to GitHub Enterprise",
        &client_id,
        "/login/oauth/authorize",
        &[
            ("client_id", &client_id),
            ("redirect_uri", &redirect),
            ("state", state),
            ("scope", scope),
        ],
        None,
    )
}

/// The form's POST: 302 to `redirect_uri?code=&state=`, or `error=access_denied`.
pub async fn authorize_decision(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let form = Query::parse(std::str::from_utf8(&body).ok());
    let (client_id, redirect) =
        match validate(&app, form.get("client_id"), form.get("redirect_uri")) {
            Ok(x) => x,
            Err(e) => return e,
        };
    let state = form.get("state").unwrap_or("");
    if form.get("decision") == Some("deny") {
        return crate::sign_in::found(&with_params(
            &redirect,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "The user has denied your application access.",
                ),
                (
                    "error_uri",
                    "https://docs.github.com/enterprise-server@3.19/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied",
                ),
                ("state", state),
            ],
        ));
    }
    let username = form.get("username").unwrap_or("").trim();
    let mut w = app.world();
    let Some(login) = w.user(username).map(|u| u.login.clone()) else {
        drop(w);
        let scope = form.get("scope").unwrap_or("");
        let mut r = sign_in::form(
            "Sign in to GitHub Enterprise",
            &client_id,
            "/login/oauth/authorize",
            &[
                ("client_id", &client_id),
                ("redirect_uri", &redirect),
                ("state", state),
                ("scope", scope),
            ],
            Some("Incorrect username or password."),
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    let scopes: Vec<String> = form
        .get("scope")
        .unwrap_or("")
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let kind = auth::client(&w, &client_id).map_or(ClientKind::OAuthApp, |c| c.kind);
    let code = auth::issue_code(&mut w, &client_id, &login, &redirect, scopes, None, kind);
    crate::sign_in::found(&with_params(
        &redirect,
        &[("code", &code), ("state", state)],
    ))
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

/// `POST /login/oauth/access_token` (form or JSON): a code or refresh-token grant.
pub async fn access_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_json_body = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let req: TokenRequest = if is_json_body {
        serde_json::from_slice(&body).unwrap_or_default()
    } else {
        serde_urlencoded::from_bytes(&body).unwrap_or_default()
    };
    let req = req.with_basic_auth(&headers);
    let result = {
        let mut w = app.world();
        match req.grant_type.as_deref() {
            None | Some("authorization_code") => auth::exchange_code(&mut w, &req),
            Some("refresh_token") => auth::refresh(&mut w, &req),
            Some(_) => Err(GrantError::UnsupportedGrantType),
        }
    };
    let pairs: Vec<(&str, String)> = match result {
        Ok(g) => {
            let mut p = vec![("access_token", g.access_token)];
            if let Some(e) = g.expires_in {
                p.push(("expires_in", e.to_string()));
            }
            if let Some(r) = g.refresh_token {
                p.push(("refresh_token", r));
            }
            if let Some(e) = g.refresh_token_expires_in {
                p.push(("refresh_token_expires_in", e.to_string()));
            }
            p.push(("scope", g.scopes.join(",")));
            p.push(("token_type", "bearer".into()));
            p
        }
        Err(e) => {
            let (code, description, anchor) = match e {
                GrantError::InvalidClient => (
                    "incorrect_client_credentials",
                    "The client_id and/or client_secret passed are incorrect.",
                    "incorrect-client-credentials",
                ),
                GrantError::RedirectMismatch => (
                    "redirect_uri_mismatch",
                    "The redirect_uri MUST match the registered callback URL for this application.",
                    "redirect-uri-mismatch2",
                ),
                GrantError::BadRefreshToken => (
                    "bad_refresh_token",
                    "The refresh token passed is incorrect or expired.",
                    "bad-refresh-token",
                ),
                GrantError::UnsupportedGrantType => (
                    "unsupported_grant_type",
                    "The grant type is not supported.",
                    "unsupported-grant-type",
                ),
                _ => (
                    "bad_verification_code",
                    "The code passed is incorrect or expired.",
                    "bad-verification-code",
                ),
            };
            vec![
                ("error", code.to_owned()),
                ("error_description", description.to_owned()),
                ("error_uri", format!("{TROUBLESHOOTING}#{anchor}")),
            ]
        }
    };
    // GitHub answers 200 either way; the body says which.
    if wants_json(&headers) {
        let mut m = serde_json::Map::new();
        for (k, v) in pairs {
            let val = match k {
                "expires_in" | "refresh_token_expires_in" => {
                    v.parse::<i64>().map(|n| json!(n)).unwrap_or(json!(v))
                }
                _ => json!(v),
            };
            m.insert(k.to_owned(), val);
        }
        Json(serde_json::Value::Object(m)).into_response()
    } else {
        let body = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        (
            [(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            body,
        )
            .into_response()
    }
}
