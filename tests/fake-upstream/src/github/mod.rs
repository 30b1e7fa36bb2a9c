//! The fake GitHub Enterprise Server 3.19: REST under `/api/v3`, OAuth web flow under
//! `/login/oauth/`, and job logs behind signed URLs like GHES's log storage.
//!
//! One file per resource; each renders its own payloads (field for field after the
//! OpenAPI description's schemas and examples) and serves its endpoints.

pub mod actions;
pub mod checks;
pub mod comments;
pub mod contents;
pub mod error;
pub mod git;
pub mod issues;
pub mod oauth;
pub mod pulls;
pub mod repos;
pub mod reviews;
pub mod search;
pub mod users;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use serde_json::{Map, Value};

use crate::Kind;
use crate::auth::Caller;
use crate::model::{Role, World};
use crate::pagination::{GITHUB, Page};
use crate::state::{App, Ctx};

/// The GitHub routes.
pub fn routes() -> Router<Arc<App>> {
    const R: &str = "/api/v3/repos/{owner}/{repo}";
    Router::new()
        .route("/api/v3/user", get(users::get_user))
        .route("/api/v3/user/repos", get(repos::list_for_user))
        .route("/api/v3/search/repositories", get(search::repositories))
        .route("/api/v3/search/code", get(search::code))
        .route("/api/v3/search/issues", get(search::issues))
        .route("/api/v3/issues", get(issues::list_for_user))
        .route(R, get(repos::get_repo))
        .route(&format!("{R}/contents"), get(contents::get_root))
        .route(&format!("{R}/contents/{{*path}}"), get(contents::get_path))
        .route(&format!("{R}/branches"), get(git::list_branches))
        .route(&format!("{R}/git/ref/{{*ref}}"), get(git::get_ref))
        .route(&format!("{R}/git/refs"), post(git::create_ref))
        .route(
            &format!("{R}/git/refs/{{*ref}}"),
            axum::routing::delete(git::delete_ref),
        )
        .route(&format!("{R}/commits"), get(git::list_commits))
        .route(
            &format!("{R}/commits/{{ref}}/check-runs"),
            get(checks::check_runs),
        )
        .route(
            &format!("{R}/commits/{{ref}}/status"),
            get(checks::combined_status),
        )
        .route(
            &format!("{R}/issues"),
            get(issues::list).post(issues::create),
        )
        .route(
            &format!("{R}/issues/{{number}}"),
            get(issues::get).patch(issues::update),
        )
        .route(
            &format!("{R}/issues/{{number}}/comments"),
            get(comments::list).post(comments::create),
        )
        .route(&format!("{R}/pulls"), get(pulls::list).post(pulls::create))
        .route(&format!("{R}/pulls/{{number}}"), get(pulls::get))
        .route(&format!("{R}/pulls/{{number}}/files"), get(pulls::files))
        .route(
            &format!("{R}/pulls/{{number}}/reviews"),
            get(reviews::list).post(reviews::create),
        )
        .route(&format!("{R}/pulls/{{number}}/merge"), put(pulls::merge))
        .route(&format!("{R}/actions/runs"), get(actions::list_runs))
        .route(
            &format!("{R}/actions/runs/{{run_id}}/jobs"),
            get(actions::list_jobs),
        )
        .route(
            &format!("{R}/actions/jobs/{{job_id}}/logs"),
            get(actions::job_logs),
        )
        .route("/_services/actions/logs/{token}", get(actions::log_blob))
        .route(
            "/login/oauth/authorize",
            get(oauth::authorize_page).post(oauth::authorize_decision),
        )
        .route("/login/oauth/access_token", post(oauth::access_token))
        .fallback(|| async { error::not_found("") })
}

/// Absolute URL bases for payloads.
#[derive(Debug, Clone)]
pub struct Urls {
    /// `http://host/api/v3`.
    pub api: String,
    /// `http://host`.
    pub web: String,
}

impl Urls {
    /// `…/api/v3/repos/{full_name}`.
    pub fn repo_api(&self, full: &str) -> String {
        format!("{}/repos/{full}", self.api)
    }
    /// `…/{full_name}` on the web.
    pub fn repo_web(&self, full: &str) -> String {
        format!("{}/{full}", self.web)
    }
}

