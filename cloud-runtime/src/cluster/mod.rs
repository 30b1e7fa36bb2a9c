//! Replicas of the runtime reaching each other over NATS (`serve --nats-url`): a call that
//! arrives at one replica runs on the tunnel another holds.
//!
//! - [`directory`]: which replica holds which tunnel, kept by every replica from the
//!   others' announcements and heartbeats; a silent replica's entries expire.
//! - [`relay`]: one call carried to the holder and its frames carried back (progress, logs,
//!   the tool's questions and their answers, cancellation).
//! - [`sessions`]: MCP sessions served by the replica that opened them, whichever replica
//!   a request lands on.
//! - [`routes`]: many calls on one subscription.
//! - [`messages`]: the protobuf messages they use.
//!
//! State that must survive a replica (tenants, policies, revocations, sessions' records)
//! lives in the shared store; NATS carries only what is live: tunnels and calls.

pub mod directory;
pub mod messages;
pub mod relay;
pub mod routes;
pub mod sessions;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::Client;
use futures_util::StreamExt;
use prost::Message as _;
use shared::call::{CallFailure, CallOutcome, outcome_from_wire};
use shared::identity::{ConnectorId, TenantId};
use shared::policy::{AllowRule, Site};
use shared::wire::{self, call_frame, call_response::Outcome};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::replica::ReplicaId;
use crate::tunnel::call::{BoxFuture, CallPeer, NoPeer};
use crate::tunnel::registry::{CallReport, CallSpec, ConnectorHandle, Registry, Remote};
use directory::{BEAT, Directory, Followup};
use messages::{Snapshot, SnapshotRequest};
use relay::RelayError;

/// The first token of every subject the runtime uses.
pub const SUBJECT_PREFIX: &str = "cloud-runtime";

/// Most replicas one call is offered to.
const MAX_HOLDERS: usize = 3;

/// How long a stopping replica still announces its tunnels closing (the runtime's drain
/// waits as long for them).
const DRAIN_ANNOUNCEMENTS: Duration = Duration::from_secs(2);

/// How long one page of a directory snapshot may take to come.
const SNAPSHOT_PAGE_WAIT: Duration = Duration::from_secs(2);

/// Where NATS is: `nats://host:port` or `tls://host:port`, with credentials in the URL or
/// in a credentials file. Shown without its password.
#[derive(Clone)]
pub struct NatsUrl(String);

/// Why a NATS URL was refused.
#[derive(Debug, thiserror::Error)]
#[error("NATS URL: {0}; expected nats://HOST:PORT or tls://HOST:PORT")]
pub struct BadNatsUrl(String);

impl FromStr for NatsUrl {
    type Err = BadNatsUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s).map_err(|e| BadNatsUrl(e.to_string()))?;
        if !matches!(url.scheme(), "nats" | "tls") {
            return Err(BadNatsUrl(format!(
                "scheme {:?} is not nats or tls",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(BadNatsUrl("no host".into()));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                write!(f, "{u}")
            }
            _ => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NatsUrl({self})")
    }
}

/// How to reach NATS.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// The server.
    pub url: NatsUrl,
    /// A `.creds` file (user JWT and NKey seed).
    pub credentials: Option<PathBuf>,
    /// CA certificates (PEM) that sign the server's TLS certificate, for `tls://`.
    pub tls_ca: Option<PathBuf>,
}

/// Why NATS could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The credentials file could not be read.
    #[error("NATS credentials {path}: {source}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server refused or could not be reached.
    #[error("NATS at {url}: {source}")]
    Connect {
        /// The server.
        url: NatsUrl,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// A subscription failed.
    #[error("NATS subscription: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
}

/// This replica's part in the cluster.
#[derive(Debug)]
pub struct Cluster {
    client: Client,
    directory: Directory,
    /// Directory messages to publish, in order.
    outbox: mpsc::UnboundedSender<bytes::Bytes>,
    calls: Arc<relay::Calls>,
    rotation: AtomicUsize,
}

