//! One Streamable HTTP service per gateway, made on first use and refreshed when the
//! gateway's definition changes.
//!
//! Separate services mean separate session managers: a session id from one gateway is
//! unknown on every other, so a client cannot carry a session across tenants or gateways.
//! A session also belongs to the user and agent that opened it ([`SessionOwners`]): a
//! session id seen in someone else's request is answered as an unknown session, so a
//! leaked id gives nobody else the session's stream, answers or pending questions.
//!
//! With replicas ([`Cluster`]), session ids name the replica holding the session, and a
//! request for another replica's session is carried there.

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

use super::server::GatewayServer;
use super::shared_state::Shared;
use crate::cluster::Cluster;
use crate::cluster::sessions::{public_id, split_id};
use crate::identity::{GatewayName, Principal};
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
    owners: SessionOwners,
    cluster: Option<Arc<Cluster>>,
}

/// The header naming a session (MCP Streamable HTTP).
const SESSION_HEADER: &str = "mcp-session-id";

/// At most this many sessions are remembered; past it the oldest are forgotten, and their
/// clients are asked to start a new session (an unknown session is never served).
const MAX_SESSIONS: usize = 65_536;

/// Who opened each session this process serves: its tenant, gateway, user id and agent.
#[derive(Debug, Default)]
pub struct SessionOwners {
    owners: std::sync::Mutex<HashMap<String, (Owner, Instant)>>,
}

/// The principal a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    tenant: String,
    gateway: String,
    user_id: String,
    agent: String,
}

impl Owner {
    fn of(p: &Principal, gateway: &str) -> Self {
        Self {
            tenant: p.tenant.to_string(),
            gateway: gateway.to_owned(),
            user_id: p.user_id.to_string(),
            agent: p.agent.to_string(),
        }
    }
}

impl SessionOwners {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Owner, Instant)>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `owner` may use `session`: only if it opened it. `None` for a session this
    /// process does not know (ended, forgotten, or never opened).
    fn allows(&self, session: &str, owner: &Owner) -> Option<bool> {
        self.lock().get(session).map(|(o, _)| o == owner)
    }

    /// Records that `owner` opened `session`.
    fn opened(&self, session: String, owner: Owner) {
        let mut owners = self.lock();
        if owners.len() >= MAX_SESSIONS
            && let Some(oldest) = owners
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            owners.remove(&oldest);
        }
        owners.insert(session, (owner, Instant::now()));
    }

    /// Forgets a session its owner ended.
    fn closed(&self, session: &str) {
        self.lock().remove(session);
    }
}

impl std::fmt::Debug for Gateways {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateways").finish_non_exhaustive()
    }
}

impl Gateways {
    /// Services for the gateways in `store`, on this replica of `cluster`, if any.
    pub fn new(store: Store, shared: Arc<Shared>, cluster: Option<Arc<Cluster>>) -> Self {
        Self {
            store,
            shared,
            entries: Mutex::new(HashMap::new()),
            owners: SessionOwners::default(),
            cluster,
        }
    }

    fn build(&self, gateway: Arc<GatewayRow>, name: Arc<GatewayName>) -> Service {
        let opts = &self.shared.options;
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(opts.allowed_hosts.clone())
            .with_allowed_origins(opts.allowed_origins.clone())
            .with_max_request_body_bytes(opts.max_body_bytes);
        let shared = self.shared.clone();
        StreamableHttpService::new(
            move || {
                Ok(GatewayServer::new(
                    shared.clone(),
                    gateway.clone(),
                    name.clone(),
                ))
            },
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
        // A stored name was checked when the gateway was made; one that no longer passes
        // names no gateway.
        let row = self.store.gateway(tenant, name).await?;
        let Some((row, name)) = row.and_then(|r| GatewayName::parse(&r.name).ok().map(|n| (r, n)))
        else {
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
                let service = self.build(gateway.clone(), Arc::new(name));
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
    mut req: Request,
) -> Response {
    // The authentication middleware put the principal there; without one, nothing is served.
    let Some(owner) = req
        .extensions()
        .get::<Principal>()
        .map(|p| Owner::of(p, &gateway))
    else {
        return (StatusCode::UNAUTHORIZED, "authentication required").into_response();
    };
    let mut session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let (Some(cluster), Some(id)) = (&gateways.cluster, &session) {
        match split_id(id) {
            Some((instance, local)) if instance == cluster.instance() => {
                let local = local.to_owned();
                if let Ok(v) = axum::http::HeaderValue::from_str(&local) {
                    req.headers_mut().insert(SESSION_HEADER, v);
                }
                session = Some(local);
            }
            Some((instance, _)) => {
                let max = gateways.shared.options.max_body_bytes;
                return cluster.forward_session(instance, req, max).await;
            }
            None => return (StatusCode::NOT_FOUND, "no such session").into_response(),
        }
    }
    if let Some(id) = &session {
        match gateways.owners.allows(id, &owner) {
            Some(true) => {}
            Some(false) => {
                warn!(tenant = %owner.tenant, gateway = %owner.gateway, user_id = %owner.user_id, agent = %owner.agent, "a session presented by someone other than the user and agent that opened it");
                return (StatusCode::NOT_FOUND, "no such session").into_response();
            }
            None => return (StatusCode::NOT_FOUND, "no such session").into_response(),
        }
    }
    let ends_session = req.method() == axum::http::Method::DELETE;
    match gateways.service(&tenant, &gateway).await {
        Ok(Some(service)) => match service.oneshot(req).await {
            Ok(mut resp) => {
                match &session {
                    None => {
                        if let Some(id) = resp
                            .headers()
                            .get(SESSION_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                        {
                            if let Some(cluster) = &gateways.cluster
                                && let Ok(v) = axum::http::HeaderValue::from_str(&public_id(
                                    cluster.instance(),
                                    &id,
                                ))
                            {
                                resp.headers_mut().insert(SESSION_HEADER, v);
                            }
                            gateways.owners.opened(id, owner);
                        }
                    }
                    Some(id) if ends_session && resp.status().is_success() => {
                        gateways.owners.closed(id);
                    }
                    Some(_) => {}
                }
                resp.map(axum::body::Body::new)
            }
            Err(never) => match never {},
        },
        Ok(None) => (StatusCode::NOT_FOUND, "no such gateway").into_response(),
        Err(e) => {
            warn!(error = %e, "gateway lookup failed");
            (StatusCode::SERVICE_UNAVAILABLE, "gateway lookup failed").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(user: &str, agent: &str) -> Owner {
        Owner {
            tenant: "acme".into(),
            gateway: "eng".into(),
            user_id: user.into(),
            agent: agent.into(),
        }
    }

    #[test]
    fn a_session_serves_only_the_user_and_agent_that_opened_it() {
        let owners = SessionOwners::default();
        owners.opened("s1".into(), owner("u-a", "claude"));
        let allows = |session, user, agent| owners.allows(session, &owner(user, agent));
        assert_eq!(allows("s1", "u-a", "claude"), Some(true));
        assert_eq!(allows("s1", "u-b", "claude"), Some(false), "another user");
        assert_eq!(allows("s1", "u-a", "cursor"), Some(false), "another agent");
        assert_eq!(allows("s2", "u-a", "claude"), None, "unknown session");
        owners.closed("s1");
        assert_eq!(allows("s1", "u-a", "claude"), None, "ended session");
    }
}
