//! Where calls meet the connector's own audit log ([`crate::audit`]): "no record, no
//! request".
//!
//! ```text
//! tunnel::calls ── Witness ── local_policy::Enforced ── Gate ── tools
//!                  (refusals,   (allow or refuse)        (the call's record, on disk
//!                   outcomes)                             before the tool runs)
//! ```
//! - [`Gate`] sits under the local policy, so it sees only calls the policy allowed: it
//!   writes the `call` record (decision `allow`) and waits until it is durable; if it
//!   cannot be written the tool does not run and the call fails with
//!   [`ErrorCode::Unavailable`]. It then attaches the log to the call's trail, so that each
//!   upstream request leaves an `upstream` record.
//! - [`Witness`] sits above: a call that never reached the gate was refused (by the local
//!   policy, or for another tenant), and gets a `call` record with decision `deny` and the
//!   reason, durable with its outcome before its answer is sent. Every call gets an
//!   `outcome` record; that of a call the gate recorded is queued behind its records, and
//!   the answer leaves with the receipt for the gate's record (one durable write per call).

use std::collections::HashMap;
use std::sync::Arc;

use shared::call::{Call, CallFailure, CallOutcome, PreviewOutcome};
use shared::policy::site_of;
use shared::wire::{self, ErrorCode};
use tracing::warn;

use crate::audit::AuditLog;
use crate::audit::key::PublicKey;
use crate::audit::record::{self, CallRecord, Decision, Event, Mode, OutcomeRecord, bounded};
use crate::audit::writer::ReceiptFor;
use crate::call_context::CallContext;
use crate::toolset::{BoxFuture, ToolSet};

/// What the two layers share: the log, and the tools' specs to name a call's target.
struct Describe {
    log: Arc<AuditLog>,
    specs: HashMap<String, wire::ToolSpec>,
}

impl Describe {
    /// The `call` record of `call`.
    fn call_record(
        &self,
        call: &Call,
        mode: Mode,
        decision: Decision,
        reason: Option<&str>,
    ) -> Event {
        let site = self.specs.get(call.tool.as_str()).and_then(|spec| {
            let args = serde_json::from_slice(&call.arguments_json).ok()?;
            site_of(spec, &args).ok()
        });
        let trace_id = call
            .trace
            .traceparent
            .as_deref()
            .and_then(|t| t.split('-').nth(1))
            .map(str::to_owned);
        Event::Call(CallRecord {
            call_id: call.id,
            mode,
            tenant: bounded(call.caller.tenant.as_str()),
            user: bounded(&call.caller.user),
            agent: bounded(&call.caller.agent),
            tool: bounded(call.tool.as_str()),
            instance: site
                .as_ref()
                .and_then(|s| s.instance.as_ref())
                .map(|i| bounded(&i.to_string())),
            repo: site
                .as_ref()
                .and_then(|s| s.repo.as_ref())
                .map(|r| bounded(&r.to_string())),
            args_sha256: record::sha256_hex(&call.arguments_json),
            trace_id,
            decision,
            reason: reason.map(bounded),
        })
    }
}

/// The layer under the local policy: the call's record is on disk before its tool runs.
pub struct Gate {
    describe: Arc<Describe>,
    inner: Arc<dyn ToolSet>,
}

/// The layer above the local policy: refusals, outcomes, and the receipts that say where
/// each outcome is.
pub struct Witness {
    describe: Arc<Describe>,
    public: PublicKey,
}

/// The two layers around `inner`, writing to `log` (whose key also signs the receipts):
/// put the [`Gate`] under the local policy and the [`Witness`] above it.
pub fn layers(log: Arc<AuditLog>, inner: Arc<dyn ToolSet>) -> (Gate, Witness) {
    let public = log.public().clone();
    let describe = Arc::new(Describe {
        log,
        specs: inner
            .specs()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect(),
    });
    (
        Gate {
            describe: describe.clone(),
            inner,
        },
        Witness { describe, public },
    )
}