impl Cluster {
    /// Joins NATS as `replica`, routes `registry`'s calls through it, and serves other
    /// replicas' calls on `registry`'s tunnels until `shutdown`.
    pub async fn join(
        opts: &NatsOptions,
        replica: &ReplicaId,
        registry: Arc<Registry>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ClusterError> {
        let mut connect = async_nats::ConnectOptions::new()
            .name(format!("cloud-runtime {replica}"))
            .connection_timeout(Duration::from_secs(5))
            .ping_interval(Duration::from_secs(10));
        if let Some(path) = &opts.credentials {
            connect = connect.credentials_file(path).await.map_err(|source| {
                ClusterError::Credentials {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        if let Some(ca) = &opts.tls_ca {
            connect = connect.add_root_certificates(ca.clone()).require_tls(true);
        }
        let client = connect
            .connect(opts.url.0.as_str())
            .await
            .map_err(|source| ClusterError::Connect {
                url: opts.url.clone(),
                source,
            })?;
        let instance = rand::random::<u64>();
        let directory = Directory::new(
            replica.to_string(),
            instance,
            registry.tools_changed().clone(),
        );
        let directory_subject = format!("{SUBJECT_PREFIX}.directory");
        let mut announcements = client.subscribe(directory_subject.clone()).await?;
        let mut snapshot_requests = client.subscribe(snapshot_subject(instance)).await?;
        let relayed = client
            .subscribe(relay::subject(SUBJECT_PREFIX, instance))
            .await?;
        let answers = client
            .subscribe(relay::answer_subject(SUBJECT_PREFIX, instance))
            .await?;
        let calls = relay::Calls::new(client.clone(), tracker, shutdown.clone()).await?;
        let (outbox, mut outgoing) = mpsc::unbounded_channel::<bytes::Bytes>();
        let cluster = Arc::new(Self {
            client: client.clone(),
            directory,
            outbox,
            calls,
            rotation: AtomicUsize::new(0),
        });
        registry.set_remote(cluster.clone());
        info!(url = %opts.url, instance = format_args!("{instance:016x}"), "joined the cluster over NATS");

        // Announcements and heartbeats, in order, from one task. At shutdown it goes on
        // announcing the tunnels that close while the runtime drains, so the others stop
        // routing calls here before this replica is gone.
        let c = cluster.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let mut beat = tokio::time::interval(BEAT);
            let mut until: Option<Instant> = None;
            loop {
                let payload = tokio::select! {
                    _ = stop.cancelled(), if until.is_none() => {
                        until = Some(Instant::now() + DRAIN_ANNOUNCEMENTS);
                        continue;
                    }
                    () = tokio::time::sleep_until(until.unwrap_or_else(Instant::now)), if until.is_some() => break,
                    _ = beat.tick(), if until.is_none() => {
                        c.directory.expire();
                        c.directory.beat().into()
                    }
                    Some(p) = outgoing.recv() => p,
                };
                if let Err(e) = c.client.publish(directory_subject.clone(), payload).await {
                    warn!(error = %e, "directory message not published");
                }
            }
            let _ = c.client.flush().await;
        });
        // Others' announcements; a gap fetches a snapshot.
        let c = cluster.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = stop.cancelled() => return,
                    m = announcements.next() => m,
                };
                let Some(msg) = msg else { return };
                if let Followup::Snapshot(instance) = c.directory.receive(&msg.payload) {
                    let c = c.clone();
                    tokio::spawn(async move {
                        let snapshot = c.fetch_snapshot(instance).await;
                        c.directory.apply_snapshot(instance, snapshot);
                    });
                }
            }
        });
        // Snapshots of this replica's tunnels, for whoever asks.
        let c = cluster.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = stop.cancelled() => return,
                    m = snapshot_requests.next() => m,
                };
                let Some(msg) = msg else { return };
                if let Some(reply) = msg.reply {
                    let page = SnapshotRequest::decode(msg.payload.as_ref()).map_or(0, |r| r.page);
                    let max = c.client.server_info().max_payload;
                    let _ = c
                        .client
                        .publish(reply, c.directory.snapshot_page(page, max).into())
                        .await;
                }
            }
        });
        // Calls other replicas relay to this one's tunnels.
        let serving = relay::serve(client, registry, relayed, answers, tracker.clone());
        tracker.spawn(async move {
            tokio::select! {
                () = serving => {}
                () = shutdown.cancelled() => {}
            }
        });
        Ok(cluster)
    }

    /// This process's instance (random per start), which session ids name.
    pub fn instance(&self) -> u64 {
        self.directory.instance()
    }

    /// Serves the MCP requests other replicas carry here for sessions this one holds, on
    /// `router`, until `shutdown`.
    pub async fn serve_sessions(
        &self,
        router: axum::Router,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<(), ClusterError> {
        let instance = self.instance();
        let requests = self
            .client
            .subscribe(sessions::request_subject(SUBJECT_PREFIX, instance))
            .await?;
        let cancels = self
            .client
            .subscribe(sessions::cancel_subject(SUBJECT_PREFIX, instance))
            .await?;
        let serving = sessions::serve(
            self.client.clone(),
            router,
            requests,
            cancels,
            tracker.clone(),
        );
        tracker.spawn(async move {
            tokio::select! {
                () = serving => {}
                () = shutdown.cancelled() => {}
            }
        });
        Ok(())
    }

    /// Carries an MCP request for a session replica `instance` holds there, and its
    /// answer back.
    pub async fn forward_session(
        &self,
        instance: u64,
        req: axum::extract::Request,
        max_body: usize,
    ) -> axum::response::Response {
        sessions::forward(&self.calls, SUBJECT_PREFIX, instance, req, max_body).await
    }

    /// Every page of `instance`'s directory snapshot, joined; `None` (logged) when a
    /// request fails or the pages disagree, so that the next heartbeat asks again.
    async fn fetch_snapshot(&self, instance: u64) -> Option<Snapshot> {
        let page = |page: u32| async move {
            let request = SnapshotRequest { page }.encode_to_vec();
            match tokio::time::timeout(
                SNAPSHOT_PAGE_WAIT,
                self.client
                    .request(snapshot_subject(instance), request.into()),
            )
            .await
            {
                Ok(Ok(m)) if m.status.is_none() => Some(m.payload),
                Ok(Ok(m)) => {
                    debug!(status = ?m.status, page, "directory snapshot page not served");
                    None
                }
                Ok(Err(e)) => {
                    debug!(error = %e, page, "directory snapshot page not served");
                    None
                }
                Err(_) => {
                    debug!(page, "directory snapshot page timed out");
                    None
                }
            }
        };
        let first = page(0).await?;
        let count = match directory::page_count(&first) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "directory snapshot dropped");
                return None;
            }
        };
        let mut pages = vec![first];
        for p in 1..count {
            pages.push(page(p).await?);
        }
        directory::join_pages(&pages)
            .inspect_err(|e| warn!(error = %e, "directory snapshot dropped"))
            .ok()
    }

    /// Whether the NATS connection is up (for readiness).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn announce(&self, payload: Vec<u8>) {
        let _ = self.outbox.send(payload.into());
    }

    /// Offers `first` to the holders of the tunnels `route` names, until one answers or
    /// one may have run it.
    async fn relay(
        &self,
        route: Route<'_>,
        first: call_frame::Kind,
        timeout: Duration,
        peer: &dyn CallPeer,
    ) -> Option<(ConnectorId, Result<wire::CallResponse, CallFailure>)> {
        let rotation = self.rotation.fetch_add(1, Ordering::Relaxed);
        let Route {
            tenant,
            connector,
            tool,
            site,
        } = route;
        let holders = self
            .directory
            .candidates(tenant, connector, tool, site, rotation);
        let deadline = Instant::now() + timeout;
        for (instance, connector) in holders.into_iter().take(MAX_HOLDERS) {
            let holder = relay::Holder {
                prefix: SUBJECT_PREFIX,
                instance,
                tenant,
                connector: &connector,
            };
            match self
                .calls
                .exchange(holder, first.clone(), deadline, peer)
                .await
            {
                Ok(response) => return Some((connector, Ok(response))),
                Err(RelayError::Lost(f)) => return Some((connector, Err(f))),
                Err(RelayError::Gone) => {
                    info!(%connector, "the replica holding the connector is gone; trying another");
                    self.directory.forget(instance);
                }
                Err(RelayError::NotRun(why)) => {
                    info!(%connector, reason = %why, "relayed call not taken; trying another replica");
                }
            }
        }
        // Every holder turned it down unrun: the caller reports why none serves it.
        None
    }
}

