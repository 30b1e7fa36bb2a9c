//! Online connectors, per tenant.
//!
//! A tenant may run several connectors for availability, but a connector holds one live
//! tunnel, QUIC or SSH, plus an overlap: after a certificate renewal, or when it moves
//! between transports, it connects anew before draining the old tunnel (make before break),
//! and a restarted connector reconnects before the runtime notices its old tunnel is dead.
//! So the newest tunnel of a connector retires the older ones, whatever their transport:
//! they take no new calls at once and are closed after
//! [`OVERLAP`], which leaves in-flight calls time to finish. A copy of the connector's key
//! therefore cannot hold a tunnel beside the real one, and is refused outright once the
//! real connector has renewed ([`super::lineage`]).
//!
//! Calls go to a non-draining tunnel of the tenant with the fewest calls in flight; ties
//! rotate.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use serde::Serialize;
use shared::call::{CallFailure, CallOutcome, harmless_to_repeat};
use shared::close::CloseCode;
use shared::identity::{ConnectorId, ConnectorIdentity, TenantId};
use shared::link::Link;
use shared::policy::{AllowRule, RuleSet, Scope, Site};
use shared::wire::{self, ErrorCode};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::call::{self, Ack, BoxFuture};
use crate::tools_changed::ToolsChanged;

/// How long a tunnel replaced by a newer one of the same connector stays open (taking no
/// new calls) before the runtime closes it.
pub const OVERLAP: Duration = Duration::from_secs(30);

/// How long a call that is harmless to repeat waits for the connector's acknowledgement
/// before it goes to another tunnel. Acknowledging costs the connector one frame decode;
/// far longer means the tunnel died unnoticed (a loss is declared only after missed
/// heartbeats).
pub const ACK_WAIT: Duration = Duration::from_secs(2);

/// Most tunnels one call is offered to.
const MAX_ATTEMPTS: usize = 3;

/// One live tunnel.
#[derive(Debug)]
pub struct ConnectorHandle {
    /// Who is at the other end (from the client certificate).
    pub identity: ConnectorIdentity,
    /// Unique per tunnel, to tell a replaced tunnel from its successor.
    pub session_id: String,
    /// Which of the connector's concurrent tunnels this is: a new tunnel replaces only the
    /// older ones of its own slot, so a connector keeps one tunnel per replica it dials.
    pub slot: u32,
    /// The transport it runs on.
    pub transport: &'static str,
    /// Serial of the certificate it was opened with, hex.
    pub cert_serial: String,
    /// Connector build version.
    pub version: String,
    /// Tools the connector offers, by name (shared: every call looks one up).
    pub tools: BTreeMap<String, Arc<wire::ToolSpec>>,
    /// The connector's local policy, which it enforces on every call.
    pub local_policy: RuleSet,
    /// Whether the connector acknowledges calls before running them.
    ack: Ack,
    connection: Link,
    draining: AtomicBool,
    in_flight: AtomicUsize,
    retired: CancellationToken,
}

impl ConnectorHandle {
    /// A handle for an accepted tunnel.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        identity: ConnectorIdentity,
        session_id: String,
        slot: u32,
        transport: &'static str,
        cert_serial: String,
        version: String,
        tools: Vec<wire::ToolSpec>,
        local_policy: RuleSet,
        ack: Ack,
        connection: Link,
    ) -> Self {
        Self {
            identity,
            session_id,
            slot,
            transport,
            cert_serial,
            version,
            tools: tools
                .into_iter()
                .map(|t| (t.name.clone(), Arc::new(t)))
                .collect(),
            local_policy,
            ack,
            connection,
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            retired: CancellationToken::new(),
        }
    }

    /// Resolves once a newer tunnel of the same connector has replaced this one; its
    /// session then closes it after [`OVERLAP`].
    pub async fn retired(&self) {
        self.retired.cancelled().await;
    }

    fn retire(&self) {
        self.set_draining();
        self.retired.cancel();
    }

    /// Stops routing new calls here.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    fn available(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.connection.close_reason().is_none()
    }

    fn spec(&self, tool: &str) -> Option<&Arc<wire::ToolSpec>> {
        self.tools.get(tool)
    }

    /// Whether this tunnel offers `tool` and its local policy allows it at `site`.
    fn serves(&self, tool: &str, site: &Site) -> bool {
        self.spec(tool).is_some() && self.local_policy.allows(tool, site)
    }

    /// Closes the tunnel.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.connection.close(code, reason);
    }
}

