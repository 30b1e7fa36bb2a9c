//! Calls that cross replicas: the replica that took the MCP request sends the call's first
//! frame to the replica holding the tunnel, on that replica's relay subject, naming as reply
//! subject a key of its own inbox. The holder runs it on its tunnel and streams the call's
//! frames back there (progress, logs, questions, then the response); answers to questions
//! and a cancellation go to the holder's answer subject, under the same key. Each side
//! keeps one subscription for all its calls, so a call costs NATS two messages, not a
//! subscription.
//!
//! What crosses tells the caller whether the call may have run: "no responders" (the holder
//! is gone) and [`relay_down::Kind::NotHere`] mean it did not, and the next holder is tried;
//! silence for [`SILENCE`] after the holder took it means it may have, and the caller gets
//! a retryable failure instead of a second run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Client, Message, StatusCode, Subject, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use prost::Message as _;
use shared::call::CallFailure;
use shared::identity::{ConnectorId, TenantId};
use shared::policy::site_of;
use shared::wire::{self, ErrorCode, PeerMethod, call_frame, call_response::Outcome};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::messages::{RelayDown, RelayStart, RelayUp, relay_down, relay_up};
use super::routes::{Route, Routes, deliver};
use crate::tunnel::call::{BoxFuture, CallPeer};
use crate::tunnel::registry::{CallSpec, Registry};

/// How often the holder says a relayed call is still running.
const ALIVE: Duration = Duration::from_secs(1);

/// How long the caller waits for a word from the holder before giving the call up.
pub const SILENCE: Duration = Duration::from_secs(3);

/// The subject a replica instance takes relayed calls on.
pub fn subject(prefix: &str, instance: u64) -> String {
    format!("{prefix}.relay.{instance:016x}")
}

/// The subject a replica instance takes answers and cancellations of its relayed calls on.
pub fn answer_subject(prefix: &str, instance: u64) -> String {
    format!("{prefix}.answer.{instance:016x}")
}

fn encode_down(kind: relay_down::Kind) -> Bytes {
    RelayDown { kind: Some(kind) }.encode_to_vec().into()
}

fn encode_up(kind: relay_up::Kind) -> Bytes {
    RelayUp {
        key: String::new(),
        kind: Some(kind),
    }
    .encode_to_vec()
    .into()
}

/// The call spec a relayed request describes, with the site read from the holder's own
/// tool spec (the same rule the caller applied).
fn spec_of(registry: &Registry, tenant: &TenantId, req: &wire::CallRequest) -> Option<CallSpec> {
    let tool = registry.spec(tenant, &req.tool)?;
    let arguments: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&req.arguments_json).ok()?;
    let site = site_of(&tool, &arguments).ok()?;
    Some(CallSpec {
        call_id: req.call_id,
        tool: req.tool.clone(),
        arguments_json: req.arguments_json.clone(),
        timeout: Duration::from_millis(req.timeout_ms),
        caller: req.caller.clone()?,
        site,
        traceparent: req.traceparent.clone(),
        binding: req.binding.clone(),
        user_proof: req.user_proof.clone(),
        approval: req.approval.clone(),
    })
}

/// The holder's side of one relayed call: where the tool's progress, logs and questions go.
struct RelayPeer {
    client: Client,
    caller: Subject,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<wire::PeerResponse>>>,
}

impl RelayPeer {
    async fn send(&self, kind: relay_down::Kind) {
        if let Err(e) = self
            .client
            .publish(self.caller.clone(), encode_down(kind))
            .await
        {
            debug!(error = %e, "relay frame not sent");
        }
    }

    async fn frame(&self, kind: call_frame::Kind) {
        self.send(relay_down::Kind::Frame(wire::CallFrame {
            kind: Some(kind),
        }))
        .await;
    }

    fn answer(&self, answer: wire::PeerResponse) {
        let waiting = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&answer.id);
        if let Some(tx) = waiting {
            let _ = tx.send(answer);
        }
    }
}

