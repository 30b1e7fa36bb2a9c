//! Shared state, the router, and the gate every request passes through: journal, faults,
//! authentication and rate limits, in that order, before the kind's handlers run.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::IntoResponse;

use crate::auth::{self, AuthError, Caller};
use crate::faults::{Action, Faults, Rule};
use crate::journal::Journal;
use crate::model::World;
use crate::pagination::{self, Page};
use crate::query::Query;
use crate::ratelimit::{Quota, RateLimiter, Resource};
use crate::server::ConnectionKill;
use crate::{Budget, Kind, control, github, gitlab};

/// Everything the handlers share.
pub struct App {
    /// What this server fakes.
    pub kind: Kind,
    /// Whether it serves HTTPS (for the URLs it writes when no Host is given).
    pub tls: bool,
    world: Mutex<World>,
    /// Every API request.
    pub journal: Journal,
    /// Armed faults.
    pub faults: Faults,
    /// Per-user limits.
    pub limits: RateLimiter,
    /// Where job-log redirects point instead of this server's own origin (a separate log
    /// storage host), when set.
    pub log_origin: Mutex<Option<String>>,
}

impl App {
    /// State for a server of `kind` over `world`.
    pub fn new(kind: Kind, tls: bool, world: World, core: Budget, search: Budget) -> App {
        App {
            kind,
            tls,
            world: Mutex::new(world),
            journal: Journal::default(),
            faults: Faults::default(),
            limits: RateLimiter::new(core, search),
            log_origin: Mutex::new(None),
        }
    }

    /// Locks the world. A handler that panicked mid-change cannot leave it half-done in a
    /// way later requests would trip on, so a poisoned lock is taken over.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The REST API prefix.
    pub fn api_prefix(&self) -> &'static str {
        match self.kind {
            Kind::Github => "/api/v3",
            Kind::Gitlab => "/api/v4",
        }
    }
}

/// Where the client reached us: the absolute URLs in payloads and `Link` headers use it.
#[derive(Debug, Clone)]
pub struct Base {
    /// `scheme://host[:port]` from the `Host` header (or the HTTP/2 authority).
    pub origin: String,
}

impl Base {
    /// The REST API base, e.g. `http://127.0.0.1:8080/api/v3`.
    pub fn api(&self, kind: Kind) -> String {
        match kind {
            Kind::Github => format!("{}/api/v3", self.origin),
            Kind::Gitlab => format!("{}/api/v4", self.origin),
        }
    }
}

/// The router of a server: the kind's API, its OAuth pages, and `/_fake/`.
pub fn router(app: Arc<App>) -> Router {
    let api = match app.kind {
        Kind::Github => github::routes(),
        Kind::Gitlab => gitlab::routes(),
    };
    api.merge(control::routes())
        .layer(middleware::from_fn_with_state(app.clone(), gate))
        .with_state(app)
}

fn origin(app: &App, req: &Request) -> String {
    let scheme = if app.tls { "https" } else { "http" };
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{scheme}://{host}")
}

async fn gate(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_fake/") {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_owned();
    let index = app.journal.begin(&method, &path, req.uri().query());
    let base = Base {
        origin: origin(&app, &req),
    };
    req.extensions_mut().insert(base);
    let mut fault_name = None;
    if let Some(rule) = app.faults.take(&method, &path) {
        fault_name = Some(fault_label(rule.action));
        match rule.action {
            Action::Delay => {
                tokio::time::sleep(Duration::from_millis(rule.delay_ms.unwrap_or(0))).await;
            }
            Action::Reset => {
                app.journal.finish(index, None, None, Some("reset"));
                if let Some(kill) = req.extensions().get::<ConnectionKill>() {
                    kill.kill();
                }
                // The connection task drops this request with its connection.
                std::future::pending::<()>().await;
            }
            _ => {
                let resp = fault_response(&app, &rule);
                app.journal
                    .finish(index, None, Some(resp.status().as_u16()), fault_name);
                return resp;
            }
        }
    }
    let is_api = path.starts_with(&format!("{}/", app.api_prefix()));
    if !is_api {
        // Whoever presents a token is journaled even where none is needed, so that tests
        // can tell that log downloads (signed URLs) arrive without one.
        let presented = auth::authenticate(&app, req.headers()).ok();
        let resp = next.run(req).await;
        app.journal.finish(
            index,
            presented.as_ref().map(|c| c.login.as_str()),
            Some(resp.status().as_u16()),
            fault_name,
        );
        return resp;
    }
    let caller = match auth::authenticate(&app, req.headers()) {
        Ok(c) => c,
        Err(e) => {
            let resp = match app.kind {
                Kind::Github => github::error::unauthorized(e),
                Kind::Gitlab => gitlab::error::unauthorized(e),
            };
            app.journal
                .finish(index, None, Some(resp.status().as_u16()), fault_name);
            return resp;
        }
    };
    let resource = if app.kind == Kind::Github && path.starts_with("/api/v3/search/") {
        Resource::Search
    } else {
        Resource::Core
    };
    let quota = app.limits.hit(&caller.login, resource);
    let mut resp = if quota.exceeded {
        match app.kind {
            Kind::Github => github::error::rate_limited(caller.user_id, &quota),
            Kind::Gitlab => gitlab::error::rate_limited(&quota),
        }
    } else {
        req.extensions_mut().insert(caller.clone());
        next.run(req).await
    };
    rate_headers(app.kind, resp.headers_mut(), &quota);
    if app.kind == Kind::Github {
        set(
            resp.headers_mut(),
            "x-oauth-scopes",
            &caller.scopes.join(", "),
        );
    }
    common_headers(app.kind, resp.headers_mut(), index);
    app.journal.finish(
        index,
        Some(&caller.login),
        Some(resp.status().as_u16()),
        fault_name,
    );
    resp
}

