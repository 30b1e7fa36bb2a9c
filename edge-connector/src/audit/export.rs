//! Reading the log back for people and other tools: the last records (`audit tail`) and a
//! time range (`audit export`), as the NDJSON lines on disk, byte for byte, so that an
//! exported line can still be checked against its hash.

use std::path::Path;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AuditError;
use super::files::snapshot;
use super::record;

/// The complete lines of `bytes` (a torn last line is left out).
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes
        .get(..whole)
        .unwrap_or_default()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
}

/// The last `n` lines of the log in `dir`, oldest first.
pub fn tail(dir: &Path, n: usize) -> Result<Vec<Vec<u8>>, AuditError> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for (_, _, bytes) in snapshot(dir)?.iter().rev() {
        if out.len() >= n {
            break;
        }
        let mut these: Vec<Vec<u8>> = lines(bytes).map(<[u8]>::to_vec).collect();
        let keep = these.len().saturating_sub(n - out.len());
        these.drain(..keep);
        these.append(&mut out);
        out = these;
    }
    Ok(out)
}

/// The lines of records written in `[from, to)`, oldest first; lines that are not records
/// are skipped (`audit verify` names them).
pub fn range(
    dir: &Path,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<Vec<u8>>, AuditError> {
    let mut out = Vec::new();
    for (_, _, bytes) in snapshot(dir)? {
        for line in lines(&bytes) {
            let Ok(r) = record::decode(line) else {
                continue;
            };
            let Ok(ts) = OffsetDateTime::parse(&r.ts, &Rfc3339) else {
                continue;
            };
            if from <= ts && ts < to {
                out.push(line.to_vec());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{Event, OutcomeRecord};
    use crate::audit::writer::write_groups;
    use crate::audit::{AuditConfig, AuditKey, OnFull};

    #[test]
    fn tail_and_range_read_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::generate().unwrap();
        let config = AuditConfig {
            max_file_bytes: 600,
            max_total_bytes: 1 << 20,
            on_full: OnFull::Refuse,
        };
        let groups = (1..=4)
            .map(|i| {
                vec![Event::Outcome(OutcomeRecord {
                    call_id: i,
                    call_seq: i,
                    result: "ok".into(),
                })]
            })
            .collect();
        write_groups(dir.path(), &key, config, groups);
        assert!(crate::audit::files::list_files(dir.path()).unwrap().len() > 1);
        let last3 = tail(dir.path(), 3).unwrap();
        let seqs: Vec<u64> = last3
            .iter()
            .map(|l| record::decode(l).unwrap().seq)
            .collect();
        assert_eq!(seqs, [6, 7, 8]);
        let now = OffsetDateTime::now_utc();
        let hour = time::Duration::hours(1);
        assert_eq!(range(dir.path(), now - hour, now + hour).unwrap().len(), 8);
        assert!(
            range(dir.path(), now + hour, now + hour * 2)
                .unwrap()
                .is_empty()
        );
    }
}
