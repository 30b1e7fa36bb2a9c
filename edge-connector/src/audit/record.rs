//! One audit record: an NDJSON line whose last field is the SHA-256 of the bytes before it.
//!
//! ```text
//! {"seq":7,"ts":"2026-12-06T23:00:00.1Z","prev":"<hex of record 6>","kind":"call",...,"hash":"<hex>"}
//! ```
//! The hash covers the line's exact bytes up to `,"hash":` (with `}` closing them), so any
//! edit, even of white space, changes it; `prev` makes each line depend on the one before.
//! Text from the runtime is cut to [`MAX_TEXT`] characters, so a line stays small.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

/// The `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Longest text field kept (longer text is cut on a character boundary).
pub const MAX_TEXT: usize = 512;
/// Longest line read back.
pub const MAX_LINE: usize = 64 * 1024;
/// `,"hash":"` + 64 hex digits + `"}`.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// The local policy's decision on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The tool ran.
    Allow,
    /// Refused before the tool ran.
    Deny,
}

/// What the runtime asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Run the tool.
    Call,
    /// Say what the tool would do (reads upstream, writes nothing).
    Preview,
    /// Finish a user's sign-in at an upstream (the connector exchanges the code there);
    /// `tool` is `authorize`, and the code and state are not kept.
    Authorize,
    /// A tenant administrator listed the users' upstream connections or revoked one; the
    /// administrator is the `user`, `tool` is `connections.list` or `connections.revoke`,
    /// `repo` names the revoked connection (`provider/user`).
    Connections,
}

/// A call the connector received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRecord {
    /// The runtime's call id.
    pub call_id: u64,
    /// Call or preview.
    pub mode: Mode,
    /// The caller's tenant.
    pub tenant: String,
    /// The caller's user, as the runtime names it.
    pub user: String,
    /// The agent application.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// The provider instance, if the call names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The target repository, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// SHA-256 of the arguments' JSON text as received (the arguments are not kept).
    pub args_sha256: String,
    /// The W3C trace id from `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The local policy's decision.
    pub decision: Decision,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One upstream request of a call (never a token, a query string or a body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamRecord {
    /// The runtime's call id.
    pub call_id: u64,
    /// The sequence number of the call's `call` record.
    pub call_seq: u64,
    /// The provider instance.
    pub provider: String,
    /// HTTP method.
    pub method: String,
    /// The host the request went to.
    pub host: String,
    /// The route template (`/repos/{owner}/{repo}/issues`).
    pub path: String,
    /// HTTP status, 0 when no response arrived.
    pub status: u32,
    /// Time taken.
    pub duration_ms: u64,
    /// Attempt number, from 1.
    pub attempt: u32,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRecord {
    /// The runtime's call id.
    pub call_id: u64,
    /// The sequence number of the call's `call` record; 0 for a refused call, whose `call`
    /// record is the one just before.
    pub call_seq: u64,
    /// `ok`, or the wire error code's name.
    pub result: String,
}

/// A signature over the chain's head: everything before it is vouched for by the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealRecord {
    /// The sequence number of the record signed (the one just before the seal).
    pub head_seq: u64,
    /// That record's hash.
    pub head: String,
    /// The signing key's fingerprint (`sha256:<hex>` of the public key).
    pub key: String,
    /// Ed25519 signature over [`seal_message`], base64.
    pub sig: String,
}

/// The oldest file was removed at the size bound (`on_full = "rotate"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrunedRecord {
    /// The file's name.
    pub file: String,
    /// The sequence number of its last record.
    pub last_seq: u64,
    /// Its last record's hash: the `prev` of the first record kept.
    pub last_hash: String,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    /// A call received.
    Call(CallRecord),
    /// An upstream request made.
    Upstream(UpstreamRecord),
    /// A call's outcome.
    Outcome(OutcomeRecord),
    /// A signature over the chain.
    Seal(SealRecord),
    /// Old records removed at the size bound.
    Pruned(PrunedRecord),
}

