//! The tenant admin web console at `/admin/t/{tenant}/`: server-rendered pages from the
//! binary, nothing loaded from elsewhere (it works air-gapped), no script but the live
//! view's own, for a tenant's administrators signed in through the runtime's own sign-in.
//!
//! - [`session`]: who may use it (a signed-in user of the tenant in its admin group) and
//!   the CSRF check every form that changes something passes.
//! - [`layout`]: the page frame, navigation and security headers (a CSP without inline
//!   script or style, no framing, no referrer, HSTS).
//! - [`overview`], [`connectors`], [`policy`], [`audit`], [`live`], [`directory`]: the
//!   pages. Each change goes through the admin API's own functions, so the console, the
//!   API and the command line do one thing one way, and each is written to the audit
//!   trail as the admin's act.

pub mod audit;
pub mod connectors;
pub mod directory;
pub mod layout;
pub mod live;
pub mod overview;
pub mod policy;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::admin_api::AdminApi;
use crate::oauth::OAuth;

/// What the console's pages share.
#[derive(Debug)]
pub struct Console {
    /// The admin API's state (store, audit trail, enrollment details).
    pub api: Arc<AdminApi>,
    /// The sign-in the console sends a browser through.
    pub oauth: Arc<OAuth>,
    /// Permits for live views ([`live::MAX_STREAMS`]).
    pub live_streams: Arc<tokio::sync::Semaphore>,
}

/// The console's stylesheet (served from the binary: nothing comes from elsewhere).
const STYLESHEET: &str = include_str!("console.css");

/// The console's routes.
pub fn routes(console: Arc<Console>) -> Router {
    Router::new()
        .route("/admin/static/console.css", get(stylesheet))
        .route("/admin/t/{tenant}/", get(overview::show))
        .route("/admin/t/{tenant}/connectors", get(connectors::show))
        .route(
            "/admin/t/{tenant}/join-tokens",
            post(connectors::create_join_token),
        )
        .route(
            "/admin/t/{tenant}/connectors/{id}/revoke",
            post(connectors::revoke),
        )
        .route(
            "/admin/t/{tenant}/policy",
            get(policy::show).post(policy::submit),
        )
        .route("/admin/t/{tenant}/policy/rollback", post(policy::roll_back))
        .route("/admin/t/{tenant}/audit", get(audit::show))
        .route("/admin/static/live.js", get(script))
        .route("/admin/t/{tenant}/live", get(live::page))
        .route("/admin/t/{tenant}/live/events", get(live::events))
        .route("/admin/t/{tenant}/people", get(directory::people))
        .route("/admin/t/{tenant}/users", post(directory::add_user))
        .route(
            "/admin/t/{tenant}/users/{name}/remove",
            post(directory::remove_user),
        )
        .route("/admin/t/{tenant}/agents", post(directory::create_agent))
        .route(
            "/admin/t/{tenant}/agents/{name}/remove",
            post(directory::remove_agent),
        )
        .route("/admin/t/{tenant}/connections", get(directory::connections))
        .route(
            "/admin/t/{tenant}/connectors/{id}/connections/revoke",
            post(directory::revoke_connection),
        )
        .route(
            "/admin/t/{tenant}/clients/{id}/bind",
            post(directory::bind_client),
        )
        .route(
            "/admin/t/{tenant}/gateways/{name}/remove",
            post(directory::remove_gateway),
        )
        .route(
            "/admin/t/{tenant}/agents/{name}/rotate-key",
            post(directory::rotate_agent_key),
        )
        .route("/admin/t/{tenant}/clients", get(directory::clients))
        .route(
            "/admin/t/{tenant}/clients/{id}/revoke",
            post(directory::revoke_client),
        )
        .route(
            "/admin/t/{tenant}/gateways",
            get(directory::gateways).post(directory::create_gateway),
        )
        .route("/admin/t/{tenant}/sign-out", post(session::sign_out))
        .with_state(console)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLESHEET,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        live::SCRIPT,
    )
}