/// A summary of one online tunnel.
#[derive(Debug, Clone, Serialize)]
pub struct OnlineConnector {
    /// Tenant.
    pub tenant: String,
    /// Connector id.
    pub connector: String,
    /// Build version.
    pub version: String,
    /// Calls in flight.
    pub in_flight: usize,
    /// Draining.
    pub draining: bool,
}

/// What to call.
#[derive(Debug, Clone)]
pub struct CallSpec {
    /// The call's id ([`Registry::new_call_id`]), shared with its audit records.
    pub call_id: u64,
    /// Tool name.
    pub tool: String,
    /// Arguments, JSON object text.
    pub arguments_json: Vec<u8>,
    /// Time budget.
    pub timeout: Duration,
    /// On whose behalf.
    pub caller: wire::Caller,
    /// The instance and repository the call acts on, where the tool names them: only a
    /// connector whose local policy allows it gets the call.
    pub site: Site,
    /// W3C traceparent to continue, if any.
    pub traceparent: String,
    /// The values the user confirmed, which the call is held to (empty: not confirmed).
    pub binding: std::collections::BTreeMap<String, String>,
    /// The identity provider's ID token for the user ([`wire::CallRequest::user_proof`]);
    /// empty for a local user.
    pub user_proof: String,
    /// The user's approval of this call ([`wire::CallRequest::approval`]); empty if none.
    pub approval: String,
}

/// How a call went, with what the audit trail needs.
#[derive(Debug)]
pub struct CallReport {
    /// The result.
    pub outcome: CallOutcome,
    /// The upstream requests the connector made.
    pub actions: Vec<wire::UpstreamAction>,
    /// The connector that ran it, if one was reached.
    pub connector: Option<ConnectorId>,
    /// That connector's signed receipt for its own record of the call.
    pub receipt: Option<wire::CallReceipt>,
}

/// The report of a call no tunnel took.
fn unserved(failure: CallFailure) -> CallReport {
    CallReport {
        outcome: Err(failure),
        actions: Vec::new(),
        connector: None,
        receipt: None,
    }
}

/// The wire request of a call.
pub fn request_of(spec: &CallSpec) -> wire::CallRequest {
    wire::CallRequest {
        call_id: spec.call_id,
        tool: spec.tool.clone(),
        arguments_json: spec.arguments_json.clone(),
        timeout_ms: u64::try_from(spec.timeout.as_millis()).unwrap_or(u64::MAX),
        traceparent: spec.traceparent.clone(),
        tracestate: String::new(),
        caller: Some(spec.caller.clone()),
        interactive: false,
        binding: spec.binding.clone(),
        user_proof: spec.user_proof.clone(),
        approval: spec.approval.clone(),
    }
}

/// The tunnels of other replicas, and the way to them: what the registry asks when no
/// tunnel of its own can take a call. The scale-out runtime implements it over NATS
/// ([`crate::cluster`]); a single process has none.
pub trait Remote: Send + Sync + std::fmt::Debug {
    /// A tunnel of this replica came up: tell the others.
    fn local_up(&self, handle: &Arc<ConnectorHandle>);
    /// A tunnel of this replica went down or stopped taking calls: tell the others.
    fn local_down(&self, handle: &Arc<ConnectorHandle>);
    /// The tools the tenant's connectors elsewhere offer (any order, maybe repeated).
    fn tools(&self, tenant: &TenantId) -> Vec<Arc<wire::ToolSpec>>;
    /// The local-policy rules of the tenant's connectors elsewhere that offer `tool`.
    fn rules(&self, tenant: &TenantId, tool: &str) -> Vec<AllowRule>;
    /// The tenant of a connector online elsewhere.
    fn tenant_of(&self, connector: &ConnectorId) -> Option<TenantId>;
    /// Runs a call on a tunnel elsewhere; `None` when no other replica's tunnel serves it.
    fn call<'a>(
        &'a self,
        tenant: &'a TenantId,
        spec: &'a CallSpec,
        peer: &'a dyn call::CallPeer,
    ) -> BoxFuture<'a, Option<CallReport>>;
    /// Asks a connector elsewhere what `spec` would do; `None` when none serves it.
    fn preview<'a>(
        &'a self,
        tenant: &'a TenantId,
        spec: &'a CallSpec,
    ) -> BoxFuture<'a, Option<Result<Option<wire::Effect>, CallFailure>>>;
    /// Relays a request addressed to `connector` itself (an upstream authorization code,
    /// an administrator's connections request) to it elsewhere; `None` when it is online
    /// nowhere else.
    fn direct<'a>(
        &'a self,
        tenant: &'a TenantId,
        connector: &'a ConnectorId,
        first: wire::call_frame::Kind,
        timeout: Duration,
    ) -> BoxFuture<'a, Option<CallOutcome>>;
}