impl Gate {
    /// Writes the call's record and waits for it; the failure to answer with if it could
    /// not be written.
    async fn record(&self, call: &Call, mode: Mode, ctx: &CallContext) -> Result<(), CallFailure> {
        let event = self.describe.call_record(call, mode, Decision::Allow, None);
        let receipt = ReceiptFor {
            tenant: call.caller.tenant.to_string(),
            call_id: call.id,
        };
        match self
            .describe
            .log
            .write_with_receipt(vec![event], receipt)
            .await
        {
            Ok(written) => {
                ctx.trail()
                    .attach_audit(self.describe.log.clone(), call.id, written.first);
                if let Some(receipt) = written.receipt {
                    ctx.set_receipt(receipt);
                }
                Ok(())
            }
            Err(e) => {
                warn!(call_id = call.id, error = %e, "call refused: its audit record cannot be written");
                Err(CallFailure::new(
                    ErrorCode::Unavailable,
                    format!("this connector cannot write its audit log, so it runs no call: {e}"),
                ))
            }
        }
    }
}

impl ToolSet for Gate {
    fn specs(&self) -> Vec<wire::ToolSpec> {
        self.inner.specs()
    }

    fn call<'a>(&'a self, call: &'a Call, ctx: &'a CallContext) -> BoxFuture<'a, CallOutcome> {
        Box::pin(async move {
            self.record(call, Mode::Call, ctx).await?;
            self.inner.call(call, ctx).await
        })
    }

    fn preview<'a>(
        &'a self,
        call: &'a Call,
        ctx: &'a CallContext,
    ) -> BoxFuture<'a, PreviewOutcome> {
        Box::pin(async move {
            self.record(call, Mode::Preview, ctx).await?;
            self.inner.preview(call, ctx).await
        })
    }

    fn authorize<'a>(&'a self, cb: &'a wire::AuthorizeCallback) -> BoxFuture<'a, CallOutcome> {
        // The code exchange reaches the upstream: recorded first, like a call; no Witness
        // sees it, so its outcome is written here.
        Box::pin(async move {
            let caller = cb.caller.clone().unwrap_or_default();
            let event = Event::Call(CallRecord {
                call_id: cb.call_id,
                mode: Mode::Authorize,
                tenant: bounded(&caller.tenant),
                user: bounded(&caller.user),
                agent: bounded(&caller.agent),
                tool: "authorize".into(),
                instance: None,
                repo: None,
                args_sha256: record::sha256_hex(b""),
                trace_id: None,
                decision: Decision::Allow,
                reason: None,
            });
            let log = &self.describe.log;
            let call_seq = log.write(vec![event]).await.map(|w| w.first).map_err(|e| {
                warn!(call_id = cb.call_id, error = %e, "authorization refused: its audit record cannot be written");
                CallFailure::new(
                    ErrorCode::Unavailable,
                    format!("this connector cannot write its audit log, so it runs no call: {e}"),
                )
            })?;
            let out = self.inner.authorize(cb).await;
            let result = match &out {
                Ok(_) => "ok".to_owned(),
                Err(f) => code_name(f.code),
            };
            let outcome = Event::Outcome(OutcomeRecord {
                call_id: cb.call_id,
                call_seq,
                result,
            });
            if let Err(e) = log.write(vec![outcome]).await {
                warn!(call_id = cb.call_id, error = %e, "the authorization's outcome could not be written to the audit log");
            }
            out
        })
    }

    fn connections<'a>(&'a self, req: &'a wire::ConnectionsRequest) -> BoxFuture<'a, CallOutcome> {
        // An administrator's look at the users' connections, or a revocation: recorded
        // first, with the administrator as the user, like a call; its outcome after.
        Box::pin(async move {
            let caller = req.caller.clone().unwrap_or_default();
            let revoke = !req.revoke_provider.is_empty();
            let target = format!("{}/{}", req.revoke_provider, req.revoke_user);
            let event = Event::Call(CallRecord {
                call_id: req.call_id,
                mode: Mode::Connections,
                tenant: bounded(&caller.tenant),
                user: bounded(&caller.user),
                agent: bounded(&caller.agent),
                tool: if revoke {
                    "connections.revoke"
                } else {
                    "connections.list"
                }
                .into(),
                instance: revoke.then(|| bounded(&req.revoke_provider)),
                repo: revoke.then(|| bounded(&target)),
                args_sha256: record::sha256_hex(target.as_bytes()),
                trace_id: None,
                decision: Decision::Allow,
                reason: None,
            });
            let log = &self.describe.log;
            let call_seq = log.write(vec![event]).await.map(|w| w.first).map_err(|e| {
                warn!(call_id = req.call_id, error = %e, "connections request refused: its audit record cannot be written");
                CallFailure::new(
                    ErrorCode::Unavailable,
                    format!("this connector cannot write its audit log, so it runs no request: {e}"),
                )
            })?;
            let out = self.inner.connections(req).await;
            let result = match &out {
                Ok(_) => "ok".to_owned(),
                Err(f) => code_name(f.code),
            };
            log.queue(Event::Outcome(OutcomeRecord {
                call_id: req.call_id,
                call_seq,
                result,
            }));
            out
        })
    }
}