impl CallPeer for RelayPeer {
    fn progress(&self, progress: wire::CallProgress) -> BoxFuture<'_, ()> {
        Box::pin(self.frame(call_frame::Kind::Progress(progress)))
    }

    fn log(&self, log: wire::CallLog) -> BoxFuture<'_, ()> {
        Box::pin(self.frame(call_frame::Kind::Log(log)))
    }

    fn request(
        &self,
        method: PeerMethod,
        params_json: Vec<u8>,
    ) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, tx);
            self.frame(call_frame::Kind::PeerRequest(wire::PeerRequest {
                id,
                method: method as i32,
                params_json,
            }))
            .await;
            match rx.await {
                Ok(a) if a.error.is_empty() => Ok(a.result_json),
                Ok(a) => Err(a.error),
                Err(_) => Err("the caller's replica went away".to_owned()),
            }
        })
    }
}

/// Serves the calls other replicas relay to this one's tunnels, until both subscriptions
/// end: `starts` on [`subject`], `answers` on [`answer_subject`].
pub async fn serve(
    client: Client,
    registry: Arc<Registry>,
    mut starts: Subscriber,
    mut answers: Subscriber,
    tasks: tokio_util::task::TaskTracker,
) {
    let routes: Routes<RelayUp> = Arc::default();
    loop {
        tokio::select! {
            msg = starts.next() => {
                let Some(msg) = msg else { return };
                let Some(caller) = msg.reply.clone() else { continue };
                match RelayUp::decode(msg.payload.as_ref()) {
                    Ok(RelayUp { kind: Some(relay_up::Kind::Start(start)), .. }) => {
                        let (route, rx) = Route::open(&routes, caller.to_string());
                        tasks.spawn(serve_one(client.clone(), registry.clone(), caller, start, route, rx));
                    }
                    Ok(_) | Err(_) => warn!("malformed relayed call dropped"),
                }
            }
            msg = answers.next() => {
                let Some(msg) = msg else { return };
                match RelayUp::decode(msg.payload.as_ref()) {
                    Ok(up) => {
                        let key = up.key.clone();
                        deliver(&routes, &key, up);
                    }
                    Err(e) => warn!(error = %e, "malformed relay answer dropped"),
                }
            }
        }
    }
}

/// Serves one relayed call on this replica's tunnels.
async fn serve_one(
    client: Client,
    registry: Arc<Registry>,
    caller: Subject,
    start: RelayStart,
    _route: Route<RelayUp>,
    mut answers: mpsc::UnboundedReceiver<RelayUp>,
) {
    let peer = RelayPeer {
        client,
        caller,
        next_id: AtomicU64::new(1),
        pending: Mutex::default(),
    };
    let (Ok(tenant), Ok(connector)) = (
        start.tenant.parse::<TenantId>(),
        start.connector.parse::<ConnectorId>(),
    ) else {
        peer.send(relay_down::Kind::NotHere(
            "malformed tenant or connector".into(),
        ))
        .await;
        return;
    };
    let work = run(&registry, &tenant, &connector, start, &peer);
    tokio::pin!(work);
    let mut alive = tokio::time::interval_at(Instant::now() + ALIVE, ALIVE);
    let down = loop {
        tokio::select! {
            down = &mut work => break down,
            _ = alive.tick() => peer.send(relay_down::Kind::Alive(true)).await,
            up = answers.recv() => match up.map(|u| u.kind) {
                Some(Some(relay_up::Kind::Answer(a))) => peer.answer(a),
                // Dropping the call resets its stream, which stops the tool on the connector.
                Some(Some(relay_up::Kind::Cancel(_))) | None => {
                    debug!(%connector, "relayed call cancelled by the caller");
                    return;
                }
                Some(Some(relay_up::Kind::Start(_)) | None) => {
                    warn!("unexpected relay message dropped");
                }
            },
        }
    };
    peer.send(down).await;
}

