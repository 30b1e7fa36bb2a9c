//! What one audit record says (DESIGN invariant 4): who (tenant, user, agent), through what
//! (gateway, connector), did what (tool, instance, target, arguments redacted by default), what was
//! decided and by which layer, how it ended, and the trace it belongs to.

use serde::{Deserialize, Serialize};

use super::digest::DigestKey;
use crate::policy::Layer;
use shared::wire;

/// Which event a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The permission decision on a call, written before the call goes anywhere.
    Decision,
    /// One HTTP request the connector made upstream for a call.
    Upstream,
    /// How an allowed call ended.
    Outcome,
    /// A user connected (or failed to connect) an upstream account.
    Authorization,
    /// The runtime refused a connector's certificate (a superseded one at the handshake, or
    /// one that renewed already): no user or agent is involved.
    Certificate,
    /// A tenant administrator's act through the admin API (a join token made, a connector
    /// revoked): the admin's name as the user, the action as the tool.
    Admin,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

/// A call's arguments as recorded: their keyed digest, and their value only where the
/// tenant opted in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arguments {
    /// HMAC-SHA256 of the arguments' JSON text under the tenant's digest key
    /// ([`super::digest`]), hex.
    pub hmac_sha256: String,
    /// The arguments themselves (tenant opt-in only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// An upstream request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// Provider instance.
    pub provider: String,
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// HTTP status (0: no response).
    pub status: u32,
    /// Microseconds.
    pub duration_us: u64,
    /// Attempt number.
    pub attempt: u32,
}

/// A confirmation the user was asked for: what they were shown, the values the call was
/// bound to, and their answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The question as the user saw it (with the previewed effect).
    pub shown: String,
    /// The values the confirmed call was held to (`head_sha`, `merge_method`, ...).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub binding: std::collections::BTreeMap<String, String>,
    /// `confirmed`, or `refused` (declined, expired, replayed, or the client cannot ask).
    pub answer: String,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// What kind of event.
    pub kind: Kind,
    /// Tenant.
    pub tenant: String,
    /// Gateway the call came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The user's name (display).
    pub user: String,
    /// The user's stable id; absent for an operator on the runtime's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The agent.
    pub agent: String,
    /// The connector that ran (or would have run) it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// The tool.
    pub tool: String,
    /// The upstream instance acted on (the connector's `[[provider]]` name), for tools that
    /// reach an upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The repository or project acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Allow or deny (decision records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Verdict>,
    /// The layer that denied (decision records of denials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How it ended: `ok`, `tool_error`, or the failure code (`denied`, `unavailable`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Milliseconds from decision to outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// The upstream request (upstream records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
    /// The arguments, redacted by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Arguments>,
    /// The user's confirmation (decision records of calls that needed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
    /// The runtime's call id, tying a call's records together.
    pub call_id: u64,
    /// W3C trace id (32 hex).
    pub trace_id: String,
    /// W3C span id of the runtime's span (16 hex).
    pub span_id: String,
    /// The connector's signed receipt for its own record of this call (outcome records
    /// of connectors that keep an audit log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

impl AuditRecord {
    /// A record of `kind` in `tenant`, now, of an act that is no tool call: `tool` names
    /// what was done; user and agent are `-` and every field of a call's records is empty,
    /// for the caller to fill in what applies.
    pub fn event(kind: Kind, tenant: &str, tool: &str) -> Self {
        Self {
            time: now_rfc3339(),
            kind,
            tenant: tenant.to_owned(),
            gateway: None,
            user: "-".to_owned(),
            user_id: None,
            agent: "-".to_owned(),
            connector: None,
            tool: tool.to_owned(),
            instance: None,
            target: None,
            decision: None,
            layer: None,
            reason: None,
            outcome: None,
            duration_ms: None,
            upstream: None,
            arguments: None,
            confirmation: None,
            call_id: 0,
            trace_id: "0".repeat(32),
            span_id: "0".repeat(16),
            receipt: None,
        }
    }
}

/// A connector's receipt for a call ([`wire::CallReceipt`]): the place and hash of the
/// call's record in the connector's own log, signed with its audit key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The record's sequence number in the connector's chain.
    pub seq: u64,
    /// Its SHA-256, hex.
    pub record_hash: String,
    /// Ed25519 signature, base64, over [`shared::receipt::message`] or, for a receipt
    /// signed with others, over their batch ([`shared::receipt::signed_bytes`]).
    pub signature: String,
    /// The inclusion path in that batch, hex (absent when signed alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    /// The place in the batch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub index: u32,
    /// The batch's size.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub count: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl From<&wire::CallReceipt> for Receipt {
    /// Bounded: a path that is not one (too long, a step not 32 bytes) is kept as it came,
    /// truncated, so that the check names the receipt rather than dropping it.
    fn from(r: &wire::CallReceipt) -> Self {
        let path = r
            .path
            .iter()
            .take(shared::receipt::MAX_PATH + 1)
            .map(|step| hex::encode(step.get(..64).unwrap_or(step)))
            .collect();
        Self {
            seq: r.seq,
            record_hash: r.record_hash.chars().take(128).collect(),
            signature: r.signature.chars().take(256).collect(),
            path,
            index: r.index,
            count: r.count,
        }
    }
}

impl Arguments {
    /// The arguments as recorded: always the keyed digest, the value only if
    /// `record_value`, and then with credential-shaped strings redacted (a token pasted into
    /// a comment must not land in the audit trail).
    pub fn of(
        key: &DigestKey,
        arguments: &serde_json::Map<String, serde_json::Value>,
        record_value: bool,
    ) -> Self {
        let text = serde_json::to_string(arguments).unwrap_or_default();
        Self {
            hmac_sha256: key.digest(text.as_bytes()),
            value: record_value.then(|| {
                let mut value = serde_json::Value::Object(arguments.clone());
                crate::policy::hooks::redact_value(&mut value);
                value
            }),
        }
    }
}

/// The current time as records write it.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let ms = now.millisecond();
    let base = now
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    // `2026-12-02T10:00:00Z` -> `2026-12-02T10:00:00.123Z`
    match base.strip_suffix('Z') {
        Some(b) => format!("{b}.{ms:03}Z"),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_arguments_are_hashed_and_their_secrets_redacted() {
        let args = serde_json::json!({
            "body": "try ghp_abcdefghijklmnopqrstuvwxyz0123456789 now",
            "number": 5,
        });
        let args = args.as_object().cloned().unwrap_or_default();
        let key = DigestKey::new(b"tenant secret");
        let hashed = Arguments::of(&key, &args, false);
        assert_eq!(hashed.hmac_sha256.len(), 64);
        assert!(hashed.value.is_none());
        let recorded = Arguments::of(&key, &args, true);
        assert_eq!(recorded.hmac_sha256, hashed.hmac_sha256);
        let value = recorded.value.unwrap_or_default();
        assert_eq!(value["body"], "try [REDACTED] now");
        assert_eq!(value["number"], 5);
    }
}
