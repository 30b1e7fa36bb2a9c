//! Holding the runtime's record of a time range against this connector's own: every call
//! the runtime says this connector ran and the connector has no record of, every call the
//! connector ran that the runtime did not record, and every call whose records differ
//! (tool, user, result, or a receipt that does not name the connector's record).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::key::PublicKey;
use super::record::{Decision, Event, Mode, Record};

/// A receipt as the runtime stores it.
#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeReceipt {
    /// The call's record's place in the connector's chain.
    pub seq: u64,
    /// Its hash.
    pub record_hash: String,
    /// The connector's signature.
    pub signature: String,
    /// Its inclusion path in the batch signed with it (hex), if signed with others.
    #[serde(default)]
    pub path: Vec<String>,
    /// Its place in that batch.
    #[serde(default)]
    pub index: u32,
    /// The batch's size.
    #[serde(default)]
    pub count: u32,
}

/// The fields of a runtime audit record reconciling needs (the rest is ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeRecord {
    /// RFC 3339.
    pub time: String,
    /// `decision`, `upstream`, `outcome`, ...
    pub kind: String,
    /// Tenant.
    pub tenant: String,
    /// The user's stable id.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The connector that ran the call.
    #[serde(default)]
    pub connector: Option<String>,
    /// Tool.
    pub tool: String,
    /// `ok`, `denied`, `error`, ...
    #[serde(default)]
    pub outcome: Option<String>,
    /// The runtime's call id.
    pub call_id: u64,
    /// W3C trace id.
    #[serde(default)]
    pub trace_id: String,
    /// The connector's receipt.
    #[serde(default)]
    pub receipt: Option<RuntimeReceipt>,
}

/// Why the runtime's export cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("line {line} of the runtime's export: {reason}")]
pub struct ExportError {
    line: usize,
    reason: String,
}

/// The runtime's outcome records of calls `connector` ran, from its NDJSON export.
pub fn runtime_outcomes(text: &str, connector: &str) -> Result<Vec<RuntimeRecord>, ExportError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: RuntimeRecord = serde_json::from_str(line).map_err(|e| ExportError {
            line: i + 1,
            reason: e.to_string(),
        })?;
        if r.kind == "outcome" && r.connector.as_deref() == Some(connector) {
            out.push(r);
        }
    }
    Ok(out)
}

/// A call as the connector recorded it.
struct Local<'a> {
    call: &'a Record,
    user: &'a str,
    tool: &'a str,
    decision: Decision,
    result: Option<&'a str>,
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Whether a runtime outcome label and a connector result say the same: both succeeded, or
/// both did not.
fn same_result(runtime: &str, local: &str) -> bool {
    (runtime == "ok") == (local == "ok")
}

/// Every discrepancy between the runtime's `outcomes` and this connector's `records`,
/// within the runtime export's time range; `key` checks the receipts.
pub fn reconcile(outcomes: &[RuntimeRecord], records: &[Record], key: &PublicKey) -> Vec<String> {
    let mut found = Vec::new();
    let times: Vec<OffsetDateTime> = outcomes
        .iter()
        .filter_map(|r| parse_time(&r.time))
        .collect();
    let (Some(from), Some(to)) = (times.iter().min(), times.iter().max()) else {
        return found;
    };
    let by_seq: BTreeMap<u64, &Record> = records.iter().map(|r| (r.seq, r)).collect();
    // The connector's calls, by (call id, trace id), with their outcomes.
    let mut local: BTreeMap<(u64, String), Local<'_>> = BTreeMap::new();
    for r in records {
        if let Event::Call(c) = &r.event
            && c.mode == Mode::Call
        {
            let outcome = records.iter().find(|o| {
                matches!(&o.event, Event::Outcome(out) if out.call_id == c.call_id && (out.call_seq == r.seq || out.call_seq == 0) && o.seq > r.seq)
            });
            let result = outcome.and_then(|o| match &o.event {
                Event::Outcome(out) => Some(out.result.as_str()),
                _ => None,
            });
            local.insert(
                (c.call_id, c.trace_id.clone().unwrap_or_default()),
                Local {
                    call: r,
                    user: &c.user,
                    tool: &c.tool,
                    decision: c.decision,
                    result,
                },
            );
        }
    }
    let mut seen = BTreeSet::new();
    for o in outcomes {
        let id = (o.call_id, o.trace_id.clone());
        let Some(l) = local.get(&id) else {
            found.push(format!(
                "the runtime says call {} ({}, at {}) ran here: this connector has no record of it",
                o.call_id, o.tool, o.time
            ));
            continue;
        };
        seen.insert(id);
        let call = o.call_id;
        if l.tool != o.tool {
            found.push(format!(
                "call {call}: the runtime records the tool {}, this connector ran {}",
                o.tool, l.tool
            ));
        }
        if let Some(user) = &o.user_id
            && user != l.user
        {
            found.push(format!(
                "call {call}: the runtime records the user {user}, this connector's record names {}",
                l.user
            ));
        }
        if let (Some(runtime), Some(here)) = (&o.outcome, l.result)
            && !same_result(runtime, here)
        {
            found.push(format!(
                "call {call}: the runtime records the outcome {runtime}, this connector's record says {here}"
            ));
        }
        if let Some(receipt) = &o.receipt {
            let message =
                shared::receipt::message(&o.tenant, o.call_id, receipt.seq, &receipt.record_hash);
            let signed = shared::receipt::path_from_hex(&receipt.path).and_then(|path| {
                shared::receipt::signed_bytes(&message, receipt.index, receipt.count, &path)
            });
            if !signed.is_some_and(|signed| key.verifies_message(&signed, &receipt.signature)) {
                found.push(format!(
                    "call {call}: the receipt the runtime holds was not signed with this connector's audit key"
                ));
            }
            match by_seq.get(&receipt.seq) {
                Some(r) if r.hash == receipt.record_hash => {}
                _ => found.push(format!(
                    "call {call}: the receipt names record {} ({}), which this connector's log does not hold",
                    receipt.seq, receipt.record_hash
                )),
            }
        }
    }
    for (id, l) in &local {
        if seen.contains(id) || l.decision != Decision::Allow {
            continue;
        }
        let Some(at) = parse_time(&l.call.ts) else {
            continue;
        };
        if at >= *from && at <= *to {
            found.push(format!(
                "this connector ran call {} ({}, at {}): the runtime has no record of it",
                id.0, l.tool, l.call.ts
            ));
        }
    }
    found
}
