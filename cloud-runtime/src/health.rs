//! Liveness and readiness, for load balancers and orchestrators in front of replicas.
//!
//! - `GET /livez` (and `/healthz`): the process serves HTTP. Restart it if this fails.
//! - `GET /readyz`: it can serve calls: its store answers, it is connected to NATS (when
//!   it is one of several replicas) and it is not shutting down. Send it no traffic while
//!   this fails (503); it comes back by itself when the database or NATS does.
//!
//! The store is asked at most once per 500 ms, whatever the request rate, so the
//! endpoint (public, like every health check) cannot be used to load the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::cluster::Cluster;
use crate::store::Store;

/// How long an answer of the store stands for.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// How long the store may take to answer before the replica counts as not ready.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/readyz` looks at.
#[derive(Clone)]
pub struct Readiness {
    store: Store,
    cluster: Option<Arc<Cluster>>,
    shutdown: CancellationToken,
    /// The last check: when, and whether the store answered.
    last: Arc<Mutex<Option<(Instant, bool)>>>,
}

impl Readiness {
    /// Readiness of a runtime with `store` (and `cluster`, if scaled out), ending when
    /// `shutdown` is cancelled.
    pub fn new(store: Store, cluster: Option<Arc<Cluster>>, shutdown: CancellationToken) -> Self {
        Self {
            store,
            cluster,
            shutdown,
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether the store answers (asked again once the last answer is older than
    /// [`CHECK_EVERY`]; concurrent callers share one question).
    async fn store_answers(&self) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < CHECK_EVERY
        {
            return ok;
        }
        let ok = match tokio::time::timeout(CHECK_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                warn!(error = %e, "not ready: the store does not answer");
                false
            }
            Err(_) => {
                warn!(timeout = ?CHECK_TIMEOUT, "not ready: the store did not answer in time");
                false
            }
        };
        *last = Some((Instant::now(), ok));
        ok
    }
}

/// The health routes.
pub fn routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/livez", get(live))
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .with_state(readiness)
}

async fn live() -> &'static str {
    "ok"
}

async fn ready(State(r): State<Readiness>) -> Response {
    let (status, body) = if r.shutdown.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"ready": false, "reason": "shutting down"}),
        )
    } else if r.cluster.as_ref().is_some_and(|c| !c.connected()) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"ready": false, "reason": "not connected to NATS"}),
        )
    } else if r.store_answers().await {
        (StatusCode::OK, serde_json::json!({"ready": true}))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"ready": false, "reason": "the store does not answer"}),
        )
    };
    (status, axum::Json(body)).into_response()
}
