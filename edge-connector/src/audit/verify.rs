//! Checking a log: every line's hash, every link to the line before, every seal's signature
//! with the connector's public key, and that nothing follows the last seal. The first
//! failure is named by file, line and sequence number.
//!
//! What each failure means:
//! - a hash that does not match: the line was edited;
//! - a `prev` that does not match: a line before it was edited and re-hashed, removed or
//!   moved, or its file was replaced;
//! - a sequence number out of order: a record was removed or the lines reordered;
//! - a seal with another key or a bad signature: the log was re-signed by someone else;
//! - records after the last seal, or a last line without its newline: the log was cut short;
//! - a first record that is not the chain's first, with no `pruned` record accounting for the
//!   files before it: the oldest files were removed by hand.

use std::path::{Path, PathBuf};

use super::AuditError;
use super::files::{file_name, snapshot};
use super::key::PublicKey;
use super::record::{self, Event, GENESIS};

/// A log that checks out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Files read.
    pub files: usize,
    /// Records read.
    pub records: u64,
    /// Seals checked.
    pub seals: u64,
    /// The first record's sequence number (above 1 once old files were pruned).
    pub first_seq: u64,
    /// The last record's sequence number.
    pub last_seq: u64,
}

/// The first record that does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {}{reason}", file.display(), seq.map(|s| format!("record {s}: ")).unwrap_or_default())]
pub struct Broken {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The record's sequence number, when it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

/// Why verification did not pass.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The log is broken at a record.
    #[error(transparent)]
    Broken(#[from] Broken),
    /// The log could not be read.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// The walk's state.
struct Walk<'k> {
    key: &'k PublicKey,
    fingerprint: String,
    report: Report,
    head: Option<(u64, String)>,
    start: Option<(PathBuf, u64, String)>,
    last_sealed: bool,
    pruned: Vec<(u64, String)>,
}

impl Walk<'_> {
    fn record(&mut self, file: &Path, line_no: usize, line: &[u8]) -> Result<(), Broken> {
        let broken = |seq: Option<u64>, reason: String| Broken {
            file: file.to_owned(),
            line: line_no,
            seq,
            reason,
        };
        let r = record::decode(line).map_err(|e| broken(None, e.to_string()))?;
        let at = Some(r.seq);
        match &self.head {
            None if r.seq == 1 && r.prev == GENESIS => {}
            None => self.start = Some((file.to_owned(), r.seq, r.prev.clone())),
            Some((seq, _)) if r.seq != seq + 1 => {
                return Err(broken(
                    at,
                    format!("follows record {seq}: a record was removed or the records reordered"),
                ));
            }
            Some((_, hash)) if &r.prev != hash => {
                return Err(broken(
                    at,
                    "does not chain to the record before it: that one was changed, or this file was replaced".into(),
                ));
            }
            Some(_) => {}
        }
        match &r.event {
            Event::Seal(s) => {
                if s.head_seq + 1 != r.seq || s.head != r.prev {
                    return Err(broken(
                        at,
                        "the seal names another head than the record before it".into(),
                    ));
                }
                if s.key != self.fingerprint {
                    return Err(broken(
                        at,
                        format!(
                            "sealed with another key ({}, expected {})",
                            s.key, self.fingerprint
                        ),
                    ));
                }
                if !self.key.verifies(s.head_seq, &s.head, &s.sig) {
                    return Err(broken(at, "the seal's signature does not verify".into()));
                }
                self.report.seals += 1;
            }
            Event::Pruned(p) => self.pruned.push((p.last_seq, p.last_hash.clone())),
            _ => {}
        }
        self.last_sealed = matches!(r.event, Event::Seal(_));
        if self.head.is_none() {
            self.report.first_seq = r.seq;
        }
        self.report.last_seq = r.seq;
        self.report.records += 1;
        self.head = Some((r.seq, r.hash));
        Ok(())
    }
}

