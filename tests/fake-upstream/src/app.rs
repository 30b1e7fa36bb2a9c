//! The router, and the gate every request passes through: journal, faults,
//! authentication and rate limits, in that order, before the kind's handlers run.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::auth::{self, AuthError, Caller};
use crate::faults::{Action, Rule};
use crate::headers::{rate_headers, set};
use crate::query::Query;
use crate::ratelimit::Resource;
use crate::server::ConnectionKill;
use crate::state::{App, Base, Ctx};
use crate::{Kind, control, github, gitlab};

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
        let presented = auth::authenticate(&app.world(), req.headers()).ok();
        let resp = next.run(req).await;
        app.journal.finish(
            index,
            presented.as_ref().map(|c| c.login.as_str()),
            Some(resp.status().as_u16()),
            fault_name,
        );
        return resp;
    }
    let authenticated = auth::authenticate(&app.world(), req.headers());
    let caller = match authenticated {
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

/// Here rather than beside [`Ctx`]: a request without a caller is refused in the kind's own
/// words, and the kinds' modules depend on the state, not the other way round.
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
