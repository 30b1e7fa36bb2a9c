//! The log as OCSF API Activity events (class 6003, OCSF 1.6.0), for a SIEM: one event per
//! `call` record (the call the runtime sent, its local-policy decision) and per `upstream`
//! record (the request the connector made); seals, outcomes and pruned records are the
//! log's own bookkeeping and stay out (an outcome's result is on the call's event when both
//! are in the range). The record's sequence number and hash travel in `unmapped`, so an
//! event can be traced back to the signed line.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::record::{CallRecord, Decision, Event, Record, UpstreamRecord};

/// The OCSF version the events follow.
pub const OCSF_VERSION: &str = "1.6.0";
/// API Activity.
pub const CLASS_UID: u64 = 6003;
/// Application Activity.
pub const CATEGORY_UID: u64 = 6;

/// OCSF `activity_id` of an HTTP method: Create 1, Read 2, Update 3, Delete 4, Other 99.
fn method_activity(method: &str) -> u64 {
    match method {
        "GET" | "HEAD" => 2,
        "POST" => 1,
        "PUT" | "PATCH" => 3,
        "DELETE" => 4,
        _ => 99,
    }
}

/// OCSF `activity_id` of a tool, from the verb its name starts with.
fn tool_activity(tool: &str) -> u64 {
    let verb = tool.split(['_', '.']).nth(1).unwrap_or_default();
    match verb {
        "get" | "list" | "search" | "whoami" | "ping" | "echo" => 2,
        "create" | "comment" => 1,
        "delete" => 4,
        _ => 3,
    }
}

/// Milliseconds since the epoch of an RFC 3339 time (0 if it does not parse).
fn epoch_ms(ts: &str) -> i64 {
    OffsetDateTime::parse(ts, &Rfc3339)
        .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The attributes every event shares.
fn base(r: &Record, activity_id: u64, success: bool, version: &str) -> Value {
    json!({
        "class_uid": CLASS_UID,
        "category_uid": CATEGORY_UID,
        "activity_id": activity_id,
        "type_uid": CLASS_UID * 100 + activity_id,
        "severity_id": 1,
        "time": epoch_ms(&r.ts),
        "status_id": if success { 1 } else { 2 },
        "status": if success { "Success" } else { "Failure" },
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "edge-connector",
                "vendor_name": "mcp-edge",
                "version": version,
            },
            "log_name": "edge-connector audit",
            "original_time": r.ts,
        },
        "unmapped": { "seq": r.seq, "hash": r.hash },
    })
}

/// Merges `extra`'s top-level members into `event`.
fn with(mut event: Value, extra: Value) -> Value {
    if let (Some(e), Value::Object(x)) = (event.as_object_mut(), extra) {
        for (k, v) in x {
            match (e.get_mut(&k), v) {
                (Some(Value::Object(have)), Value::Object(more)) => have.extend(more),
                (_, v) => {
                    e.insert(k, v);
                }
            }
        }
    }
    event
}

fn call_event(r: &Record, c: &CallRecord, result: Option<&str>, version: &str) -> Value {
    let allowed = c.decision == Decision::Allow;
    let success = allowed && result.is_none_or(|res| res == "ok");
    let mut event = with(
        base(r, tool_activity(&c.tool), success, version),
        json!({
            "actor": {
                "user": { "uid": c.user, "name": c.user },
                "app_name": c.agent,
            },
            "api": {
                "operation": c.tool,
                "service": { "name": "edge-connector" },
                "request": { "uid": c.call_id.to_string() },
            },
            "src_endpoint": { "name": "cloud-runtime" },
            "metadata": { "tenant_uid": c.tenant, "uid": r.seq.to_string() },
            "unmapped": {
                "kind": "call",
                "decision": c.decision,
                "args_sha256": c.args_sha256,
            },
        }),
    );
    if let Some(trace) = &c.trace_id {
        event = with(event, json!({ "metadata": { "correlation_uid": trace } }));
    }
    if let Some(repo) = &c.repo {
        event = with(
            event,
            json!({ "resources": [{ "name": repo, "type": "repository" }] }),
        );
    }
    if let Some(reason) = &c.reason {
        event = with(event, json!({ "status_detail": reason }));
    }
    if let Some(res) = result {
        event = with(event, json!({ "api": { "response": { "code": res } } }));
    }
    event
}

fn upstream_event(
    r: &Record,
    u: &UpstreamRecord,
    call: Option<&CallRecord>,
    version: &str,
) -> Value {
    let success = (200..400).contains(&u.status);
    let user = call.map_or("", |c| c.user.as_str());
    with(
        base(r, method_activity(&u.method), success, version),
        json!({
            "actor": {
                "user": { "uid": user, "name": user },
                "app_name": "edge-connector",
            },
            "api": {
                "operation": format!("{} {}", u.method, u.path),
                "service": { "name": u.provider },
                "request": { "uid": u.call_id.to_string() },
                "response": { "code": u.status },
            },
            "src_endpoint": { "name": "edge-connector" },
            "dst_endpoint": { "hostname": u.host },
            "http_request": { "http_method": u.method, "url": { "path": u.path, "hostname": u.host } },
            "http_response": { "code": u.status },
            "duration": u.duration_ms,
            "metadata": { "uid": r.seq.to_string() },
            "unmapped": { "kind": "upstream", "call_seq": u.call_seq, "attempt": u.attempt },
        }),
    )
}