impl Ctx {
    /// URL bases for payloads.
    pub fn urls(&self) -> Urls {
        Urls {
            api: self.base.api(Kind::Github),
            web: self.base.origin.clone(),
        }
    }

    /// A search response: `{total_count, incomplete_results, items}` for one page.
    pub fn search_page(&self, all: Vec<Value>) -> Response {
        self.search_page_with(all, None)
    }

    /// A search response with issue search's `search_type` (always `lexical` here).
    pub fn search_page_with(&self, all: Vec<Value>, search_type: Option<&str>) -> Response {
        let page = Page::of(all, &self.query, GITHUB);
        let url = format!("{}{}", self.base.origin, self.path);
        let headers = page.headers(Kind::Github, &url, &self.query);
        let mut body = serde_json::json!({
            "total_count": page.total,
            "incomplete_results": false,
            "items": page.items,
        });
        if let (Some(t), Some(o)) = (search_type, body.as_object_mut()) {
            o.insert("search_type".into(), serde_json::json!(t));
        }
        (headers, Json(body)).into_response()
    }
}

/// The repository `owner/repo` as the caller may see it, with the caller's role; a
/// private repository the caller cannot see is a 404, as on GitHub.
pub fn find_repo(
    w: &World,
    caller: &Caller,
    owner: &str,
    repo: &str,
    doc: &str,
) -> Result<(usize, Role), Response> {
    let idx = w
        .repo_index(&format!("{owner}/{repo}"))
        .ok_or_else(|| error::not_found(doc))?;
    let role = w
        .repos
        .get(idx)
        .and_then(|r| w.effective_role(&caller.login, r))
        .ok_or_else(|| error::not_found(doc))?;
    Ok((idx, role))
}

/// GitHub's node ids: base64 of `<len>:<Type><id>`, the legacy global-id form.
pub fn node_id(type_prefix: &str, id: impl std::fmt::Display) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{type_prefix}{id}"))
}

/// Parses a JSON object body, or answers 400 "Problems parsing JSON".
pub fn json_object(body: &Bytes, doc: &str) -> Result<Map<String, Value>, Response> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(error::error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid request.\n\n{other} is not an object."),
            doc,
        )),
        Err(_) => Err(error::bad_json(doc)),
    }
}

/// An optional field the schema declares a plain string: any present non-string, `null`
/// included, is a 422, as GitHub's request validation answers.
pub fn opt_str(m: &Map<String, Value>, field: &str, doc: &str) -> Result<Option<String>, Response> {
    match m.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(error::invalid_field(field, v, "a string", doc)),
    }
}

/// An optional string field the schema marks `nullable`: `null` reads as absent.
pub fn opt_nullable_str(
    m: &Map<String, Value>,
    field: &str,
    doc: &str,
) -> Result<Option<String>, Response> {
    match m.get(field) {
        Some(Value::Null) => Ok(None),
        _ => opt_str(m, field, doc),
    }
}

/// An optional array-of-strings field.
pub fn opt_str_list(
    m: &Map<String, Value>,
    field: &str,
    doc: &str,
) -> Result<Option<Vec<String>>, Response> {
    match m.get(field) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                // GitHub accepts label objects `{name}` in label lists too.
                Value::Object(o) => o
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| error::invalid_field(field, i, "a string", doc)),
                v => Err(error::invalid_field(field, v, "a string", doc)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(error::invalid_field(field, v, "an array", doc)),
    }
}

/// A required string field: 422 `missing_field` when absent.
pub fn req_str(
    m: &Map<String, Value>,
    field: &str,
    resource: &str,
    doc: &str,
) -> Result<String, Response> {
    opt_str(m, field, doc)?.ok_or_else(|| {
        error::validation(
            vec![
                serde_json::json!({"resource": resource, "code": "missing_field", "field": field}),
            ],
            doc,
        )
    })
}

/// Parses a path number (`issue_number`...) or answers 404.
pub fn number(s: &str, doc: &str) -> Result<u64, Response> {
    s.parse().map_err(|_| error::not_found(doc))
}

/// Whether the caller's `Accept` asks for `media` (e.g. `application/vnd.github.diff`).
pub fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|m| m.trim().starts_with(media)))
}

/// A 201 with a `Location` header.
pub fn created(location: &str, body: Value) -> Response {
    let mut r = (StatusCode::CREATED, Json(body)).into_response();
    crate::headers::set(r.headers_mut(), "location", location);
    r
}
