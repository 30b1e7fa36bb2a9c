//! The tamper-evident line format of the audit log, and its verification.
//!
//! Each record is one JSON line that begins with its sequence number and the hash of the
//! record before it, and ends with its own hash:
//!
//! ```text
//! {"seq":7,"prev":"<hex of record 6's hash>", ...record fields... ,"hash":"<hex>"}
//! hash = SHA-256( prev || body )   where body is the line without its `,"hash":...` tail
//! ```
//!
//! The first record's `prev` is 64 zeros. Changing a record breaks its hash; removing one
//! leaves a gap in the sequence and a `prev` that names nothing; swapping two breaks the
//! order. The hash is over the exact bytes of the line, so verification never depends on
//! how JSON is re-serialized.

use serde::{Deserialize, Serialize};

use super::record::AuditRecord;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the chain stands: the last record's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Last sequence number (0 before the first record).
    pub seq: u64,
    /// Last hash.
    pub hash: String,
}

impl Default for Head {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    prev: &'a str,
    #[serde(flatten)]
    record: &'a AuditRecord,
}

fn digest(prev: &str, body: &[u8]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(prev.as_bytes());
    ctx.update(body);
    hex::encode(ctx.finish())
}

/// Appends `record` to the chain at `head`: returns the line (with its newline) and moves the
/// head on.
pub fn append(head: &mut Head, record: &AuditRecord) -> Result<Vec<u8>, serde_json::Error> {
    let seq = head.seq + 1;
    let mut line = serde_json::to_vec(&Body {
        seq,
        prev: &head.hash,
        record,
    })?;
    let hash = digest(&head.hash, &line);
    // `{...}` becomes `{...,"hash":"<hex>"}\n`.
    line.pop();
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}\n");
    *head = Head { seq, hash };
    Ok(line)
}

/// The chain fields of one line, and the record.
#[derive(Debug, Deserialize)]
pub struct Parsed {
    /// Sequence number.
    pub seq: u64,
    /// The previous record's hash.
    pub prev: String,
    /// This record's hash.
    pub hash: String,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// Why a line does not hold up on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not a record line at all.
    #[error("not an audit record ({0})")]
    Unreadable(String),
    /// The content does not match the hash.
    #[error("its content does not match its hash: the record was changed")]
    Altered,
}

/// Parses a line (without its newline) and checks its own hash.
pub fn parse_line(line: &[u8]) -> Result<Parsed, LineError> {
    let parsed: Parsed =
        serde_json::from_slice(line).map_err(|e| LineError::Unreadable(e.to_string()))?;
    let tail = format!(",\"hash\":\"{}\"}}", parsed.hash);
    let Some(body) = line.strip_suffix(tail.as_bytes()) else {
        return Err(LineError::Unreadable(
            "the hash is not the last field".into(),
        ));
    };
    let mut body = body.to_vec();
    body.push(b'}');
    if digest(&parsed.prev, &body) != parsed.hash {
        return Err(LineError::Altered);
    }
    Ok(parsed)
}

/// A break in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file.
    pub line: usize,
    /// The record's sequence number, when readable.
    pub seq: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "line {} (record {seq}): {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// Verifies a whole log. Returns the head it ends at, or every problem found (the first is
/// where the tampering starts).
pub fn verify(text: &[u8]) -> Result<Head, Vec<Problem>> {
    let mut head = Head::default();
    let mut problems = Vec::new();
    // Sequence numbers skipped so far, to tell a later reappearance (reordering) from a
    // removal.
    let mut missing: Vec<(usize, u64)> = Vec::new();
    let lines = text.split(|&b| b == b'\n').count();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        if raw.is_empty() {
            if line < lines {
                problems.push(Problem {
                    line,
                    seq: None,
                    message: "empty line inside the log".into(),
                });
            }
            continue;
        }
        let parsed = match parse_line(raw) {
            Ok(p) => p,
            Err(e) => {
                let seq = serde_json::from_slice::<serde_json::Value>(raw)
                    .ok()
                    .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64));
                problems.push(Problem {
                    line,
                    seq,
                    message: e.to_string(),
                });
                // Move on as if the record were sound, so later checks still mean something.
                if let Some(seq) = seq {
                    head.seq = seq;
                }
                head.hash = serde_json::from_slice::<serde_json::Value>(raw)
                    .ok()
                    .and_then(|v| v.get("hash").and_then(|h| h.as_str().map(str::to_owned)))
                    .unwrap_or_default();
                continue;
            }
        };
        let expected = head.seq + 1;
        if parsed.seq < expected {
            if let Some(pos) = missing.iter().position(|&(_, s)| s == parsed.seq) {
                let (at, _) = missing.remove(pos);
                problems.push(Problem {
                    line,
                    seq: Some(parsed.seq),
                    message: format!(
                        "out of order: it belongs before line {at}; records were reordered"
                    ),
                });
            } else {
                problems.push(Problem {
                    line,
                    seq: Some(parsed.seq),
                    message: format!(
                        "sequence goes back from {} to {}: records were reordered or duplicated",
                        head.seq, parsed.seq
                    ),
                });
            }
        } else if parsed.seq > expected {
            for s in expected..parsed.seq {
                missing.push((line, s));
            }
        } else if parsed.prev != head.hash {
            problems.push(Problem {
                line,
                seq: Some(parsed.seq),
                message: "does not follow the record before it (its prev hash differs): records were removed, inserted or reordered".into(),
            });
        }
        if parsed.seq > head.seq {
            head = Head {
                seq: parsed.seq,
                hash: parsed.hash,
            };
        }
    }
    for (line, seq) in missing {
        problems.push(Problem {
            line,
            seq: Some(seq),
            message: format!("record {seq} is missing: it was removed"),
        });
    }
    problems.sort_by_key(|p| p.line);
    if problems.is_empty() {
        Ok(head)
    } else {
        Err(problems)
    }
}

