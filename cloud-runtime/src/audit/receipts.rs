//! Checking the receipts connectors signed for the calls they ran: each outcome record that
//! carries one must verify with an audit key its connector announced.

use std::collections::HashMap;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::record::AuditRecord;

/// What the check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Receipts that verified.
    pub valid: usize,
    /// One line per receipt that did not.
    pub problems: Vec<String>,
}

/// The raw bytes of an `ed25519:<base64>` key.
fn key_bytes(key: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(key.strip_prefix("ed25519:")?).ok()?;
    (bytes.len() == 32).then_some(bytes)
}

/// Whether `key` is an audit key as connectors announce it.
pub fn is_audit_key(key: &str) -> bool {
    key_bytes(key).is_some()
}

/// Checks the receipt of every record in `records` (`seq`, record) against the audit keys
/// of its connector (`keys`, by connector id).
pub fn check(records: &[(u64, AuditRecord)], keys: &HashMap<String, Vec<String>>) -> Checked {
    let mut out = Checked::default();
    for (seq, r) in records {
        let Some(receipt) = &r.receipt else {
            continue;
        };
        let connector = r.connector.as_deref().unwrap_or_default();
        let message =
            shared::receipt::message(&r.tenant, r.call_id, receipt.seq, &receipt.record_hash);
        let signed = shared::receipt::path_from_hex(&receipt.path).and_then(|path| {
            shared::receipt::signed_bytes(&message, receipt.index, receipt.count, &path)
        });
        let Some(signed) = signed else {
            out.problems.push(format!(
                "record {seq} (call {}): the receipt's batch path is not one (place {} of {}, {} steps)",
                r.call_id,
                receipt.index,
                receipt.count,
                receipt.path.len()
            ));
            continue;
        };
        let Ok(signature) = STANDARD.decode(&receipt.signature) else {
            out.problems.push(format!(
                "record {seq} (call {}): the receipt's signature is not base64",
                r.call_id
            ));
            continue;
        };
        let verifies = keys
            .get(connector)
            .into_iter()
            .flatten()
            .filter_map(|k| key_bytes(k))
            .any(|k| {
                UnparsedPublicKey::new(&ED25519, k)
                    .verify(&signed, &signature)
                    .is_ok()
            });
        if verifies {
            out.valid += 1;
        } else {
            out.problems.push(format!(
                "record {seq} (call {}): the receipt does not verify with any audit key connector {connector:?} announced",
                r.call_id
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

    use super::*;

    fn outcome(call_id: u64, receipt: serde_json::Value) -> AuditRecord {
        serde_json::from_value(serde_json::json!({
            "time": "2026-12-06T00:00:00Z", "kind": "outcome", "tenant": "acme",
            "user": "alice", "agent": "bot", "connector": "c1", "tool": "diag.ping",
            "outcome": "ok", "call_id": call_id, "trace_id": "t", "span_id": "s",
            "receipt": receipt,
        }))
        .unwrap()
    }

    /// A receipt verifies only with its connector's key, for its own call and place: one
    /// signed by another key, or moved to another call, is named.
    #[test]
    fn receipts_verify_only_with_their_connector_s_key_and_call() {
        let rng = SystemRandom::new();
        let pair = |_| {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
        };
        let (ours, theirs) = (pair(0), pair(1));
        let announced = format!("ed25519:{}", STANDARD.encode(ours.public_key().as_ref()));
        assert!(is_audit_key(&announced));
        assert!(!is_audit_key("ed25519:AAAA"));
        let sign = |k: &Ed25519KeyPair, call: u64| {
            let m = shared::receipt::message("acme", call, 9, "ab");
            serde_json::json!({"seq": 9, "record_hash": "ab", "signature": STANDARD.encode(k.sign(&m).as_ref())})
        };
        let records = vec![
            (1, outcome(7, sign(&ours, 7))),
            (2, outcome(8, sign(&theirs, 8))),
            (3, outcome(9, sign(&ours, 7))),
        ];
        let keys = HashMap::from([("c1".to_owned(), vec![announced])]);
        let checked = check(&records, &keys);
        assert_eq!(checked.valid, 1);
        assert_eq!(checked.problems.len(), 2, "{:?}", checked.problems);
        assert!(checked.problems[0].starts_with("record 2 (call 8)"));
        assert!(checked.problems[1].starts_with("record 3 (call 9)"));
        assert_eq!(check(&records, &HashMap::new()).valid, 0);
    }

    /// Receipts signed together verify each by its path; a path moved to another receipt,
    /// or one that is not a path, is named.
    #[test]
    fn batched_receipts_verify_by_their_inclusion_paths() {
        use shared::receipt::{Tree, batch_message, leaf_hash, message, path_to_hex};
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let announced = format!("ed25519:{}", STANDARD.encode(key.public_key().as_ref()));
        let calls = [7u64, 8, 9];
        let tree = Tree::new(
            calls
                .iter()
                .map(|c| leaf_hash(&message("acme", *c, 9, "ab")))
                .collect(),
        )
        .unwrap();
        let signature = STANDARD.encode(key.sign(&batch_message(3, &tree.root())).as_ref());
        let receipt = |index: usize, path_of: usize| {
            serde_json::json!({"seq": 9, "record_hash": "ab", "signature": signature,
                "path": path_to_hex(&tree.path(path_of)), "index": index, "count": 3})
        };
        let records = vec![
            (1, outcome(7, receipt(0, 0))),
            (2, outcome(8, receipt(1, 1))),
            (3, outcome(9, receipt(2, 2))),
            (4, outcome(8, receipt(1, 0))),
            (
                5,
                outcome(
                    9,
                    serde_json::json!({"seq": 9, "record_hash": "ab",
                "signature": signature, "path": ["00"], "index": 2, "count": 3}),
                ),
            ),
        ];
        let keys = HashMap::from([("c1".to_owned(), vec![announced])]);
        let checked = check(&records, &keys);
        assert_eq!(checked.valid, 3, "{:?}", checked.problems);
        assert_eq!(checked.problems.len(), 2, "{:?}", checked.problems);
        assert!(checked.problems[0].starts_with("record 4 (call 8): the receipt does not verify"));
        assert!(checked.problems[1].contains("batch path is not one"));
    }
}
