//! What a call's upstream requests leave behind: a client span under the call's span for
//! each attempt, and the audit record of each attempt. The HTTP client needs only this and
//! the call's deadline ([`Scope`]), not the whole call, so it can be driven on its own.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use shared::trace::{Kind as SpanKind, Span, Tracing};
use shared::wire;

use crate::audit::AuditLog;
use crate::audit::record::{Event, UpstreamRecord, bounded};

/// Most upstream requests recorded per call (a tool that makes more is summarised).
const MAX_ACTIONS: usize = 256;

/// One call's spans and upstream actions.
#[derive(Debug)]
pub struct Trail {
    tracing: Arc<Tracing>,
    span: Span,
    actions: Mutex<Vec<wire::UpstreamAction>>,
    audit: OnceLock<AuditTap>,
}

/// Where a call's upstream requests are recorded in the connector's own log.
#[derive(Debug)]
struct AuditTap {
    log: Arc<AuditLog>,
    call_id: u64,
    call_seq: u64,
}

impl Trail {
    /// The trail of the call whose span is `span`.
    pub fn new(tracing: Arc<Tracing>, span: Span) -> Self {
        Self {
            tracing,
            span,
            actions: Mutex::new(Vec::new()),
            audit: OnceLock::new(),
        }
    }

    /// The call's span.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Starts a client span under the call's span (one per upstream request).
    pub fn client_span(&self, name: &str) -> Span {
        self.tracing.child(&self.span, name, SpanKind::Client)
    }

    /// From now on, each upstream request also goes to `log`, under the call whose `call`
    /// record is `call_seq` (set once, by [`crate::audit_gate::Gate`]).
    pub fn attach_audit(&self, log: Arc<AuditLog>, call_id: u64, call_seq: u64) {
        let _ = self.audit.set(AuditTap {
            log,
            call_id,
            call_seq,
        });
    }

    /// The sequence number of the call's `call` record, once it is written.
    pub fn audit_seq(&self) -> Option<u64> {
        self.audit.get().map(|t| t.call_seq)
    }

    /// Records an upstream request made to `host`, for the runtime's audit trail and the
    /// connector's own log.
    pub fn record(&self, action: wire::UpstreamAction, host: &str) {
        if let Some(tap) = self.audit.get() {
            tap.log.queue(Event::Upstream(UpstreamRecord {
                call_id: tap.call_id,
                call_seq: tap.call_seq,
                provider: bounded(&action.provider),
                method: bounded(&action.method),
                host: bounded(host),
                path: bounded(&action.route),
                status: action.status,
                duration_ms: action.duration_us / 1000,
                attempt: action.attempt,
            }));
        }
        let mut actions = self.actions.lock().unwrap_or_else(|p| p.into_inner());
        if actions.len() < MAX_ACTIONS {
            actions.push(action);
        }
    }

    /// The recorded upstream requests, leaving none.
    pub fn take(&self) -> Vec<wire::UpstreamAction> {
        std::mem::take(&mut *self.actions.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What one upstream request needs from the call it serves.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// When the call must be over: no attempt outlives it.
    pub deadline: Instant,
    /// Where the request's spans and audit records go.
    pub trail: &'a Trail,
}