/// Verifies `text` and checks that it still reaches `checkpoint`, the head its writer
/// last recorded: records cut from the end leave every remaining hash intact, and only the
/// checkpoint tells.
pub fn verify_against(text: &[u8], checkpoint: Option<&Head>) -> Result<Head, Vec<Problem>> {
    let lines = || {
        text.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    };
    match (verify(text), checkpoint) {
        (Ok(head), Some(cp)) if cp.seq > head.seq => Err(vec![Problem {
            line: lines(),
            seq: Some(head.seq),
            message: format!(
                "the log ends at record {} but its checkpoint names record {}: records {}..={} were removed from the end",
                head.seq,
                cp.seq,
                head.seq + 1,
                cp.seq
            ),
        }]),
        (Ok(head), Some(cp)) if cp.seq == head.seq && cp.hash != head.hash => Err(vec![Problem {
            line: lines(),
            seq: Some(head.seq),
            message: "the last record differs from the checkpointed one".into(),
        }]),
        (r, _) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Kind;

    fn record(tool: &str) -> AuditRecord {
        AuditRecord {
            time: "2026-12-02T00:00:00.000Z".into(),
            kind: Kind::Decision,
            tenant: "acme".into(),
            gateway: Some("eng".into()),
            user: "alice".into(),
            user_id: None,
            agent: "bot".into(),
            connector: None,
            tool: tool.into(),
            instance: None,
            target: Some("acme/widgets".into()),
            decision: Some(super::super::record::Verdict::Allow),
            layer: None,
            reason: None,
            outcome: None,
            duration_ms: None,
            upstream: None,
            arguments: None,
            confirmation: None,
            call_id: 1,
            trace_id: "0".repeat(32),
            span_id: "0".repeat(16),
            receipt: None,
        }
    }

    fn log(n: usize) -> Vec<Vec<u8>> {
        let mut head = Head::default();
        (0..n)
            .map(|i| append(&mut head, &record(&format!("tool_{i}"))).unwrap())
            .collect()
    }

    fn join(lines: &[Vec<u8>]) -> Vec<u8> {
        lines.concat()
    }

    #[test]
    fn an_untouched_log_verifies() {
        let lines = log(5);
        let head = verify(&join(&lines)).unwrap();
        assert_eq!(head.seq, 5);
        assert_eq!(verify(b"").unwrap(), Head::default());
        let parsed = parse_line(lines[2].strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(parsed.record.tool, "tool_2");
    }

    #[test]
    fn an_edited_record_is_named() {
        let mut lines = log(5);
        let edited = String::from_utf8(lines[2].clone())
            .unwrap()
            .replace("alice", "mallory");
        lines[2] = edited.into_bytes();
        let problems = verify(&join(&lines)).unwrap_err();
        assert_eq!(problems[0].line, 3);
        assert_eq!(problems[0].seq, Some(3));
        assert!(problems[0].message.contains("changed"), "{}", problems[0]);
    }

    #[test]
    fn a_deleted_record_is_named() {
        let mut lines = log(5);
        lines.remove(1);
        let problems = verify(&join(&lines)).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].seq, Some(2));
        assert!(problems[0].message.contains("missing"), "{}", problems[0]);
        // The first record removed: the chain no longer starts at 1.
        let mut lines = log(3);
        lines.remove(0);
        let problems = verify(&join(&lines)).unwrap_err();
        assert_eq!(problems[0].seq, Some(1));
    }

    #[test]
    fn a_swapped_pair_is_named() {
        let mut lines = log(5);
        lines.swap(1, 2);
        let problems = verify(&join(&lines)).unwrap_err();
        assert_eq!(problems[0].line, 3, "{problems:?}");
        assert_eq!(problems[0].seq, Some(2));
        assert!(problems[0].message.contains("reordered"), "{}", problems[0]);
    }

    #[test]
    fn garbage_is_reported_not_panicked_on() {
        let mut lines = log(2);
        lines.insert(1, b"not json\n".to_vec());
        let problems = verify(&join(&lines)).unwrap_err();
        assert_eq!(problems[0].line, 2);
        assert!(verify(b"{\"seq\":1}\n").is_err());
    }
}
