//! The state every handler shares: the fake world behind one lock, the journal, armed
//! faults and rate limits, and the per-request context API handlers extract.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::auth::Caller;
use crate::faults::Faults;
use crate::journal::Journal;
use crate::model::World;
use crate::pagination::{self, Page};
use crate::query::Query;
use crate::ratelimit::RateLimiter;
use crate::{Budget, Kind};

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