/// Verifies the log in `dir` against `key`.
pub fn verify(dir: &Path, key: &PublicKey) -> Result<Report, VerifyError> {
    let files = snapshot(dir)?;
    let mut walk = Walk {
        key,
        fingerprint: key.fingerprint(),
        report: Report::default(),
        head: None,
        start: None,
        last_sealed: true,
        pruned: Vec::new(),
    };
    let mut expected_number = None;
    let mut last_place = (dir.to_owned(), 0);
    for (number, path, bytes) in &files {
        if let Some(n) = expected_number
            && *number != n
        {
            return Err(Broken {
                file: path.clone(),
                line: 1,
                seq: None,
                reason: format!("{} is missing: a file was removed", file_name(n)),
            }
            .into());
        }
        expected_number = Some(number + 1);
        walk.report.files += 1;
        let mut rest = bytes.as_slice();
        let mut line_no = 0;
        while !rest.is_empty() {
            line_no += 1;
            let Some(end) = rest.iter().position(|b| *b == b'\n') else {
                return Err(Broken {
                    file: path.clone(),
                    line: line_no,
                    seq: None,
                    reason: "the last line is cut short (truncated)".into(),
                }
                .into());
            };
            let (line, tail) = rest.split_at(end);
            walk.record(path, line_no, line)?;
            rest = tail.get(1..).unwrap_or_default();
            last_place = (path.clone(), line_no);
        }
    }
    if !walk.last_sealed {
        return Err(Broken {
            file: last_place.0,
            line: last_place.1,
            seq: Some(walk.report.last_seq),
            reason: "no seal follows the last records: the log was cut short".into(),
        }
        .into());
    }
    if let Some((file, seq, prev)) = walk.start
        && !walk.pruned.iter().any(|(s, h)| s + 1 == seq && *h == prev)
    {
        return Err(Broken {
            file,
            line: 1,
            seq: Some(seq),
            reason: "the log starts here, but no pruned record accounts for the records before it: older files were removed".into(),
        }
        .into());
    }
    Ok(walk.report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::files::list_files;
    use crate::audit::record::{CallRecord, Decision, Mode, OutcomeRecord};
    use crate::audit::writer::write_groups;
    use crate::audit::{AuditConfig, AuditKey, OnFull};

    fn call(id: u64) -> Event {
        Event::Call(CallRecord {
            call_id: id,
            mode: Mode::Call,
            tenant: "acme".into(),
            user: "u-1".into(),
            agent: "agent".into(),
            tool: "github_get_issue".into(),
            instance: Some("ghes".into()),
            repo: Some("acme/widgets".into()),
            args_sha256: record::sha256_hex(b"{}"),
            trace_id: None,
            decision: Decision::Allow,
            reason: None,
        })
    }

    fn outcome(id: u64) -> Event {
        Event::Outcome(OutcomeRecord {
            call_id: id,
            call_seq: 1,
            result: "ok".into(),
        })
    }

    /// A log of four segments (call + outcome, each sealed) in one file.
    fn clean(config: AuditConfig) -> (tempfile::TempDir, AuditKey) {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::generate().unwrap();
        let groups = (1..=4).map(|i| vec![call(i), outcome(i)]).collect();
        write_groups(dir.path(), &key, config, groups);
        (dir, key)
    }

    fn small_files() -> AuditConfig {
        AuditConfig {
            max_file_bytes: 1500,
            max_total_bytes: 1 << 20,
            on_full: OnFull::Refuse,
        }
    }

    fn only_file(dir: &Path) -> PathBuf {
        dir.join(file_name(1))
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        std::fs::write(
            path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
    }

    /// Verifies, expecting a break at `line` whose reason contains `part`.
    fn broken_at(dir: &Path, key: &AuditKey, line: usize, part: &str) {
        match verify(dir, &key.public()) {
            Err(VerifyError::Broken(b)) => {
                assert_eq!(b.line, line, "{b}");
                assert!(b.reason.contains(part), "{b}");
            }
            other => panic!("expected a break at line {line}, got {other:?}"),
        }
    }

    #[test]
    fn a_clean_log_verifies() {
        let (dir, key) = clean(AuditConfig::default());
        let r = verify(dir.path(), &key.public()).unwrap();
        assert_eq!((r.files, r.records, r.seals, r.first_seq), (1, 12, 4, 1));
    }

    #[test]
    fn an_edited_record_is_named() {
        let (dir, key) = clean(AuditConfig::default());
        let path = only_file(dir.path());
        let mut l = lines(&path);
        l[3] = l[3].replace("acme/widgets", "acme/gadgets");
        write_lines(&path, &l);
        broken_at(dir.path(), &key, 4, "edited");
    }

    #[test]
    fn an_edited_and_rehashed_record_breaks_the_link_after_it() {
        let (dir, key) = clean(AuditConfig::default());
        let path = only_file(dir.path());
        let mut l = lines(&path);
        let r = record::decode(l[3].as_bytes()).unwrap();
        let mut event = r.event.clone();
        if let Event::Call(c) = &mut event {
            c.user = "u-mallory".into();
        }
        let (line, _) = record::encode(r.seq, &r.ts, &r.prev, &event);
        l[3] = String::from_utf8(line).unwrap().trim_end().to_owned();
        write_lines(&path, &l);
        broken_at(dir.path(), &key, 5, "does not chain");
    }

    #[test]
    fn a_removed_record_is_named() {
        let (dir, key) = clean(AuditConfig::default());
        let path = only_file(dir.path());
        let mut l = lines(&path);
        l.remove(4);
        write_lines(&path, &l);
        broken_at(dir.path(), &key, 5, "removed");
    }

    #[test]
    fn reordered_records_are_named() {
        let (dir, key) = clean(AuditConfig::default());
        let path = only_file(dir.path());
        let mut l = lines(&path);
        l.swap(3, 4);
        write_lines(&path, &l);
        broken_at(dir.path(), &key, 4, "reordered");
    }

    #[test]
    fn a_truncated_log_is_named() {
        let (dir, key) = clean(AuditConfig::default());
        let path = only_file(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 20]).unwrap();
        broken_at(dir.path(), &key, 12, "cut short");
        let mut l = lines(&path);
        l.truncate(10);
        write_lines(&path, &l);
        broken_at(dir.path(), &key, 10, "no seal follows");
    }

    #[test]
    fn a_log_re_signed_with_another_key_is_named() {
        let (dir, _) = clean(AuditConfig::default());
        let ours = AuditKey::generate().unwrap();
        broken_at(dir.path(), &ours, 3, "another key");
    }

    #[test]
    fn a_forged_signature_is_named() {
        let (dir, key) = clean(AuditConfig::default());
        let path = only_file(dir.path());
        let mut l = lines(&path);
        let r = record::decode(l[2].as_bytes()).unwrap();
        let Event::Seal(mut seal) = r.event.clone() else {
            panic!("line 3 is a seal")
        };
        seal.sig = AuditKey::generate()
            .unwrap()
            .seal(seal.head_seq, &seal.head);
        let (line, _) = record::encode(r.seq, &r.ts, &r.prev, &Event::Seal(seal));
        l[2] = String::from_utf8(line).unwrap().trim_end().to_owned();
        write_lines(&path, &l);
        broken_at(dir.path(), &key, 3, "does not verify");
    }

    #[test]
    fn the_chain_continues_across_files_and_a_replaced_or_removed_file_is_named() {
        let (dir, key) = clean(small_files());
        let files = list_files(dir.path()).unwrap();
        assert!(files.len() >= 3, "{files:?}");
        let r = verify(dir.path(), &key.public()).unwrap();
        assert_eq!((r.files, r.records), (files.len(), 12));

        // The second file replaced by another log's second file (same key even).
        let (other, _) = clean(small_files());
        let second = &files[1].1;
        let saved = std::fs::read(second).unwrap();
        std::fs::copy(other.path().join(file_name(2)), second).unwrap();
        broken_at(dir.path(), &key, 1, "does not chain");
        std::fs::write(second, saved).unwrap();

        std::fs::remove_file(second).unwrap();
        broken_at(dir.path(), &key, 1, "missing");
    }

    #[test]
    fn removing_the_oldest_file_by_hand_is_named_but_pruning_at_the_bound_is_not() {
        let (dir, key) = clean(small_files());
        std::fs::remove_file(dir.path().join(file_name(1))).unwrap();
        broken_at(dir.path(), &key, 1, "older files were removed");

        let pruning = AuditConfig {
            max_file_bytes: 1500,
            max_total_bytes: 4000,
            on_full: OnFull::Rotate,
        };
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::generate().unwrap();
        let groups = (1..=8).map(|i| vec![call(i), outcome(i)]).collect();
        write_groups(dir.path(), &key, pruning, groups);
        let used: u64 = list_files(dir.path())
            .unwrap()
            .iter()
            .map(|(_, p)| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(used <= 4000, "{used}");
        assert!(!only_file(dir.path()).exists());
        let r = verify(dir.path(), &key.public()).unwrap();
        assert!(r.first_seq > 1, "{r:?}");
    }
}