/// The OCSF events of `records` (in log order), `version` being the connector's.
pub fn events(records: &[Record], version: &str) -> Vec<Value> {
    let calls: std::collections::HashMap<u64, &CallRecord> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Call(c) => Some((r.seq, c)),
            _ => None,
        })
        .collect();
    let results: std::collections::HashMap<u64, &str> = records
        .iter()
        .filter_map(|r| match &r.event {
            // A refusal's outcome names no sequence (0): its call record is the one before.
            Event::Outcome(o) if o.call_seq == 0 => {
                Some((r.seq.saturating_sub(1), o.result.as_str()))
            }
            Event::Outcome(o) => Some((o.call_seq, o.result.as_str())),
            _ => None,
        })
        .collect();
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Call(c) => Some(call_event(r, c, results.get(&r.seq).copied(), version)),
            Event::Upstream(u) => Some(upstream_event(
                r,
                u,
                calls.get(&u.call_seq).copied(),
                version,
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{self, Mode, OutcomeRecord, decode, encode};

    /// Reads `line` back as a record.
    fn rec(seq: u64, event: Event) -> Record {
        let (line, _) = encode(seq, "2026-12-06T23:00:00.5Z", record::GENESIS, &event);
        decode(line.strip_suffix(b"\n").unwrap()).unwrap()
    }

    /// The OCSF API Activity class's required attributes (base event, then the class's
    /// own) and the required members of the objects they hold.
    fn assert_valid_api_activity(e: &Value) {
        for field in [
            "activity_id",
            "category_uid",
            "class_uid",
            "metadata",
            "severity_id",
            "time",
            "type_uid",
            "actor",
            "api",
            "src_endpoint",
        ] {
            assert!(!e[field].is_null(), "{field} missing in {e}");
        }
        assert_eq!(e["class_uid"], 6003);
        assert_eq!(e["category_uid"], 6);
        let activity = e["activity_id"].as_u64().unwrap();
        assert!([1, 2, 3, 4, 99].contains(&activity), "{e}");
        assert_eq!(e["type_uid"].as_u64(), Some(600300 + activity));
        assert!(e["time"].as_i64().unwrap() > 1_700_000_000_000, "{e}");
        assert!([0, 1, 2, 3, 4, 5, 6, 99].contains(&e["severity_id"].as_u64().unwrap()));
        // metadata: product (with vendor_name) and version are required.
        assert!(e["metadata"]["version"].is_string(), "{e}");
        assert!(e["metadata"]["product"]["vendor_name"].is_string(), "{e}");
        // api: operation is required.
        assert!(
            e["api"]["operation"]
                .as_str()
                .is_some_and(|o| !o.is_empty()),
            "{e}"
        );
        // actor and src_endpoint: at least one identifying member.
        assert!(e["actor"]["user"]["uid"].is_string() || e["actor"]["app_name"].is_string());
        assert!(e["src_endpoint"]["name"].is_string(), "{e}");
    }

    #[test]
    fn calls_and_upstream_requests_become_valid_api_activity_events() {
        let call = CallRecord {
            call_id: 4,
            mode: Mode::Call,
            tenant: "acme".into(),
            user: "u-1".into(),
            agent: "bot".into(),
            tool: "github_create_issue".into(),
            instance: None,
            repo: Some("acme/widgets".into()),
            args_sha256: record::sha256_hex(b"{}"),
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            decision: Decision::Allow,
            reason: None,
        };
        let refused = CallRecord {
            decision: Decision::Deny,
            reason: Some("not allowed".into()),
            tool: "github_get_issue".into(),
            ..call.clone()
        };
        let records = [
            rec(1, Event::Call(call)),
            rec(
                2,
                Event::Upstream(UpstreamRecord {
                    call_id: 4,
                    call_seq: 1,
                    provider: "ghes".into(),
                    method: "POST".into(),
                    host: "github.example.com".into(),
                    path: "/repos/{owner}/{repo}/issues".into(),
                    status: 201,
                    duration_ms: 12,
                    attempt: 1,
                }),
            ),
            rec(
                3,
                Event::Outcome(OutcomeRecord {
                    call_id: 4,
                    call_seq: 1,
                    result: "ok".into(),
                }),
            ),
            rec(4, Event::Call(refused)),
            rec(
                5,
                Event::Outcome(OutcomeRecord {
                    call_id: 5,
                    call_seq: 0,
                    result: "denied".into(),
                }),
            ),
        ];
        let events = events(&records, "0.1.0");
        assert_eq!(events.len(), 3);
        for e in &events {
            assert_valid_api_activity(e);
        }
        let [created, post, denied] = events.as_slice() else {
            unreachable!()
        };
        assert_eq!(
            (
                created["activity_id"].as_u64(),
                created["status_id"].as_u64()
            ),
            (Some(1), Some(1))
        );
        assert_eq!(created["resources"][0]["name"], "acme/widgets");
        assert_eq!(
            created["metadata"]["correlation_uid"],
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(post["actor"]["user"]["uid"], "u-1");
        assert_eq!(post["dst_endpoint"]["hostname"], "github.example.com");
        assert_eq!(
            (denied["activity_id"].as_u64(), denied["status_id"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(denied["status_detail"], "not allowed");
        assert_eq!(denied["api"]["response"]["code"], "denied");
    }
}