/// Which tunnels may take a relayed call: the tenant's (only `connector`'s, if given) that
/// serve `tool` at `site` (any tool, if empty).
#[derive(Debug, Clone, Copy)]
struct Route<'a> {
    tenant: &'a TenantId,
    connector: Option<&'a ConnectorId>,
    tool: &'a str,
    site: &'a Site,
}

fn snapshot_subject(instance: u64) -> String {
    format!("{SUBJECT_PREFIX}.snapshot.{instance:016x}")
}

impl Remote for Cluster {
    fn local_up(&self, handle: &Arc<ConnectorHandle>) {
        self.announce(self.directory.up(handle));
    }

    fn local_down(&self, handle: &Arc<ConnectorHandle>) {
        if let Some(m) = self.directory.down(&handle.session_id) {
            self.announce(m);
        }
    }

    fn tools(&self, tenant: &TenantId) -> Vec<Arc<wire::ToolSpec>> {
        let mut tools = Vec::new();
        self.directory
            .each(tenant, |t| tools.extend(t.tools.iter().cloned()));
        tools
    }

    fn rules(&self, tenant: &TenantId, tool: &str) -> Vec<AllowRule> {
        let mut rules = Vec::new();
        self.directory.each(tenant, |t| {
            if t.tools.iter().any(|s| s.name == tool) {
                rules.extend(t.rules.0.iter().cloned());
            }
        });
        rules
    }

