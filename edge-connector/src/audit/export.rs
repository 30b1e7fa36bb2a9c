//! Reading the log back for people and other tools: the last records (`audit tail`) and a
//! time range (`audit export`), as the NDJSON lines on disk, byte for byte, so that an
//! exported line can still be checked against its hash.

use std::io::Read;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AuditError;
use super::record;
use super::writer::list_files;

/// The lock file: the writer holds it exclusively while it changes the files, readers
/// share it while they note the files' lengths.
pub const LOCK_FILE: &str = "lock";

/// Reads a whole log file, never through a link.
pub fn read_file(path: &Path) -> Result<Vec<u8>, AuditError> {
    read_prefix(path, u64::MAX)
}

/// Reads the first `len` bytes of a log file, never through a link.
fn read_prefix(path: &Path, len: u64) -> Result<Vec<u8>, AuditError> {
    let mut bytes = Vec::new();
    shared::fs::open_read(path)
        .map_err(|e| AuditError::io(path, e))?
        .take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| AuditError::io(path, e))?;
    Ok(bytes)
}

/// The log's files and their contents as of a moment between two segments, oldest first,
/// so that a log read while the connector writes it ends on a seal.
pub fn snapshot(dir: &Path) -> Result<Vec<(u32, PathBuf, Vec<u8>)>, AuditError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let lock_path = dir.join(LOCK_FILE);
    let lock = shared::fs::open_lock(&lock_path, 0o600, None)
        .map_err(|e| AuditError::io(&lock_path, e))?;
    lock.lock_shared()
        .map_err(|e| AuditError::io(&lock_path, e))?;
    let mut lengths = Vec::new();
    for (number, path) in list_files(dir)? {
        let len = std::fs::symlink_metadata(&path)
            .map_err(|e| AuditError::io(&path, e))?
            .len();
        lengths.push((number, path, len));
    }
    drop(lock);
    lengths
        .into_iter()
        .map(|(n, path, len)| read_prefix(&path, len).map(|bytes| (n, path, bytes)))
        .collect()
}

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
        assert!(list_files(dir.path()).unwrap().len() > 1);
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