/// The online connectors.
#[derive(Debug, Default)]
pub struct Registry {
    tenants: RwLock<HashMap<TenantId, Vec<Arc<ConnectorHandle>>>>,
    next_call_id: AtomicU64,
    rotation: AtomicUsize,
    changes: ToolsChanged,
    remote: OnceLock<Arc<dyn Remote>>,
}

impl Registry {
    /// A registry announcing tunnels that come and go on `changes`.
    pub fn new(changes: ToolsChanged) -> Self {
        Self {
            changes,
            ..Self::default()
        }
    }

    /// Routes calls that no tunnel here can take to the tunnels of other replicas, and
    /// tells them about the tunnels here. Set once, at start; later calls are ignored.
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        let _ = self.remote.set(remote);
    }

    /// Where tunnels coming and going are announced to MCP sessions.
    pub fn tools_changed(&self) -> &ToolsChanged {
        &self.changes
    }

    /// A fresh call id.
    pub fn new_call_id(&self) -> u64 {
        self.next_call_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a tunnel, retiring the older tunnels of the same connector and slot, whatever
    /// their transport; returns how many it retired.
    pub fn insert(&self, handle: Arc<ConnectorHandle>) -> usize {
        let tenant = handle.identity.tenant.clone();
        let mut retired = 0;
        {
            let mut map = self.tenants.write().unwrap_or_else(|p| p.into_inner());
            let list = map.entry(tenant.clone()).or_default();
            for old in list.iter().filter(|h| {
                h.identity.connector == handle.identity.connector
                    && h.slot == handle.slot
                    && !h.retired.is_cancelled()
            }) {
                old.retire();
                retired += 1;
            }
            list.push(handle.clone());
        }
        if let Some(remote) = self.remote.get() {
            remote.local_up(&handle);
        }
        self.changes.notify(&tenant);
        retired
    }

    /// Removes a tunnel.
    pub fn remove(&self, handle: &Arc<ConnectorHandle>) {
        {
            let mut map = self.tenants.write().unwrap_or_else(|p| p.into_inner());
            if let Some(list) = map.get_mut(&handle.identity.tenant) {
                list.retain(|h| !Arc::ptr_eq(h, handle));
                if list.is_empty() {
                    map.remove(&handle.identity.tenant);
                }
            }
        }
        if let Some(remote) = self.remote.get() {
            remote.local_down(handle);
        }
        self.changes.notify(&handle.identity.tenant);
    }

    /// Closes every tunnel of `connector`; returns how many.
    pub fn close_connector(&self, connector: &str, code: CloseCode, reason: &str) -> usize {
        let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        for h in map
            .values()
            .flatten()
            .filter(|h| h.identity.connector.as_str() == connector)
        {
            h.close(code, reason);
            n += 1;
        }
        n
    }

    /// Whether any tunnel is up.
    pub fn is_empty(&self) -> bool {
        self.tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Online tunnels.
    pub fn online(&self) -> Vec<OnlineConnector> {
        let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .flatten()
            .map(|h| OnlineConnector {
                tenant: h.identity.tenant.to_string(),
                connector: h.identity.connector.to_string(),
                version: h.version.clone(),
                in_flight: h.in_flight.load(Ordering::Relaxed),
                draining: h.draining.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The tools offered by the tenant's online connectors, one per name, sorted by name.
    pub fn tools(&self, tenant: &TenantId) -> Vec<Arc<wire::ToolSpec>> {
        let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let mut tools: BTreeMap<&str, &Arc<wire::ToolSpec>> = BTreeMap::new();
        for h in map
            .get(tenant)
            .into_iter()
            .flatten()
            .filter(|h| h.available())
        {
            for (name, t) in &h.tools {
                tools.entry(name).or_insert(t);
            }
        }
        let mut tools: BTreeMap<String, Arc<wire::ToolSpec>> = tools
            .into_iter()
            .map(|(n, t)| (n.to_owned(), t.clone()))
            .collect();
        if let Some(remote) = self.remote.get() {
            for t in remote.tools(tenant) {
                tools.entry(t.name.clone()).or_insert(t);
            }
        }
        tools.into_values().collect()
    }

    /// The spec of `tool` as an online connector of the tenant declares it.
    pub fn spec(&self, tenant: &TenantId, tool: &str) -> Option<Arc<wire::ToolSpec>> {
        let here = {
            let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
            map.get(tenant).and_then(|l| {
                l.iter()
                    .filter(|h| h.available())
                    .find_map(|h| h.spec(tool).cloned())
            })
        };
        here.or_else(|| {
            self.remote
                .get()?
                .tools(tenant)
                .into_iter()
                .find(|t| t.name == tool)
        })
    }

    /// Where the local policies of the tenant's online connectors that offer `tool` allow
    /// it: the connector layer of the permission intersection.
    pub fn connector_scope(&self, tenant: &TenantId, tool: &str) -> Scope {
        let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let mut rules = Vec::new();
        for h in map
            .get(tenant)
            .into_iter()
            .flatten()
            .filter(|h| h.available() && h.spec(tool).is_some())
        {
            rules.extend(h.local_policy.0.iter().cloned());
        }
        drop(map);
        if let Some(remote) = self.remote.get() {
            rules.extend(remote.rules(tenant, tool));
        }
        RuleSet(rules).scope(tool)
    }

    /// Whether the tenant has a tunnel that takes calls.
    pub fn has_online(&self, tenant: &TenantId) -> bool {
        let here = {
            let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
            map.get(tenant)
                .is_some_and(|l| l.iter().any(|h| h.available()))
        };
        here || self
            .remote
            .get()
            .is_some_and(|r| !r.tools(tenant).is_empty())
    }

    /// The tenant of an online connector.
    pub fn tenant_of(&self, connector: &ConnectorId) -> Option<TenantId> {
        let here = {
            let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
            map.values()
                .flatten()
                .find(|h| &h.identity.connector == connector)
                .map(|h| h.identity.tenant.clone())
        };
        here.or_else(|| self.remote.get()?.tenant_of(connector))
    }

    /// The tenant of a connector online at this replica.
    pub fn tenant_of_here(&self, connector: &ConnectorId) -> Option<TenantId> {
        let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .flatten()
            .find(|h| &h.identity.connector == connector && h.available())
            .map(|h| h.identity.tenant.clone())
    }

    /// Relays an upstream authorization code to the connector that asked the user to
    /// connect (only it holds the state's verifier and the client secret).
    pub async fn authorize(
        &self,
        tenant: &TenantId,
        connector: &ConnectorId,
        callback: wire::AuthorizeCallback,
        timeout: Duration,
    ) -> CallOutcome {
        self.direct(
            tenant,
            connector,
            wire::call_frame::Kind::Authorize(callback),
            timeout,
        )
        .await
    }

    /// Asks `connector` for its users' upstream connections, or to revoke one, for a
    /// tenant administrator.
    pub async fn connections(
        &self,
        tenant: &TenantId,
        connector: &ConnectorId,
        request: wire::ConnectionsRequest,
        timeout: Duration,
    ) -> CallOutcome {
        self.direct(
            tenant,
            connector,
            wire::call_frame::Kind::Connections(request),
            timeout,
        )
        .await
    }

    /// Sends `first`, a request addressed to `connector` itself rather than to a tool, on
    /// one of its tunnels here or elsewhere.
    pub async fn direct(
        &self,
        tenant: &TenantId,
        connector: &ConnectorId,
        first: wire::call_frame::Kind,
        timeout: Duration,
    ) -> CallOutcome {
        let handle = {
            let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
            map.get(tenant)
                .into_iter()
                .flatten()
                .filter(|h| h.available() && &h.identity.connector == connector)
                .min_by_key(|h| h.in_flight.load(Ordering::Relaxed))
                .cloned()
        };
        let Some(handle) = handle else {
            if let Some(remote) = self.remote.get()
                && let Some(outcome) = remote.direct(tenant, connector, first, timeout).await
            {
                return outcome;
            }
            return Err(CallFailure::new(
                ErrorCode::Unavailable,
                format!("connector {connector} is not online; start again from the tool call"),
            ));
        };
        match call::direct(&handle.connection, first, timeout).await {
            Ok(outcome) => outcome,
            Err(call::Error::NotSent(e)) => Err(CallFailure::new(ErrorCode::Unavailable, e)),
            Err(call::Error::Failed(f) | call::Error::Unacknowledged(f)) => Err(f),
        }
    }

    /// Why no tunnel can take a call: none is up (retryable), none offers the tool, or
    /// their local policies refuse the target.
    fn why_unserved(
        &self,
        tenant: &TenantId,
        connector: Option<&ConnectorId>,
        tool: &str,
        site: &Site,
    ) -> CallFailure {
        let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let up: Vec<&Arc<ConnectorHandle>> = map
            .get(tenant)
            .into_iter()
            .flatten()
            .filter(|h| h.available() && connector.is_none_or(|c| &h.identity.connector == c))
            .collect();
        if up.is_empty() {
            return CallFailure::new(
                ErrorCode::Unavailable,
                format!(
                    "no online connector for tenant {tenant}; retry shortly or check `cloud-runtime connector list`"
                ),
            )
            .retry_after(Duration::from_secs(1));
        }
        if !up.iter().any(|h| h.spec(tool).is_some()) {
            return CallFailure::new(
                ErrorCode::UnknownTool,
                format!("no online connector of tenant {tenant} has a tool named {tool}"),
            );
        }
        CallFailure::new(
            ErrorCode::Denied,
            if site.instance.is_none() && site.repo.is_none() {
                format!("no connector's local policy allows {tool}")
            } else {
                format!("no connector's local policy allows {tool} on {site}")
            },
        )
    }

    /// Picks a tunnel of `tenant` (optionally of one connector) that serves `tool` at
    /// `site`, for a new call, other than the tunnels (by session id) in `tried`.
    fn pick(
        &self,
        tenant: &TenantId,
        connector: Option<&ConnectorId>,
        tool: &str,
        site: &Site,
        tried: &[String],
    ) -> Option<Arc<ConnectorHandle>> {
        let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let list = map.get(tenant)?;
        let start = self.rotation.fetch_add(1, Ordering::Relaxed);
        let n = list.len();
        (0..n)
            .filter_map(|i| list.get((start + i) % n))
            .filter(|h| {
                h.available()
                    && connector.is_none_or(|c| &h.identity.connector == c)
                    && h.serves(tool, site)
                    && !tried.contains(&h.session_id)
            })
            .min_by_key(|h| h.in_flight.load(Ordering::Relaxed))
            .cloned()
    }

    /// Runs a call on a connector of `tenant` (never another tenant's) that offers the tool
    /// and whose local policy allows it, within the call's time budget: on a tunnel of this
    /// replica if one takes it, else on another replica's ([`Remote`]). A tunnel here that is
    /// draining (this replica is stopping, or the connector is) takes no call, so the call
    /// goes to the connector's tunnel at another replica.
    pub async fn call(
        &self,
        tenant: &TenantId,
        connector: Option<&ConnectorId>,
        spec: CallSpec,
        peer: &dyn call::CallPeer,
    ) -> CallReport {
        let spec = match self.try_here(tenant, connector, spec, peer).await {
            Ok(report) => return report,
            Err(spec) => spec,
        };
        if connector.is_none()
            && let Some(remote) = self.remote.get()
            && let Some(report) = remote.call(tenant, &spec, peer).await
        {
            return report;
        }
        unserved(self.why_unserved(tenant, connector, &spec.tool, &spec.site))
    }

    /// Whether a tunnel of this replica (of `connector`, if given) takes `tool` at `site`.
    pub fn serves_here(
        &self,
        tenant: &TenantId,
        connector: Option<&ConnectorId>,
        tool: &str,
        site: &Site,
    ) -> bool {
        self.pick(tenant, connector, tool, site, &[]).is_some()
    }

    /// Runs a call on a tunnel of this replica only; a failure when none takes it.
    pub async fn call_here(
        &self,
        tenant: &TenantId,
        connector: Option<&ConnectorId>,
        spec: CallSpec,
        peer: &dyn call::CallPeer,
    ) -> CallReport {
        match self.try_here(tenant, connector, spec, peer).await {
            Ok(report) => report,
            Err(spec) => unserved(self.why_unserved(tenant, connector, &spec.tool, &spec.site)),
        }
    }

    /// Runs a call on a tunnel of this replica only, or gives it back when no tunnel here
    /// took it (none serves it, or each refused it unrun), so that another replica may.
    ///
    /// The call goes to another tunnel when it certainly did not run: the request never
    /// left, or the connector refused it unrun because it is draining. It also does when
    /// the connector did not acknowledge it (the tunnel died, or stayed silent for
    /// [`ACK_WAIT`]) and the tool is harmless to repeat, since an acknowledgement lost with
    /// the tunnel would mean it ran. Once acknowledged, a call is never sent again: losing
    /// it is a retryable failure for the caller.
    pub async fn try_here(
        &self,
        tenant: &TenantId,
        connector: Option<&ConnectorId>,
        spec: CallSpec,
        peer: &dyn call::CallPeer,
    ) -> Result<CallReport, CallSpec> {
        let request = request_of(&spec);
        let deadline = Instant::now() + spec.timeout;
        let mut tried = Vec::new();
        let mut unacknowledged = None;
        for _attempt in 0..MAX_ATTEMPTS {
            let Some(handle) = self.pick(tenant, connector, &request.tool, &spec.site, &tried)
            else {
                break;
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            tried.push(handle.session_id.clone());
            let tool = handle.spec(&request.tool);
            let repeatable = tool.is_some_and(|t| harmless_to_repeat(t));
            let ack = match handle.ack {
                Ack::Unsupported => Ack::Unsupported,
                _ if repeatable
                    && remaining > ACK_WAIT
                    && self
                        .pick(tenant, connector, &request.tool, &spec.site, &tried)
                        .is_some() =>
                {
                    Ack::Within(ACK_WAIT)
                }
                _ => Ack::Tracked,
            };
            // Keep the stream open for answers only for tools that may ask questions.
            let mut request = request.clone();
            request.interactive = tool.is_some_and(|t| t.interactive);
            handle.in_flight.fetch_add(1, Ordering::Relaxed);
            let result = call::run(&handle.connection, &request, remaining, ack, peer).await;
            handle.in_flight.fetch_sub(1, Ordering::Relaxed);
            let connector = Some(handle.identity.connector.clone());
            match result {
                Err(call::Error::NotSent(_)) => {
                    handle.set_draining();
                    continue;
                }
                // The connector refused it before running it (its drain notice was on
                // the way): another tunnel takes it.
                Ok(call::Answered {
                    outcome: Err(f), ..
                }) if f.code == ErrorCode::Draining => {
                    handle.set_draining();
                    continue;
                }
                Err(call::Error::Unacknowledged(f)) if repeatable => {
                    info!(call_id = spec.call_id, connector = %handle.identity.connector,
                          reason = %f.message, "call not acknowledged; offering it to another tunnel");
                    unacknowledged = Some(f);
                    continue;
                }
                Err(call::Error::Failed(f) | call::Error::Unacknowledged(f)) => {
                    return Ok(CallReport {
                        outcome: Err(f),
                        actions: Vec::new(),
                        connector,
                        receipt: None,
                    });
                }
                Ok(answered) => {
                    return Ok(CallReport {
                        outcome: answered.outcome,
                        actions: answered.actions,
                        connector,
                        receipt: answered.receipt,
                    });
                }
            }
        }
        // A call that went unacknowledged may have run: it goes nowhere else.
        match unacknowledged {
            Some(failure) => Ok(unserved(failure)),
            None => Err(spec),
        }
    }

    /// Asks a connector that could run `spec` what it would do (nothing is written): the
    /// effect a confirmation shows. `Ok(None)` when the connector is too old to preview.
    pub async fn preview(
        &self,
        tenant: &TenantId,
        spec: &CallSpec,
    ) -> Result<Option<wire::Effect>, CallFailure> {
        if !self.serves_here(tenant, None, &spec.tool, &spec.site)
            && let Some(remote) = self.remote.get()
            && let Some(outcome) = remote.preview(tenant, spec).await
        {
            return outcome;
        }
        self.preview_here(tenant, None, spec).await
    }

    /// Asks a tunnel of this replica (of `connector`, if given) what `spec` would do.
    pub async fn preview_here(
        &self,
        tenant: &TenantId,
        connector: Option<&ConnectorId>,
        spec: &CallSpec,
    ) -> Result<Option<wire::Effect>, CallFailure> {
        let request = request_of(spec);
        for _attempt in 0..2 {
            let Some(handle) = self.pick(tenant, connector, &request.tool, &spec.site, &[]) else {
                break;
            };
            match call::preview(&handle.connection, &request, spec.timeout).await {
                Err(call::Error::NotSent(_)) => {
                    handle.set_draining();
                }
                Err(call::Error::Failed(f) | call::Error::Unacknowledged(f)) => return Err(f),
                // A connector from before previews answers the unknown frame as malformed.
                Ok(Err(f))
                    if f.code == ErrorCode::Malformed && f.message == "expected a call request" =>
                {
                    return Ok(None);
                }
                Ok(outcome) => return outcome.map(Some),
            }
        }
        Err(self.why_unserved(tenant, connector, &request.tool, &spec.site))
    }
}