impl Witness {
    /// The public half of the log's key, for the hello.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Records how `call` ended (`failure` if it failed; `None` with `cancelled` when the
    /// runtime cancelled it), and, for a call the gate never saw, that it was refused.
    /// Returns the signed receipt for the call's record: the gate's, whose record was
    /// durable before the tool ran (the outcome is queued behind it, not waited for), or,
    /// for a refused call, the refusal's, once it and its outcome are durable. A cancelled
    /// call gets none (nobody waits for its answer).
    pub async fn finish(
        &self,
        call: &Call,
        preview: bool,
        ctx: &CallContext,
        failure: Option<&CallFailure>,
        cancelled: bool,
    ) -> Option<wire::CallReceipt> {
        let mode = if preview { Mode::Preview } else { Mode::Call };
        let mut events = Vec::with_capacity(2);
        let recorded = ctx.trail().audit_seq();
        let call_seq = match recorded {
            Some(seq) => seq,
            None => {
                let reason = failure.map_or("refused before the tool ran", |f| f.message.as_str());
                events.push(
                    self.describe
                        .call_record(call, mode, Decision::Deny, Some(reason)),
                );
                // The refusal is written in the same segment, just before its outcome.
                0
            }
        };
        let result = match (failure, cancelled) {
            (_, true) => "cancelled".to_owned(),
            (Some(f), _) => code_name(f.code),
            (None, false) => "ok".to_owned(),
        };
        events.push(Event::Outcome(OutcomeRecord {
            call_id: call.id,
            call_seq,
            result,
        }));
        if cancelled || recorded.is_some() {
            for e in events {
                self.describe.log.queue(e);
            }
            return if cancelled { None } else { ctx.take_receipt() };
        }
        let receipt = ReceiptFor {
            tenant: call.caller.tenant.to_string(),
            call_id: call.id,
        };
        match self.describe.log.write_with_receipt(events, receipt).await {
            Ok(written) => written.receipt,
            Err(e) => {
                warn!(call_id = call.id, error = %e, "the call's outcome could not be written to the audit log");
                None
            }
        }
    }
}

