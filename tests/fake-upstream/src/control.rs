//! The test control API under `/_fake/` (not part of either real API): the request
//! journal, fault injection, token expiry and revocation, and run-time registration of
//! OAuth clients and personal access tokens. Documented in the crate README.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::faults::Rule;
use crate::model::{AccessToken, ClientKind, OAuthClient};
use crate::state::App;
use crate::{Kind, auth};

/// The `/_fake/` routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/_fake/health", get(|| async { "ok" }))
        .route("/_fake/requests", get(requests).delete(clear_requests))
        .route(
            "/_fake/faults",
            get(list_faults).post(add_faults).delete(clear_faults),
        )
        .route("/_fake/tokens", post(add_token))
        .route("/_fake/tokens/expire", post(expire))
        .route("/_fake/grants/revoke", post(revoke))
        .route("/_fake/oauth/clients", post(add_client))
        .route("/_fake/push", post(push))
        .route("/_fake/log-storage", axum::routing::put(set_log_storage))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Push {
    repo: String,
    branch: String,
    author: String,
    message: String,
}

/// Someone pushes a commit (no file changes) onto a branch outside the API under test, as
/// a collaborator would between an agent's read and its write.
async fn push(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let p = match parse::<Push>(&body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut w = app.world();
    let Some(idx) = w.repo_index(&p.repo) else {
        return bad_request(format!("unknown repository {}", p.repo));
    };
    let repo = &mut w.repos[idx];
    let Some(head) = repo.git.branches.get(&p.branch).cloned() else {
        return bad_request(format!("unknown branch {}", p.branch));
    };
    let sha = repo.git.commit(
        vec![head],
        &p.message,
        &p.author,
        crate::time_fmt::Timestamp::now(),
        std::collections::BTreeMap::new(),
    );
    repo.git.branches.insert(p.branch, sha.clone());
    (StatusCode::CREATED, Json(json!({ "sha": sha }))).into_response()
}

/// Body of `PUT /_fake/log-storage`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogStorage {
    /// `scheme://host[:port]` job-log redirects point at; null: this server's own origin.
    origin: Option<String>,
}

async fn set_log_storage(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req = match parse::<LogStorage>(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    *app.log_origin.lock().unwrap_or_else(|e| e.into_inner()) = req.origin;
    StatusCode::NO_CONTENT.into_response()
}

fn bad_request(msg: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": msg.into() })),
    )
        .into_response()
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad_request(e.to_string()))
}

async fn requests(State(app): State<Arc<App>>) -> Response {
    Json(app.journal.entries()).into_response()
}

async fn clear_requests(State(app): State<Arc<App>>) -> StatusCode {
    app.journal.clear();
    StatusCode::NO_CONTENT
}

async fn list_faults(State(app): State<Arc<App>>) -> Response {
    let list: Vec<_> = app
        .faults
        .list()
        .into_iter()
        .map(|(rule, left)| json!({ "rule": rule, "remaining": left }))
        .collect();
    Json(list).into_response()
}

/// One rule or an array of rules.
#[derive(Deserialize)]
#[serde(untagged)]
enum Rules {
    One(Rule),
    Many(Vec<Rule>),
}

async fn add_faults(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let rules = match parse::<Rules>(&body) {
        Ok(Rules::One(r)) => vec![r],
        Ok(Rules::Many(r)) => r,
        Err(e) => return e,
    };
    let n = rules.len();
    for r in rules {
        if let Err(e) = app.faults.add(r) {
            return bad_request(e);
        }
    }
    (StatusCode::CREATED, Json(json!({ "armed": n }))).into_response()
}

async fn clear_faults(State(app): State<Arc<App>>) -> StatusCode {
    app.faults.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    token: String,
    user: String,
    #[serde(default)]
    scopes: Vec<String>,
}

async fn add_token(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let t = match parse::<NewToken>(&body) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let mut w = app.world();
    if w.user(&t.user).is_none() {
        return bad_request(format!("unknown user {}", t.user));
    }
    let token = AccessToken {
        user: t.user,
        client_id: None,
        scopes: t.scopes,
        expires_at: None,
        revoked: false,
    };
    w.tokens.insert(t.token, token);
    StatusCode::CREATED.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expire {
    user: String,
    #[serde(default)]
    include_personal: bool,
}

async fn expire(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let e = match parse::<Expire>(&body) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let n = auth::expire_tokens(&mut app.world(), &e.user, e.include_personal);
    Json(json!({ "expired": n })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    user: String,
    client_id: Option<String>,
}

async fn revoke(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let r = match parse::<Revoke>(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let n = auth::revoke_grants(&mut app.world(), &r.user, r.client_id.as_deref());
    Json(json!({ "revoked": n })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    kind: Option<String>,
}

async fn add_client(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let c = match parse::<NewClient>(&body) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let kind = match (c.kind.as_deref(), app.kind) {
        (Some(k), _) => match ClientKind::parse(k) {
            Some(k) => k,
            None => return bad_request(format!("unknown kind {k}")),
        },
        (None, Kind::Github) => ClientKind::OAuthApp,
        (None, Kind::Gitlab) => ClientKind::GitLab,
    };
    let mut w = app.world();
    w.clients.retain(|x| x.client_id != c.client_id);
    w.clients.push(OAuthClient {
        client_id: c.client_id,
        client_secret: c.client_secret,
        redirect_uri: c.redirect_uri,
        kind,
    });
    StatusCode::CREATED.into_response()
}