/// Runs the call a relay start describes; returns the last message for the caller.
async fn run(
    registry: &Registry,
    tenant: &TenantId,
    connector: &ConnectorId,
    start: RelayStart,
    peer: &RelayPeer,
) -> relay_down::Kind {
    let response = |call_id, outcome, actions, receipt| {
        relay_down::Kind::Frame(wire::CallFrame {
            kind: Some(call_frame::Kind::Response(wire::CallResponse {
                call_id,
                outcome,
                actions,
                receipt,
            })),
        })
    };
    let not_here = || relay_down::Kind::NotHere(format!("connector {connector} is not here"));
    match start.frame.and_then(|f| f.kind) {
        Some(call_frame::Kind::Request(req)) => {
            let Some(spec) = spec_of(registry, tenant, &req) else {
                return not_here();
            };
            if !registry.serves_here(tenant, Some(connector), &spec.tool, &spec.site) {
                return not_here();
            }
            let call_id = spec.call_id;
            // Every tunnel here refused it unrun (draining): the caller tries another holder.
            let Ok(report) = registry.try_here(tenant, Some(connector), spec, peer).await else {
                return not_here();
            };
            let outcome = match report.outcome {
                Ok(out) => Outcome::Output(out),
                Err(f) => Outcome::Error(f.to_wire()),
            };
            response(call_id, Some(outcome), report.actions, report.receipt)
        }
        Some(call_frame::Kind::Preview(req)) => {
            let Some(spec) = spec_of(registry, tenant, &req) else {
                return not_here();
            };
            if !registry.serves_here(tenant, Some(connector), &spec.tool, &spec.site) {
                return not_here();
            }
            let outcome = match registry.preview_here(tenant, Some(connector), &spec).await {
                Ok(Some(effect)) => Some(Outcome::Effect(effect)),
                Ok(None) => None,
                Err(f) => Some(Outcome::Error(f.to_wire())),
            };
            response(req.call_id, outcome, Vec::new(), None)
        }
        Some(first @ (call_frame::Kind::Authorize(_) | call_frame::Kind::Connections(_))) => {
            if registry.tenant_of_here(connector).as_ref() != Some(tenant) {
                return not_here();
            }
            let call_id = match &first {
                call_frame::Kind::Authorize(cb) => cb.call_id,
                call_frame::Kind::Connections(req) => req.call_id,
                _ => 0,
            };
            let outcome = match registry
                .direct(tenant, connector, first, Duration::from_secs(30))
                .await
            {
                Ok(out) => Outcome::Output(out),
                Err(f) => Outcome::Error(f.to_wire()),
            };
            response(call_id, Some(outcome), Vec::new(), None)
        }
        _ => relay_down::Kind::NotHere(
            "not a call, preview, authorization or connections request".into(),
        ),
    }
}

/// Why a relayed call ended without the holder's response.
#[derive(Debug)]
pub enum RelayError {
    /// No replica listens at the holder's subject (it stopped): it did not run.
    Gone,
    /// It certainly did not run there: try another holder.
    NotRun(String),
    /// It may have run: the caller's outcome is this failure.
    Lost(CallFailure),
}

/// Tells the holder to stop unless the call completed (the MCP client cancelled, or the
/// caller's request went away).
struct CancelOnDrop {
    client: Client,
    answers: String,
    key: String,
    completed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        let client = self.client.clone();
        let (answers, key) = (
            std::mem::take(&mut self.answers),
            std::mem::take(&mut self.key),
        );
        tokio::spawn(async move {
            let up = RelayUp {
                key,
                kind: Some(relay_up::Kind::Cancel(true)),
            };
            let _ = client.publish(answers, up.encode_to_vec().into()).await;
        });
    }
}

/// Where a relayed call goes: the replica instance holding the tunnel, and whose tunnel.
#[derive(Debug, Clone, Copy)]
pub struct Holder<'a> {
    /// The first token of the relay subject.
    pub prefix: &'a str,
    /// The replica process holding the tunnel.
    pub instance: u64,
    /// Tenant.
    pub tenant: &'a TenantId,
    /// The connector.
    pub connector: &'a ConnectorId,
}

/// The calling side: one inbox subscription for every call this replica relays, its
/// messages handed to each call by key.
#[derive(Debug)]
pub struct Calls {
    client: Client,
    inbox: String,
    next: AtomicU64,
    routes: Routes<Message>,
}

