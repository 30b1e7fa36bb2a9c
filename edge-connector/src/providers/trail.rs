//! What a call's upstream requests leave behind: a client span under the call's span for
//! each attempt, and the audit record of each attempt. The HTTP client needs only this and
//! the call's deadline ([`Scope`]), not the whole call, so it can be driven on its own.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use shared::trace::{Kind as SpanKind, Span, Tracing};
use shared::wire;

/// Most upstream requests recorded per call (a tool that makes more is summarised).
const MAX_ACTIONS: usize = 256;

/// One call's spans and upstream actions.
#[derive(Debug)]
pub struct Trail {
    tracing: Arc<Tracing>,
    span: Span,
    actions: Mutex<Vec<wire::UpstreamAction>>,
}

impl Trail {
    /// The trail of the call whose span is `span`.
    pub fn new(tracing: Arc<Tracing>, span: Span) -> Self {
        Self {
            tracing,
            span,
            actions: Mutex::new(Vec::new()),
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

    /// Records an upstream request, for the audit trail.
    pub fn record(&self, action: wire::UpstreamAction) {
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
