//! A faithful fake GitHub Enterprise Server (REST `/api/v3`, GHES 3.19) and a fake GitLab
//! (REST `/api/v4`): the test double the connector's source-control tools run against, and
//! the quickstart's local sandbox upstream.
//!
//! Faithful means the real APIs' paths, methods, status codes, headers (rate limits,
//! pagination `Link`), error bodies and payload shapes, built from GitHub's OpenAPI
//! description and GitLab's API reference; the crate's tests check the GitHub payloads
//! against the official response schemas (`openapi/ghes-3.19-subset.json`).
//!
//! One server is one kind. It serves an in-memory [`model::World`] loaded from a seed
//! ([`seed`], [`builtin`]); writes change it. Every API request resolves its token to a user
//! whose role on the repository decides what it may see and do, counts against that user's
//! rate limit, and is written to a journal that tests read through the control API under
//! `/_fake/` (which also injects faults and expires or revokes tokens).
//!
//! Module map:
//! - [`server`]: TCP/TLS accept loop; a connection can be reset on a fault's order.
//! - [`state`]: what every handler shares ([`App`]) and the per-request context of an API
//!   handler; [`headers`]: the headers the gate and the error answers set.
//! - [`app`]: the router and the gate every request passes (journal, faults,
//!   authentication, rate limit).
//! - [`journal`], [`faults`], [`ratelimit`], [`pagination`]: one concern each.
//! - [`auth`]: tokens → users, and the OAuth grant logic both kinds share;
//!   [`sign_in`] renders the authorization page.
//! - [`control`]: the `/_fake/` test control API.
//! - [`model`], [`git`], [`diff`], [`time_fmt`]: the world, its git history, line diffs and
//!   timestamps.
//! - [`seed`], [`builtin`]: loading the world.
//! - [`github`], [`gitlab`]: each API's routes and payloads.

#![forbid(unsafe_code)]
// The payload literals (`serde_json::json!`) are large, nested macros.
#![recursion_limit = "512"]
// Handlers return the finished error response as `Err`: the early-return style of axum.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod auth;
pub mod builtin;
pub mod control;
pub mod diff;
pub mod faults;
pub mod git;
pub mod github;
pub mod gitlab;
pub mod headers;
pub mod journal;
pub mod model;
pub mod pagination;
pub mod query;
pub mod ratelimit;
pub mod seed;
pub mod server;
pub mod sign_in;
pub mod state;
pub mod time_fmt;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use seed::Seed;
pub use state::App;

/// Which API a server fakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GitHub Enterprise Server 3.19.
    Github,
    /// GitLab (API v4).
    Gitlab,
}

impl Kind {
    /// `github` or `gitlab`, as the CLI and the seed's `only` field spell it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Github => "github",
            Kind::Gitlab => "gitlab",
        }
    }
}

/// Rate-limit budget of one resource: `limit` requests per user per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Requests allowed in a window.
    pub limit: u32,
    /// Window length.
    pub window: Duration,
}

/// Certificate chain and key files (PEM) to serve HTTPS with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// Everything a server needs; [`Config::new`] gives the real APIs' defaults.
#[derive(Debug)]
pub struct Config {
    /// What to fake.
    pub kind: Kind,
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The world to start from.
    pub seed: Seed,
    /// HTTPS when given.
    pub tls: Option<TlsFiles>,
    /// The core budget (GitHub: 5000 an hour; GitLab: 2000 a minute).
    pub core: Budget,
    /// GitHub's search budget (30 a minute).
    pub search: Budget,
}

impl Config {
    /// A plain-HTTP server of `kind` on loopback, any port, with the real default limits.
    pub fn new(kind: Kind, seed: Seed) -> Config {
        let core = match kind {
            Kind::Github => Budget {
                limit: 5000,
                window: Duration::from_secs(3600),
            },
            Kind::Gitlab => Budget {
                limit: 2000,
                window: Duration::from_secs(60),
            },
        };
        Config {
            kind,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed,
            tls: None,
            core,
            search: Budget {
                limit: 30,
                window: Duration::from_secs(60),
            },
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The seed is invalid.
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    /// Binding the address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
}

/// A running server. Dropping it does not stop it; call [`Handle::stop`].
pub struct Handle {
    /// The bound address.
    pub addr: SocketAddr,
    /// Shared state, for tests that want to look inside.
    pub app: Arc<App>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// `http://127.0.0.1:PORT` (or `https://`): the web base; the REST API is under
    /// `/api/v3` (GitHub) or `/api/v4` (GitLab).
    pub fn base_url(&self) -> String {
        let scheme = if self.app.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, lets open requests finish, and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Starts a server on the current tokio runtime and returns once it is listening.
pub async fn serve(config: Config) -> Result<Handle, StartError> {
    let world = config.seed.into_world(config.kind)?;
    let tls = match &config.tls {
        Some(files) => Some(server::tls_config(files).map_err(StartError::Tls)?),
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let app = Arc::new(App::new(
        config.kind,
        tls.is_some(),
        world,
        config.core,
        config.search,
    ));
    let router = app::router(app.clone());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server::run(listener, tls, router, shutdown.clone()));
    Ok(Handle {
        addr,
        app,
        shutdown,
        task,
    })
}
