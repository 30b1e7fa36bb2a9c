//! The audit trail (DESIGN invariant 4): one record per permission decision, per upstream
//! request and per call outcome, appended to a local tamper-evident log and, when an
//! endpoint is configured, exported as OpenTelemetry log records.
//!
//! - [`record`]: what a record says.
//! - [`chain`]: the hash-chained line format and its verification.
//! - [`digest`]: keyed digests of call arguments, one key per tenant.
//! - [`log`]: the append-only file and its writer thread.
//! - [`in_store`]: the same chain in the database, one per replica (replicas on
//!   PostgreSQL).
//! - [`verify`]: checking the chains where they are kept.
//! - [`index`]: the search index that follows the chains; [`search`]: reading it a page at
//!   a time.
//! - [`CallAudit`]: the records of one call, sharing its who/what/trace fields.

pub mod chain;
pub mod digest;
pub mod in_store;
pub mod index;
pub mod log;
pub mod receipts;
pub mod record;
pub mod search;
pub mod verify;

use std::time::Instant;

pub use log::{AuditError, AuditLog};
use record::{Arguments, AuditRecord, Kind, Upstream, Verdict, now_rfc3339};
use shared::call::CallFailure;
use shared::wire;

use crate::policy::Layer;

/// The records of one call: every record repeats who, what and which trace, so each stands
/// on its own in a log search.
#[derive(Debug)]
pub struct CallAudit {
    base: AuditRecord,
    started: Instant,
}

/// Who and what a call is, for its records.
#[derive(Debug, Clone)]
pub struct CallFacts<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Gateway.
    pub gateway: Option<&'a str>,
    /// The user's name.
    pub user: &'a str,
    /// The user's stable id (`None` for an operator on the runtime's host).
    pub user_id: Option<&'a str>,
    /// Agent.
    pub agent: &'a str,
    /// Tool.
    pub tool: &'a str,
    /// Upstream instance.
    pub instance: Option<&'a str>,
    /// Repository or project.
    pub target: Option<&'a str>,
    /// Arguments as recorded.
    pub arguments: Option<Arguments>,
    /// Call id.
    pub call_id: u64,
    /// Trace id.
    pub trace_id: String,
    /// Span id.
    pub span_id: String,
}

/// Who presented a refused connector certificate, and what was refused.
#[derive(Debug, Clone)]
pub struct CertificateRefusal<'a> {
    /// The tenant the certificate names.
    pub tenant: &'a str,
    /// The connector it names.
    pub connector: &'a str,
    /// What was attempted: `tunnel.handshake` or `tunnel.renewal`.
    pub action: &'a str,
    /// The certificate's serial, hex.
    pub serial: &'a str,
    /// Why it was refused, with the peer's address.
    pub reason: String,
}

impl CertificateRefusal<'_> {
    /// The audit record: a denial naming the connector, with the serial as its target. The
    /// user and agent are `-`: the only party is whoever holds the certificate's key.
    pub fn record(&self) -> AuditRecord {
        AuditRecord {
            connector: Some(self.connector.to_owned()),
            target: Some(format!("certificate {}", self.serial)),
            decision: Some(Verdict::Deny),
            reason: Some(self.reason.clone()),
            outcome: Some("refused".to_owned()),
            ..AuditRecord::event(Kind::Certificate, self.tenant, self.action)
        }
    }
}

/// The outcome label of a finished call, for the audit trail and metrics.
pub fn outcome_label(outcome: &Result<wire::ToolOutput, CallFailure>) -> String {
    match outcome {
        Ok(out) if out.is_error => "tool_error".to_owned(),
        Ok(_) => "ok".to_owned(),
        Err(f) => format!("{:?}", f.code).to_lowercase(),
    }
}

impl CallAudit {
    /// The records of a call starting now.
    pub fn new(f: CallFacts<'_>) -> Self {
        Self {
            base: AuditRecord {
                time: String::new(),
                kind: Kind::Decision,
                tenant: f.tenant.to_owned(),
                gateway: f.gateway.map(str::to_owned),
                user: f.user.to_owned(),
                user_id: f.user_id.map(str::to_owned),
                agent: f.agent.to_owned(),
                connector: None,
                tool: f.tool.to_owned(),
                instance: f.instance.map(str::to_owned),
                target: f.target.map(str::to_owned),
                decision: None,
                layer: None,
                reason: None,
                outcome: None,
                duration_ms: None,
                upstream: None,
                arguments: f.arguments,
                confirmation: None,
                call_id: f.call_id,
                trace_id: f.trace_id,
                span_id: f.span_id,
                receipt: None,
            },
            started: Instant::now(),
        }
    }

    fn record(&self, kind: Kind) -> AuditRecord {
        AuditRecord {
            time: now_rfc3339(),
            kind,
            ..self.base.clone()
        }
    }

    /// The decision record: `denied_by` is `None` for an allowed call.
    pub fn decision(&self, denied_by: Option<Layer>, reason: &str) -> AuditRecord {
        AuditRecord {
            decision: Some(if denied_by.is_some() {
                Verdict::Deny
            } else {
                Verdict::Allow
            }),
            layer: denied_by,
            reason: Some(reason.to_owned()),
            ..self.record(Kind::Decision)
        }
    }

    /// The decision record of a call that needed the user's confirmation, with what they
    /// were shown and how they answered.
    pub fn confirmed_decision(
        &self,
        denied_by: Option<Layer>,
        reason: &str,
        confirmation: record::Confirmation,
    ) -> AuditRecord {
        AuditRecord {
            confirmation: Some(confirmation),
            ..self.decision(denied_by, reason)
        }
    }

    /// The decision record of a call refused before the policy could decide it (unknown
    /// tool, malformed target): a denial by no layer.
    pub fn refusal(&self, reason: &str) -> AuditRecord {
        AuditRecord {
            decision: Some(Verdict::Deny),
            reason: Some(reason.to_owned()),
            ..self.record(Kind::Decision)
        }
    }

    /// The record of one upstream request made by `connector`.
    pub fn upstream(&self, connector: Option<&str>, a: &wire::UpstreamAction) -> AuditRecord {
        AuditRecord {
            connector: connector.map(str::to_owned),
            upstream: Some(Upstream {
                provider: a.provider.clone(),
                method: a.method.clone(),
                route: a.route.clone(),
                status: a.status,
                duration_us: a.duration_us,
                attempt: a.attempt,
            }),
            ..self.record(Kind::Upstream)
        }
    }

    /// The outcome record (`ok`, `tool_error`, or a failure code).
    pub fn outcome(
        &self,
        connector: Option<&str>,
        outcome: &str,
        reason: Option<&str>,
    ) -> AuditRecord {
        AuditRecord {
            connector: connector.map(str::to_owned),
            outcome: Some(outcome.to_owned()),
            reason: reason.map(str::to_owned),
            duration_ms: Some(self.started.elapsed().as_secs_f64() * 1000.0),
            ..self.record(Kind::Outcome)
        }
    }
}