impl Calls {
    /// Subscribes this replica's relay inbox and hands its messages out until `shutdown`.
    pub async fn new(
        client: Client,
        tasks: &tokio_util::task::TaskTracker,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Arc<Self>, async_nats::SubscribeError> {
        let inbox = client.new_inbox();
        let mut frames = client.subscribe(format!("{inbox}.*")).await?;
        let calls = Arc::new(Self {
            client,
            inbox,
            next: AtomicU64::new(1),
            routes: Arc::default(),
        });
        let routes = calls.routes.clone();
        tasks.spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = frames.next() => m,
                    () = shutdown.cancelled() => return,
                };
                let Some(msg) = msg else { return };
                let key = msg.subject.to_string();
                deliver(&routes, &key, msg);
            }
        });
        Ok(calls)
    }

    /// A fresh reply subject on this replica's inbox, and the messages that arrive there.
    pub fn open(&self) -> (String, Route<Message>, mpsc::UnboundedReceiver<Message>) {
        let key = format!(
            "{}.{}",
            self.inbox,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let (route, rx) = Route::open(&self.routes, key.clone());
        (key, route, rx)
    }

    /// The NATS connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends `first` (a call, preview or authorization) to `holder`, relaying the call's
    /// frames to `peer`; returns the holder's response.
    pub async fn exchange(
        &self,
        holder: Holder<'_>,
        first: call_frame::Kind,
        deadline: Instant,
        peer: &dyn CallPeer,
    ) -> Result<wire::CallResponse, RelayError> {
        let Holder {
            prefix,
            instance,
            tenant,
            connector,
        } = holder;
        let key = format!(
            "{}.{}",
            self.inbox,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let (_route, mut frames) = Route::open(&self.routes, key.clone());
        let start = encode_up(relay_up::Kind::Start(RelayStart {
            tenant: tenant.to_string(),
            connector: connector.to_string(),
            frame: Some(wire::CallFrame { kind: Some(first) }),
        }));
        self.client
            .publish_with_reply(subject(prefix, instance), key.clone(), start)
            .await
            .map_err(|e| RelayError::NotRun(format!("NATS publish failed: {e}")))?;
        let answers = answer_subject(prefix, instance);
        let mut guard = CancelOnDrop {
            client: self.client.clone(),
            answers: answers.clone(),
            key: key.clone(),
            completed: false,
        };
        let mut heard = false;
        let mut questions = FuturesUnordered::new();
        let lost = |why: &str| {
            RelayError::Lost(
                CallFailure::new(
                    ErrorCode::Unavailable,
                    format!(
                        "the replica holding connector {connector} {why}; the call may have run"
                    ),
                )
                .retry_after(Duration::from_secs(1)),
            )
        };
        loop {
            // The holder keeps to the deadline itself and says it is alive every second.
            let silence =
                tokio::time::sleep_until((Instant::now() + SILENCE).min(deadline + SILENCE));
            let msg = tokio::select! {
                msg = frames.recv() => msg,
                Some((id, answer)) = questions.next() => {
                    let answer: Result<Vec<u8>, String> = answer;
                    let (result_json, error) = match answer {
                        Ok(json) => (json, String::new()),
                        Err(e) => (Vec::new(), e),
                    };
                    let up = RelayUp {
                        key: key.clone(),
                        kind: Some(relay_up::Kind::Answer(wire::PeerResponse { id, result_json, error })),
                    };
                    if let Err(e) = self.client.publish(answers.clone(), up.encode_to_vec().into()).await {
                        debug!(error = %e, "answer not relayed");
                    }
                    continue;
                }
                () = silence => {
                    return Err(lost(if heard { "stopped answering" } else { "did not answer" }));
                }
            };
            let Some(msg) = msg else {
                return Err(lost("could not be heard (NATS connection lost)"));
            };
            if msg.status == Some(StatusCode::NO_RESPONDERS) {
                guard.completed = true;
                return Err(RelayError::Gone);
            }
            heard = true;
            let kind = match RelayDown::decode(msg.payload.as_ref()) {
                Ok(RelayDown { kind: Some(kind) }) => kind,
                Ok(_) | Err(_) => {
                    warn!("malformed relay frame dropped");
                    continue;
                }
            };
            match kind {
                relay_down::Kind::Alive(_) => {}
                relay_down::Kind::NotHere(why) => {
                    guard.completed = true;
                    return Err(RelayError::NotRun(why));
                }
                relay_down::Kind::Frame(frame) => match frame.kind {
                    Some(call_frame::Kind::Response(response)) => {
                        guard.completed = true;
                        return Ok(response);
                    }
                    Some(call_frame::Kind::Progress(p)) => peer.progress(p).await,
                    Some(call_frame::Kind::Log(l)) => peer.log(l).await,
                    Some(call_frame::Kind::PeerRequest(q)) => {
                        let method =
                            PeerMethod::try_from(q.method).unwrap_or(PeerMethod::Unspecified);
                        let id = q.id;
                        questions
                            .push(async move { (id, peer.request(method, q.params_json).await) });
                    }
                    _ => warn!("unexpected relay frame dropped"),
                },
            }
        }
    }
}
