//! The fake GitLab: REST under `/api/v4` (project ids numeric or URL-encoded full paths
//! such as `acme%2Fplatform%2Fapi`), the OAuth provider under `/oauth/` (Doorkeeper's
//! behaviour: PKCE S256, rotating refresh tokens), payloads after the API reference's
//! examples.

pub mod error;
pub mod issues;
pub mod merge_requests;
pub mod notes;
pub mod oauth;
pub mod pipelines;
pub mod projects;
pub mod repository;
pub mod search;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post, put};
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::model::{Role, World};
use crate::state::{App, Ctx};
use crate::{Kind, query::Query};

/// The GitLab routes.
pub fn routes() -> Router<Arc<App>> {
    const P: &str = "/api/v4/projects/{id}";
    Router::new()
        .route("/api/v4/user", get(users::current))
        .route("/api/v4/users", get(users::list))
        .route("/api/v4/projects", get(projects::list))
        .route("/api/v4/issues", get(issues::list_global))
        .route(P, get(projects::get))
        .route(
            &format!("{P}/repository/files/{{path}}"),
            get(repository::file),
        )
        .route(
            &format!("{P}/repository/branches"),
            get(repository::branches).post(repository::create_branch),
        )
        .route(
            &format!("{P}/repository/branches/{{branch}}"),
            get(repository::branch).delete(repository::delete_branch),
        )
        .route(&format!("{P}/repository/commits"), get(repository::commits))
        .route(&format!("{P}/search"), get(search::project_search))
        .route(
            &format!("{P}/issues"),
            get(issues::list).post(issues::create),
        )
        .route(
            &format!("{P}/issues/{{iid}}"),
            get(issues::get).put(issues::update),
        )
        .route(
            &format!("{P}/issues/{{iid}}/notes"),
            get(notes::list_issue).post(notes::create_issue),
        )
        .route(
            &format!("{P}/merge_requests"),
            get(merge_requests::list).post(merge_requests::create),
        )
        .route(
            &format!("{P}/merge_requests/{{iid}}"),
            get(merge_requests::get),
        )
        .route(
            &format!("{P}/merge_requests/{{iid}}/diffs"),
            get(merge_requests::diffs),
        )
        .route(
            &format!("{P}/merge_requests/{{iid}}/approve"),
            post(merge_requests::approve),
        )
        .route(
            &format!("{P}/merge_requests/{{iid}}/approvals"),
            get(merge_requests::approvals),
        )
        .route(
            &format!("{P}/merge_requests/{{iid}}/merge"),
            put(merge_requests::merge),
        )
        .route(
            &format!("{P}/merge_requests/{{iid}}/notes"),
            get(notes::list_mr).post(notes::create_mr),
        )
        .route(&format!("{P}/pipelines"), get(pipelines::list))
        .route(
            &format!("{P}/pipelines/{{pipeline_id}}"),
            get(pipelines::get),
        )
        .route(
            &format!("{P}/pipelines/{{pipeline_id}}/jobs"),
            get(pipelines::jobs),
        )
        .route(
            &format!("{P}/pipelines/{{pipeline_id}}/bridges"),
            get(pipelines::bridges),
        )
        .route(&format!("{P}/jobs/{{job_id}}"), get(pipelines::job))
        .route(&format!("{P}/jobs/{{job_id}}/trace"), get(pipelines::trace))
        .route(
            "/oauth/authorize",
            get(oauth::authorize_page).post(oauth::authorize_decision),
        )
        .route("/oauth/token", post(oauth::token))
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": "404 Not Found"})),
            )
        })
}

/// Absolute URL bases for payloads.
#[derive(Debug, Clone)]
pub struct Urls {
    /// `http://host/api/v4`.
    pub api: String,
    /// `http://host`.
    pub web: String,
}

impl Ctx {
    /// GitLab URL bases for payloads.
    pub fn gitlab_urls(&self) -> Urls {
        Urls {
            api: self.base.api(Kind::Gitlab),
            web: self.base.origin.clone(),
        }
    }
}

/// The project `id` (numeric, or a full path that the router already percent-decoded)
/// as the caller may see it, with the caller's role; invisible is 404 Project Not Found.
pub fn find_project(w: &World, caller: &Caller, id: &str) -> Result<(usize, Role), Response> {
    let idx = match id.parse::<u64>() {
        Ok(n) => w.repos.iter().position(|r| r.id == n),
        Err(_) => w.repo_index(id),
    };
    idx.and_then(|i| {
        w.repos
            .get(i)
            .and_then(|r| w.effective_role(&caller.login, r))
            .map(|role| (i, role))
    })
    .ok_or_else(|| error::not_found("Project"))
}

/// Request parameters as GitLab (Grape) reads them: the query string, then a JSON or form
/// body, merged; query values are strings.
pub struct Params(Map<String, Value>);

impl Params {
    /// Merges `query` and `body`; a body that is neither JSON nor a form is a 400.
    pub fn from(query: &Query, headers: &HeaderMap, body: &Bytes) -> Result<Params, Response> {
        let mut m = Map::new();
        for (k, v) in &query.0 {
            let key = k.trim_end_matches("[]").to_owned();
            match m.get_mut(&key) {
                Some(Value::Array(a)) => a.push(Value::String(v.clone())),
                Some(_) if k.ends_with("[]") => {}
                _ if k.ends_with("[]") => {
                    m.insert(key, Value::Array(vec![Value::String(v.clone())]));
                }
                _ => {
                    m.insert(key, Value::String(v.clone()));
                }
            }
        }
        if !body.is_empty() {
            let is_json = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("application/json"));
            if is_json {
                match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(o)) => m.extend(o),
                    _ => {
                        return Err(error::bad_param(
                            "message body does not match declared format",
                        ));
                    }
                }
            } else {
                let form = Query::parse(std::str::from_utf8(body).ok());
                for (k, v) in form.0 {
                    m.insert(k.trim_end_matches("[]").to_owned(), Value::String(v));
                }
            }
        }
        Ok(Params(m))
    }

    /// A string parameter (numbers and booleans are accepted as their text).
    pub fn str(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Whether `name` is present but not a string-like value: GitLab answers
    /// `"<name> is invalid"`.
    pub fn invalid_str(&self, name: &str) -> bool {
        matches!(self.0.get(name), Some(Value::Array(_) | Value::Object(_)))
    }

    /// A list: an array, or a comma-separated string.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        match self.0.get(name)? {
            Value::Array(a) => Some(
                a.iter()
                    .filter_map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .or_else(|| v.as_u64().map(|n| n.to_string()))
                    })
                    .collect(),
            ),
            Value::String(s) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            Value::Number(n) => Some(vec![n.to_string()]),
            _ => None,
        }
    }

    /// A boolean (`true`, `1`).
    pub fn flag(&self, name: &str) -> bool {
        match self.0.get(name) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true" || s == "1",
            _ => false,
        }
    }
}

/// Parses a path iid or answers `404 <what> Not Found`.
pub fn iid(s: &str, what: &str) -> Result<u64, Response> {
    s.parse().map_err(|_| error::not_found(what))
}