    fn tenant_of(&self, connector: &ConnectorId) -> Option<TenantId> {
        self.directory.tenant_of(connector)
    }

    fn call<'a>(
        &'a self,
        tenant: &'a TenantId,
        spec: &'a CallSpec,
        peer: &'a dyn CallPeer,
    ) -> BoxFuture<'a, Option<CallReport>> {
        Box::pin(async move {
            let request = crate::tunnel::registry::request_of(spec);
            let (connector, response) = self
                .relay(
                    Route {
                        tenant,
                        connector: None,
                        tool: &spec.tool,
                        site: &spec.site,
                    },
                    call_frame::Kind::Request(request),
                    spec.timeout,
                    peer,
                )
                .await?;
            Some(match response {
                Ok(r) => CallReport {
                    actions: r.actions.clone(),
                    receipt: r.receipt.clone(),
                    outcome: outcome_from_wire(r),
                    connector: Some(connector),
                },
                Err(f) => CallReport {
                    outcome: Err(f),
                    actions: Vec::new(),
                    connector: Some(connector),
                    receipt: None,
                },
            })
        })
    }

    fn preview<'a>(
        &'a self,
        tenant: &'a TenantId,
        spec: &'a CallSpec,
    ) -> BoxFuture<'a, Option<Result<Option<wire::Effect>, CallFailure>>> {
        Box::pin(async move {
            let request = crate::tunnel::registry::request_of(spec);
            let (_, response) = self
                .relay(
                    Route {
                        tenant,
                        connector: None,
                        tool: &spec.tool,
                        site: &spec.site,
                    },
                    call_frame::Kind::Preview(request),
                    spec.timeout,
                    &NoPeer,
                )
                .await?;
            Some(response.and_then(|r| match r.outcome {
                Some(Outcome::Effect(e)) => Ok(Some(e)),
                Some(Outcome::Error(e)) => Err(CallFailure::from_wire(e)),
                None => Ok(None),
                Some(Outcome::Output(_)) => Err(CallFailure::new(
                    wire::ErrorCode::Malformed,
                    "a preview was answered with a tool's output",
                )),
            }))
        })
    }

    fn direct<'a>(
        &'a self,
        tenant: &'a TenantId,
        connector: &'a ConnectorId,
        first: call_frame::Kind,
        timeout: Duration,
    ) -> BoxFuture<'a, Option<CallOutcome>> {
        Box::pin(async move {
            let (_, response) = self
                .relay(
                    Route {
                        tenant,
                        connector: Some(connector),
                        tool: "",
                        site: &Site::default(),
                    },
                    first,
                    timeout,
                    &NoPeer,
                )
                .await?;
            Some(response.and_then(outcome_from_wire))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_urls_are_checked_and_shown_without_password() {
        let url: NatsUrl = "nats://rt:s3cret@nats.internal:4222".parse().unwrap();
        assert_eq!(url.to_string(), "nats://rt:***@nats.internal:4222");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!("http://nats:4222".parse::<NatsUrl>().is_err());
        assert!("nats://".parse::<NatsUrl>().is_err());
        assert!("tls://nats.internal:4222".parse::<NatsUrl>().is_ok());
    }
}