/// `ErrorCode::UnknownTool` as `unknown_tool`.
fn code_name(code: ErrorCode) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::audit::record::decode;
    use crate::audit::{AuditConfig, AuditKey, OnFull, export};
    use crate::local_policy::Enforced;

    /// Tools that count the calls that reach them (each would make one upstream request).
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl ToolSet for Counting {
        fn specs(&self) -> Vec<wire::ToolSpec> {
            vec![wire::ToolSpec {
                name: "github_get_issue".into(),
                target_args: vec!["owner".into(), "repo".into()],
                ..Default::default()
            }]
        }

        fn call<'a>(&'a self, _: &'a Call, _: &'a CallContext) -> BoxFuture<'a, CallOutcome> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(wire::ToolOutput::default()) })
        }
    }

    fn call(owner: &str) -> Call {
        Call::try_from(wire::CallRequest {
            call_id: 7,
            tool: "github_get_issue".into(),
            arguments_json: format!(r#"{{"owner":"{owner}","repo":"w","number":1}}"#).into_bytes(),
            timeout_ms: 1000,
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            caller: Some(wire::Caller {
                tenant: "acme".into(),
                user: "alice".into(),
                agent: "bot".into(),
            }),
            ..Default::default()
        })
        .unwrap()
    }

    fn ctx() -> CallContext {
        let tracing = Arc::new(shared::trace::Tracing::new("t", "0", None).unwrap());
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let span = tracing.start("t", shared::trace::Kind::Server, None);
        CallContext::new(tx, false, tracing, span)
    }

    /// The tool set behind the local policy (allowing `acme/*`) and the log, as `run` builds it.
    fn stack(dir: &std::path::Path, config: AuditConfig) -> (Arc<Counting>, Enforced, Witness) {
        let key = AuditKey::generate().unwrap();
        let log = Arc::new(AuditLog::open(dir, key, config).unwrap());
        let inner = Arc::new(Counting::default());
        let (gate, witness) = layers(log, inner.clone());
        let policy = crate::local_policy::parse(
            "p.toml",
            "version = 1\n[[allow]]\ntools = [\"github_get_issue\"]\nrepos = [\"acme/*\"]\n",
        )
        .unwrap();
        (
            inner,
            Enforced::new(Arc::new(gate), policy).unwrap(),
            witness,
        )
    }

    async fn run(enforced: &Enforced, witness: &Witness, call: &Call) -> CallOutcome {
        let ctx = ctx();
        let out = enforced.call(call, &ctx).await;
        witness
            .finish(call, false, &ctx, out.as_ref().err(), false)
            .await;
        out
    }

    fn records(dir: &std::path::Path) -> Vec<Event> {
        export::tail(dir, 100)
            .unwrap()
            .iter()
            .map(|l| decode(l).unwrap().event)
            .filter(|e| !matches!(e, Event::Seal(_)))
            .collect()
    }

    #[tokio::test]
    async fn an_allowed_call_is_recorded_before_it_runs_and_a_refused_one_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (inner, enforced, witness) = stack(dir.path(), AuditConfig::default());
        assert!(run(&enforced, &witness, &call("acme")).await.is_ok());
        assert!(run(&enforced, &witness, &call("globex")).await.is_err());
        assert_eq!(inner.0.load(Ordering::SeqCst), 1);
        let r = records(dir.path());
        let [
            Event::Call(allowed),
            Event::Outcome(ok),
            Event::Call(denied),
            Event::Outcome(no),
        ] = r.as_slice()
        else {
            panic!("{r:?}")
        };
        assert_eq!(allowed.decision, Decision::Allow);
        assert_eq!(allowed.repo.as_deref(), Some("acme/w"));
        assert_eq!(
            allowed.trace_id.as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(
            allowed.args_sha256,
            record::sha256_hex(&call("acme").arguments_json)
        );
        assert_eq!((ok.result.as_str(), ok.call_seq), ("ok", 1));
        assert_eq!(denied.decision, Decision::Deny);
        assert!(
            denied.reason.as_deref().unwrap().contains("local policy"),
            "{denied:?}"
        );
        assert_eq!(no.result, "denied");
    }

    #[tokio::test]
    async fn a_sign_in_callback_is_recorded_without_its_code_before_it_reaches_the_tools() {
        let dir = tempfile::tempdir().unwrap();
        let (_, enforced, _) = stack(dir.path(), AuditConfig::default());
        let cb = wire::AuthorizeCallback {
            call_id: 9,
            caller: Some(wire::Caller {
                tenant: "acme".into(),
                user: "alice".into(),
                agent: "bot".into(),
            }),
            state: "st4te".into(),
            code: "c0de-secret".into(),
            user_proof: String::new(),
        };
        assert!(enforced.authorize(&cb).await.is_err());
        let r = records(dir.path());
        let [Event::Call(c), Event::Outcome(o)] = r.as_slice() else {
            panic!("{r:?}")
        };
        assert_eq!(
            (c.mode, c.user.as_str(), c.call_id),
            (Mode::Authorize, "alice", 9)
        );
        assert_eq!((o.call_seq, o.result.as_str()), (1, "unknown_tool"));
        let text: Vec<u8> = export::tail(dir.path(), 100).unwrap().concat();
        let text = String::from_utf8(text).unwrap();
        assert!(
            !text.contains("c0de-secret") && !text.contains("st4te"),
            "{text}"
        );

        let full = tempfile::tempdir().unwrap();
        let tiny = AuditConfig {
            max_file_bytes: 100,
            max_total_bytes: 100,
            on_full: OnFull::Refuse,
        };
        let (_, enforced, _) = stack(full.path(), tiny);
        let e = enforced.authorize(&cb).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
    }

    #[tokio::test]
    async fn a_call_whose_record_cannot_be_written_is_refused_and_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let full = AuditConfig {
            max_file_bytes: 100,
            max_total_bytes: 100,
            on_full: OnFull::Refuse,
        };
        let (inner, enforced, witness) = stack(dir.path(), full);
        let e = run(&enforced, &witness, &call("acme")).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(e.message.contains("audit log"), "{e:?}");
        assert_eq!(inner.0.load(Ordering::SeqCst), 0);
    }
}
