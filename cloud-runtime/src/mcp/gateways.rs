//! One Streamable HTTP service per gateway, made on first use and refreshed when the
//! gateway's definition changes.
//!
//! Separate services mean separate session managers: a session id from one gateway is
//! unknown on every other, so a client cannot carry a session across tenants or gateways.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::Mutex;
use tower::ServiceExt;
use tracing::warn;

use super::server::{GatewayServer, Shared};
use crate::store::{GatewayRow, Store};

/// How long a gateway definition is trusted before it is read again.
const REFRESH: Duration = Duration::from_secs(5);

type Service = StreamableHttpService<GatewayServer, LocalSessionManager>;

struct Entry {
    checked: Instant,
    gateway: Arc<GatewayRow>,
    service: Service,
}

/// The gateways' services.
pub struct Gateways {
    store: Store,
    shared: Arc<Shared>,
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl std::fmt::Debug for Gateways {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateways").finish_non_exhaustive()
    }
}

impl Gateways {
    /// Services for the gateways in `store`.
    pub fn new(store: Store, shared: Arc<Shared>) -> Self {
        Self {
            store,
            shared,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn build(&self, gateway: Arc<GatewayRow>) -> Service {
        let opts = &self.shared.options;
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(opts.allowed_hosts.clone())
            .with_allowed_origins(opts.allowed_origins.clone())
            .with_max_request_body_bytes(opts.max_body_bytes);
        let shared = self.shared.clone();
        StreamableHttpService::new(
            move || Ok(GatewayServer::new(shared.clone(), gateway.clone())),
            Arc::new(LocalSessionManager::default()),
            config,
        )
    }

    async fn service(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<Service>, crate::store::StoreError> {
        let key = (tenant.to_owned(), name.to_owned());
        let mut entries = self.entries.lock().await;
        if let Some(e) = entries.get(&key)
            && e.checked.elapsed() < REFRESH
        {
            return Ok(Some(e.service.clone()));
        }
        let Some(row) = self.store.gateway(tenant, name).await? else {
            entries.remove(&key);
            return Ok(None);
        };
        match entries.get_mut(&key) {
            Some(e) if *e.gateway == row => {
                e.checked = Instant::now();
                Ok(Some(e.service.clone()))
            }
            _ => {
                let gateway = Arc::new(row);
                let service = self.build(gateway.clone());
                entries.insert(
                    key,
                    Entry {
                        checked: Instant::now(),
                        gateway,
                        service: service.clone(),
                    },
                );
                Ok(Some(service))
            }
        }
    }
}

/// `/t/{tenant}/g/{gateway}/mcp`: hands the request to the gateway's service.
pub async fn handle(
    State(gateways): State<Arc<Gateways>>,
    Path((tenant, gateway)): Path<(String, String)>,
    req: Request,
) -> Response {
    match gateways.service(&tenant, &gateway).await {
        Ok(Some(service)) => match service.oneshot(req).await {
            Ok(resp) => resp.map(axum::body::Body::new),
            Err(never) => match never {},
        },
        Ok(None) => (StatusCode::NOT_FOUND, "no such gateway").into_response(),
        Err(e) => {
            warn!(error = %e, "gateway lookup failed");
            (StatusCode::SERVICE_UNAVAILABLE, "gateway lookup failed").into_response()
        }
    }
}