#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    ts: &'a str,
    prev: &'a str,
    #[serde(flatten)]
    event: &'a Event,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Record {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When it was written, RFC 3339 UTC.
    pub ts: String,
    /// The previous record's hash.
    pub prev: String,
    /// What it says.
    #[serde(flatten)]
    pub event: Event,
    /// Its own hash (not part of the JSON body: taken from the line's end).
    #[serde(skip)]
    pub hash: String,
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// No `"hash"` field of 64 hex digits at its end.
    #[error("the line does not end with its hash")]
    NoHash,
    /// The hash does not match the line's bytes.
    #[error("the line's hash does not match its content (edited)")]
    HashMismatch,
    /// The JSON does not parse as a record.
    #[error("not a record: {0}")]
    Malformed(String),
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes))
}

/// Cuts `s` to [`MAX_TEXT`] characters.
pub fn bounded(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => s.get(..i).unwrap_or_default().to_owned(),
        None => s.to_owned(),
    }
}

/// The bytes a seal signs: the chain's head hash and sequence, with a domain prefix so a
/// signature made for anything else never passes as one.
pub fn seal_message(head_seq: u64, head: &str) -> Vec<u8> {
    format!("mcp-edge audit seal v1\n{head_seq}\n{head}\n").into_bytes()
}

/// The line (with its newline) of `event` at `seq` after `prev`, and its hash.
pub fn encode(seq: u64, ts: &str, prev: &str, event: &Event) -> (Vec<u8>, String) {
    let body = Body {
        seq,
        ts,
        prev,
        event,
    };
    // Serialising plain strings and integers cannot fail.
    let mut line = serde_json::to_vec(&body).unwrap_or_default();
    let hash = sha256_hex(&line);
    line.pop();
    line.extend_from_slice(format!(",\"hash\":\"{hash}\"}}\n").as_bytes());
    (line, hash)
}

/// Reads one line (without its newline), checking its hash.
pub fn decode(line: &[u8]) -> Result<Record, LineError> {
    let split = line
        .len()
        .checked_sub(HASH_SUFFIX_LEN)
        .ok_or(LineError::NoHash)?;
    let (front, suffix) = line.split_at_checked(split).ok_or(LineError::NoHash)?;
    let hash = suffix
        .strip_prefix(b",\"hash\":\"")
        .and_then(|s| s.strip_suffix(b"\"}"))
        .filter(|h| {
            h.iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        })
        .ok_or(LineError::NoHash)?;
    let mut body = front.to_vec();
    body.push(b'}');
    let hash = String::from_utf8_lossy(hash).into_owned();
    if sha256_hex(&body) != hash {
        return Err(LineError::HashMismatch);
    }
    let mut record: Record =
        serde_json::from_slice(&body).map_err(|e| LineError::Malformed(e.to_string()))?;
    record.hash = hash;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Event {
        Event::Outcome(OutcomeRecord {
            call_id: 9,
            call_seq: 3,
            result: "ok".into(),
        })
    }

    #[test]
    fn a_line_reads_back_as_written_and_its_hash_covers_every_byte() {
        let (line, hash) = encode(4, "2026-12-06T23:00:00Z", GENESIS, &outcome());
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(text.starts_with("{\"seq\":4,\"ts\":"), "{text}");
        assert!(text.contains("\"kind\":\"outcome\""), "{text}");
        let r = decode(line.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(
            (r.seq, r.hash.as_str(), &r.event),
            (4, hash.as_str(), &outcome())
        );
        let edited = text.trim_end().replace("\"ok\"", "\"no\"");
        assert_eq!(decode(edited.as_bytes()), Err(LineError::HashMismatch));
        let spaced = text.trim_end().replacen(':', ": ", 1);
        assert_eq!(decode(spaced.as_bytes()), Err(LineError::HashMismatch));
        assert_eq!(decode(b"{}"), Err(LineError::NoHash));
        assert_eq!(decode(&line[..line.len() / 2]), Err(LineError::NoHash));
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT + 10);
        assert_eq!(bounded(&long).chars().count(), MAX_TEXT);
        assert_eq!(bounded("short"), "short");
    }
}