fn fault_label(a: Action) -> &'static str {
    match a {
        Action::Status => "status",
        Action::RateLimit => "rate_limit",
        Action::SecondaryRateLimit => "secondary_rate_limit",
        Action::Delay => "delay",
        Action::Reset => "reset",
    }
}

fn fault_response(app: &App, rule: &Rule) -> Response {
    match app.kind {
        Kind::Github => github::error::fault(rule),
        Kind::Gitlab => gitlab::error::fault(rule),
    }
}

/// Sets a header, skipping values that are not valid header text.
pub fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// The rate-limit headers each API sends on every authenticated response.
pub fn rate_headers(kind: Kind, h: &mut HeaderMap, q: &Quota) {
    match kind {
        Kind::Github => {
            set(h, "x-ratelimit-limit", &q.limit.to_string());
            set(h, "x-ratelimit-remaining", &q.remaining.to_string());
            set(h, "x-ratelimit-used", &q.used.to_string());
            set(h, "x-ratelimit-reset", &q.reset.to_string());
            set(h, "x-ratelimit-resource", q.resource.name());
        }
        Kind::Gitlab => {
            set(h, "ratelimit-limit", &q.limit.to_string());
            set(h, "ratelimit-observed", &q.used.to_string());
            set(h, "ratelimit-remaining", &q.remaining.to_string());
            set(h, "ratelimit-reset", &q.reset.to_string());
            let reset = time::OffsetDateTime::from_unix_timestamp(q.reset as i64)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc2822)
                        .ok()
                });
            if let Some(r) = reset {
                set(h, "ratelimit-resettime", &r);
            }
        }
    }
}

fn common_headers(kind: Kind, h: &mut HeaderMap, index: u64) {
    match kind {
        Kind::Github => {
            set(h, "x-github-enterprise-version", "3.19.0");
            set(h, "x-github-media-type", "github.v3; format=json");
            set(h, "x-github-api-version-selected", "2022-11-28");
            set(h, "x-github-request-id", &format!("FAKE:{index:08X}"));
        }
        Kind::Gitlab => {
            set(h, "x-request-id", &format!("01FAKE{index:020}"));
            set(
                h,
                "x-gitlab-meta",
                &format!("{{\"correlation_id\":\"01FAKE{index:020}\",\"version\":\"1\"}}"),
            );
        }
    }
}

/// What every API handler needs: the app, the caller, where the client reached us, and
/// the query.
pub struct Ctx {
    /// Shared state.
    pub app: Arc<App>,
    /// Who is calling.
    pub caller: Caller,
    /// Where the client reached us.
    pub base: Base,
    /// Query parameters.
    pub query: Query,
    /// Request headers.
    pub headers: HeaderMap,
    /// The request path (for pagination links).
    pub path: String,
}

impl FromRequestParts<Arc<App>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| match app.kind {
                Kind::Github => github::error::unauthorized(AuthError::Missing),
                Kind::Gitlab => gitlab::error::unauthorized(AuthError::Missing),
            })?;
        let base = parts.extensions.get::<Base>().cloned().unwrap_or(Base {
            origin: "http://localhost".into(),
        });
        Ok(Ctx {
            app: app.clone(),
            caller,
            base,
            query: Query::parse(parts.uri.query()),
            headers: parts.headers.clone(),
            path: parts.uri.path().to_owned(),
        })
    }
}

impl Ctx {
    /// A JSON array response cut to the requested page, with the kind's pagination headers.
    pub fn paged(&self, all: Vec<serde_json::Value>) -> Response {
        let sizes = match self.app.kind {
            Kind::Github => pagination::GITHUB,
            Kind::Gitlab => pagination::GITLAB,
        };
        let page = Page::of(all, &self.query, sizes);
        let url = format!("{}{}", self.base.origin, self.path);
        let headers = page.headers(self.app.kind, &url, &self.query);
        (headers, axum::Json(serde_json::Value::Array(page.items))).into_response()
    }
}
