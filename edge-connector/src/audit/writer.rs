//! Writing the log: one thread appends, by group commit.
//!
//! Callers queue records; the writer takes everything queued while its last write was in
//! flight, encodes it as one chain segment, ends the segment with a `seal` (the signature
//! of the new head), appends it with one `write` and makes it durable with one `fdatasync`,
//! then answers every caller. A caller that needs its record on disk before it goes on
//! (a call's record, before the tool's first upstream request) waits for that answer.
//! The receipts of the calls whose records are in the segment are signed once, together,
//! after it is durable ([`shared::receipt`]).
//!
//! - Records nobody waits for (an outcome, an upstream request) are held back up to
//!   2 ms for one somebody waits for, so a call costs one segment, not two.
//! - Rotation: a segment that would take the current file past `max_file_bytes` goes to
//!   a new file; the chain simply continues (the new file's first `prev` is the old file's
//!   last hash).
//! - Bound: past 90% of `max_total_bytes` a warning is logged once; a segment that would
//!   exceed it is refused ([`AuditError::Full`]) or, with `on_full = "rotate"`, the oldest
//!   files are removed first and a `pruned` record names each one.
//! - A failed write is cut back off the file (`ftruncate` to the old length) and every
//!   caller of the segment gets the error: the chain on disk stays whole.
//! - kill -9: at open, a torn last line (a write cut short) is cut off, the last record's
//!   hash is checked, and an unsealed tail is sealed before any new record.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::files::{LOCK_FILE, file_name, list_files, read_tail};
use super::record::{self, Event, GENESIS, PrunedRecord, SealRecord};
use super::{AuditConfig, AuditError, AuditKey, OnFull, PublicKey};
use shared::{receipt, wire};

/// Most queued submissions written as one segment.
const MAX_GROUP: usize = 512;

/// Longest a record nobody waits for is held back for one somebody waits for. A kill -9
/// in that moment loses it, as it loses records still queued: the call's own record was
/// durable before the tool ran, and verification and reconciliation name the missing
/// outcome.
const LINGER: Duration = Duration::from_millis(2);

/// Moves what is queued on `rx` into `jobs`, up to [`MAX_GROUP`].
fn take_queued(rx: &mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
}

/// Now, RFC 3339 UTC.
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Where the chain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    seq: u64,
    hash: String,
}

/// One queued submission.
struct Job {
    events: Vec<Event>,
    /// The call whose receipt names the job's last record, if any.
    receipt: Option<ReceiptFor>,
    done: Option<oneshot::Sender<Result<Written, AuditError>>>,
}

/// The call a receipt is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptFor {
    /// The call's tenant.
    pub tenant: String,
    /// The runtime's call id.
    pub call_id: u64,
}

/// Where a submission's records went in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The sequence number of its first record.
    pub first: u64,
    /// The sequence number of its last record.
    pub last: u64,
    /// The hash of its last record.
    pub last_hash: String,
    /// The signed receipt for its last record, when one was asked for.
    pub receipt: Option<wire::CallReceipt>,
}

/// A log file and its size.
#[derive(Debug, Clone)]
struct FileInfo {
    number: u32,
    path: PathBuf,
    len: u64,
}

/// Called with each segment's lines (NDJSON, a newline after each) once they are durable:
/// how records reach a forwarder. It must not block.
pub type Tap = Box<dyn Fn(&[u8]) + Send>;

/// The handle callers queue records on.
#[derive(Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    dir: PathBuf,
    public: PublicKey,
}

impl AuditLog {
    /// Opens (or starts) the log in `dir`, signing with `key`, and starts its writer thread.
    pub fn open(dir: &Path, key: AuditKey, config: AuditConfig) -> Result<Self, AuditError> {
        Self::open_with_tap(dir, key, config, None)
    }

    /// Like [`AuditLog::open`], handing every segment written from now on to `tap`.
    pub fn open_with_tap(
        dir: &Path,
        key: AuditKey,
        config: AuditConfig,
        tap: Option<Tap>,
    ) -> Result<Self, AuditError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| AuditError::io(dir, e))?;
        let public = key.public();
        let mut writer = Writer::recover(dir, key, config)?;
        if !writer.sealed {
            // A crash left records after the last seal: sign them before anything new.
            writer.commit(&[])?;
        }
        writer.tap = tap;
        info!(dir = %dir.display(), next_seq = writer.head.seq + 1, key = %writer.fingerprint, "audit log open");
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::io(dir, e))?;
        Ok(Self {
            tx,
            dir: dir.to_owned(),
            public,
        })
    }

    /// The public half of the key the log is signed with.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The log's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `events` and returns once they are on disk and sealed: where they went.
    pub async fn write(&self, events: Vec<Event>) -> Result<Written, AuditError> {
        self.submit(events, None).await
    }

    /// Like [`AuditLog::write`], with the signed receipt of the last event (the record of
    /// `receipt`'s call) in the answer.
    pub async fn write_with_receipt(
        &self,
        events: Vec<Event>,
        receipt: ReceiptFor,
    ) -> Result<Written, AuditError> {
        self.submit(events, Some(receipt)).await
    }

    async fn submit(
        &self,
        events: Vec<Event>,
        receipt: Option<ReceiptFor>,
    ) -> Result<Written, AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                events,
                receipt,
                done: Some(done),
            })
            .map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)?
    }

    /// Queues `event` without waiting (an upstream request's record: the call's own record
    /// is already on disk, and its outcome's wait covers this one, written before it).
    pub fn queue(&self, event: Event) {
        if self
            .tx
            .send(Job {
                events: vec![event],
                receipt: None,
                done: None,
            })
            .is_err()
        {
            error!("the audit log writer has stopped: a record was lost");
        }
    }
}

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    config: AuditConfig,
    key: AuditKey,
    fingerprint: String,
    files: VecDeque<FileInfo>,
    /// Held exclusively while the files change (see [`super::files::snapshot`]).
    lock: File,
    current: File,
    head: Head,
    sealed: bool,
    warned: bool,
    tap: Option<Tap>,
}

impl Writer {
    /// Finds the chain's end on disk, cutting off a torn last line.
    fn recover(dir: &Path, key: AuditKey, config: AuditConfig) -> Result<Self, AuditError> {
        let mut files = VecDeque::new();
        for (number, path) in list_files(dir)? {
            let len = std::fs::symlink_metadata(&path)
                .map_err(|e| AuditError::io(&path, e))?
                .len();
            files.push_back(FileInfo { number, path, len });
        }
        let mut head = Head {
            seq: 0,
            hash: GENESIS.to_owned(),
        };
        let mut sealed = true;
        let mut newest = true;
        for file in files.iter_mut().rev() {
            let tail = read_tail(&file.path)?;
            let whole = tail.whole;
            if newest && whole < file.len {
                warn!(file = %file.path.display(), "audit log: cutting off a torn last line (the connector stopped mid-write)");
                let f = OpenOptions::new()
                    .write(true)
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .open(&file.path)
                    .map_err(|e| AuditError::io(&file.path, e))?;
                f.set_len(whole)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| AuditError::io(&file.path, e))?;
                file.len = whole;
            }
            newest = false;
            let Some(line) = tail.last_line else {
                continue;
            };
            let last = record::decode(&line).map_err(|e| AuditError::Tail {
                path: file.path.clone(),
                reason: e.to_string(),
            })?;
            sealed = matches!(last.event, Event::Seal(_));
            head = Head {
                seq: last.seq,
                hash: last.hash,
            };
            break;
        }
        if files.is_empty() {
            let path = dir.join(file_name(1));
            files.push_back(FileInfo {
                number: 1,
                path,
                len: 0,
            });
        }
        let current = match files.back() {
            Some(f) => open_append(&f.path)?,
            None => return Err(AuditError::io(dir, "no log file")),
        };
        let fingerprint = key.public().fingerprint();
        let lock_path = dir.join(LOCK_FILE);
        let lock = shared::fs::open_lock(&lock_path, 0o600, None)
            .map_err(|e| AuditError::io(&lock_path, e))?;
        Ok(Self {
            lock,
            dir: dir.to_owned(),
            config,
            key,
            fingerprint,
            files,
            current,
            head,
            sealed,
            warned: false,
            tap: None,
        })
    }

    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            take_queued(&rx, &mut jobs);
            // Records nobody waits for (outcomes, upstream requests) wait a moment for a
            // record someone does wait for, and go with it: one write, one seal and one
            // sync for both, instead of a segment each.
            let until = Instant::now() + LINGER;
            while jobs.len() < MAX_GROUP && jobs.iter().all(|j| j.done.is_none()) {
                match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(j) => {
                        jobs.push(j);
                        take_queued(&rx, &mut jobs);
                    }
                    // Time's up, or the log is closing: write what there is.
                    Err(_) => break,
                }
            }
            match self.commit(&jobs) {
                Ok(mut firsts) => {
                    self.sign_receipts(&jobs, &mut firsts);
                    for (job, first) in jobs.into_iter().zip(firsts) {
                        if let Some(done) = job.done {
                            let _ = done.send(Ok(first));
                        }
                    }
                }
                Err(e) => {
                    error!(error = %e, "audit log: records could not be written");
                    for job in jobs {
                        if let Some(done) = job.done {
                            let _ = done.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }

    /// Encodes `prefix` then every job's events after the head, then a seal. Returns the
    /// bytes, the new head and where each job's records go.
    fn encode(&self, prefix: &[Event], jobs: &[Job]) -> (Vec<u8>, Head, Vec<Written>) {
        let ts = now();
        let mut buf = Vec::new();
        let mut head = self.head.clone();
        let mut push = |event: &Event, head: &mut Head| {
            let (line, hash) = record::encode(head.seq + 1, &ts, &head.hash, event);
            buf.extend_from_slice(&line);
            *head = Head {
                seq: head.seq + 1,
                hash,
            };
        };
        for e in prefix {
            push(e, &mut head);
        }
        let mut firsts = Vec::with_capacity(jobs.len());
        for job in jobs {
            let first = head.seq + 1;
            for e in &job.events {
                push(e, &mut head);
            }
            firsts.push(Written {
                first,
                last: head.seq,
                last_hash: head.hash.clone(),
                receipt: None,
            });
        }
        let seal = Event::Seal(SealRecord {
            head_seq: head.seq,
            head: head.hash.clone(),
            key: self.fingerprint.clone(),
            sig: self.key.seal(head.seq, &head.hash),
        });
        push(&seal, &mut head);
        (buf, head, firsts)
    }

    /// Signs the receipts `jobs` asked for, all with one signature when there are several.
    fn sign_receipts(&self, jobs: &[Job], written: &mut [Written]) {
        let asked: Vec<(usize, Vec<u8>)> = jobs
            .iter()
            .zip(written.iter())
            .enumerate()
            .filter_map(|(i, (job, w))| {
                let r = job.receipt.as_ref()?;
                Some((
                    i,
                    receipt::message(&r.tenant, r.call_id, w.last, &w.last_hash),
                ))
            })
            .collect();
        let receipt_of = |w: &Written, signature: String, path, index, count| wire::CallReceipt {
            seq: w.last,
            record_hash: w.last_hash.clone(),
            signature,
            path,
            index,
            count,
        };
        match asked.as_slice() {
            [] => {}
            [(i, message)] => {
                if let Some(w) = written.get_mut(*i) {
                    w.receipt = Some(receipt_of(w, self.key.sign_receipt(message), vec![], 0, 1));
                }
            }
            many => {
                let leaves = many.iter().map(|(_, m)| receipt::leaf_hash(m)).collect();
                let (Some(tree), Ok(count)) =
                    (receipt::Tree::new(leaves), u32::try_from(many.len()))
                else {
                    return;
                };
                let signature = self
                    .key
                    .sign_receipt(&receipt::batch_message(count, &tree.root()));
                for (index, (i, _)) in (0u32..).zip(many) {
                    let path = tree
                        .path(index as usize)
                        .into_iter()
                        .map(|h| h.to_vec())
                        .collect();
                    if let Some(w) = written.get_mut(*i) {
                        w.receipt = Some(receipt_of(w, signature.clone(), path, index, count));
                    }
                }
            }
        }
    }

    fn used(&self) -> u64 {
        self.files.iter().map(|f| f.len).sum()
    }

    /// Writes one segment under the lock; each job's first sequence number, or the error
    /// for all.
    fn commit(&mut self, jobs: &[Job]) -> Result<Vec<Written>, AuditError> {
        self.lock.lock().map_err(|e| AuditError::io(&self.dir, e))?;
        let result = self.commit_locked(jobs);
        let _ = self.lock.unlock();
        result
    }

    fn commit_locked(&mut self, jobs: &[Job]) -> Result<Vec<Written>, AuditError> {
        let (mut buf, mut head, mut firsts) = self.encode(&[], jobs);
        // A new file first, so that at the bound every older file may go.
        self.rotate_if_needed(buf.len())?;
        let over = |w: &Self, n: usize| w.used() + n as u64 > w.config.max_total_bytes;
        if over(self, buf.len()) {
            if self.config.on_full == OnFull::Refuse {
                return Err(AuditError::Full {
                    dir: self.dir.clone(),
                    used: self.used(),
                    max: self.config.max_total_bytes,
                });
            }
            let pruned = self.prune(buf.len())?;
            (buf, head, firsts) = self.encode(&pruned, jobs);
        }
        let Some(file) = self.files.back_mut() else {
            return Err(AuditError::io(&self.dir, "no log file"));
        };
        let written = self
            .current
            .write_all(&buf)
            .and_then(|()| self.current.sync_data());
        if let Err(e) = written {
            // Leave no partial segment behind: the chain on disk stays whole.
            let _ = self
                .current
                .set_len(file.len)
                .and_then(|()| self.current.sync_data());
            return Err(AuditError::io(&file.path, e));
        }
        file.len += buf.len() as u64;
        if let Some(tap) = &self.tap {
            tap(&buf);
        }
        self.head = head;
        self.sealed = true;
        let used = self.used();
        if !self.warned && used.saturating_mul(10) >= self.config.max_total_bytes.saturating_mul(9)
        {
            self.warned = true;
            warn!(dir = %self.dir.display(), used, max = self.config.max_total_bytes, on_full = ?self.config.on_full,
                "the audit log passed 90% of [audit] max_total_bytes: archive old files or raise the bound");
        }
        Ok(firsts)
    }

    /// Starts a new file when `len` more bytes would take the current one past the limit.
    fn rotate_if_needed(&mut self, len: usize) -> Result<(), AuditError> {
        let Some(last) = self.files.back() else {
            return Err(AuditError::io(&self.dir, "no log file"));
        };
        if last.len == 0 || last.len + len as u64 <= self.config.max_file_bytes {
            return Ok(());
        }
        let number = last.number + 1;
        let path = self.dir.join(file_name(number));
        self.current = open_append(&path)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| AuditError::io(&self.dir, e))?;
        self.files.push_back(FileInfo {
            number,
            path,
            len: 0,
        });
        Ok(())
    }

    /// Removes the oldest files (never the current one) until `len` more bytes fit;
    /// returns a `pruned` record for each.
    fn prune(&mut self, len: usize) -> Result<Vec<Event>, AuditError> {
        let mut pruned = Vec::new();
        // Room for the pruned records themselves.
        let need = |w: &Self, n: usize| w.used() + (len + 512 * (n + 1)) as u64;
        while need(self, pruned.len()) > self.config.max_total_bytes && self.files.len() > 1 {
            let Some(oldest) = self.files.front().cloned() else {
                break;
            };
            // Only the end of the file: it may be max_file_bytes long.
            if let Some(line) = read_tail(&oldest.path)?.last_line {
                let last = record::decode(&line).map_err(|e| AuditError::Tail {
                    path: oldest.path.clone(),
                    reason: e.to_string(),
                })?;
                pruned.push(Event::Pruned(PrunedRecord {
                    file: file_name(oldest.number),
                    last_seq: last.seq,
                    last_hash: last.hash,
                }));
            }
            std::fs::remove_file(&oldest.path).map_err(|e| AuditError::io(&oldest.path, e))?;
            warn!(file = %oldest.path.display(), "audit log at its bound: removed the oldest file (on_full = \"rotate\")");
            self.files.pop_front();
        }
        if need(self, pruned.len()) > self.config.max_total_bytes {
            return Err(AuditError::Full {
                dir: self.dir.clone(),
                used: self.used(),
                max: self.config.max_total_bytes,
            });
        }
        Ok(pruned)
    }
}

/// Opens a log file for appending (created 0600), never through a link.
fn open_append(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| AuditError::io(path, e))
}

/// Writes `groups` to the log in `dir` as the writer thread would, one segment each (for
/// tests of verification and recovery).
#[cfg(test)]
pub(crate) fn write_groups(
    dir: &Path,
    key: &AuditKey,
    config: AuditConfig,
    groups: Vec<Vec<Event>>,
) {
    std::fs::create_dir_all(dir).unwrap();
    let mut w = Writer::recover(dir, key.try_clone().unwrap(), config).unwrap();
    if !w.sealed {
        w.commit(&[]).unwrap();
    }
    for events in groups {
        w.commit(&[Job {
            events,
            receipt: None,
            done: None,
        }])
        .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::OutcomeRecord;
    use crate::audit::verify::verify;

    fn outcome(id: u64) -> Event {
        Event::Outcome(OutcomeRecord {
            call_id: id,
            call_seq: id,
            result: "ok".into(),
        })
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_the_chain_continues_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::generate().unwrap();
        write_groups(
            dir.path(),
            &key,
            AuditConfig::default(),
            vec![vec![outcome(1), outcome(2)]],
        );
        let file = dir.path().join(file_name(1));
        let whole = std::fs::read(&file).unwrap();
        // A crash mid-segment: one whole record after the seal, then half of another.
        let (extra, _) = record::encode(
            4,
            "2026-12-06T00:00:00Z",
            &record::decode(&read_tail(&file).unwrap().last_line.unwrap())
                .unwrap()
                .hash,
            &outcome(3),
        );
        let mut torn = whole.clone();
        torn.extend_from_slice(&extra);
        torn.extend_from_slice(&extra[..extra.len() / 2]);
        std::fs::write(&file, &torn).unwrap();
        assert!(verify(dir.path(), &key.public()).is_err());

        write_groups(
            dir.path(),
            &key,
            AuditConfig::default(),
            vec![vec![outcome(4)]],
        );
        let r = verify(dir.path(), &key.public()).unwrap();
        // 2 + seal, the whole extra record, its seal at restart, then 1 + seal.
        assert_eq!((r.records, r.seals), (7, 3));
    }

    #[test]
    fn a_changed_last_record_stops_the_writer_from_extending_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::generate().unwrap();
        write_groups(
            dir.path(),
            &key,
            AuditConfig::default(),
            vec![vec![outcome(1)]],
        );
        let file = dir.path().join(file_name(1));
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("\"head_seq\":1", "\"head_seq\":9");
        std::fs::write(&file, text).unwrap();
        let e = Writer::recover(dir.path(), key, AuditConfig::default())
            .err()
            .unwrap();
        assert!(matches!(e, AuditError::Tail { .. }), "{e}");
    }

    /// An outcome queued just before the next call's record goes in that record's segment
    /// (one seal for both); one queued with nothing after it is written on its own soon.
    #[tokio::test]
    async fn queued_records_ride_with_the_next_awaited_one() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::generate().unwrap();
        let public = key.public();
        let writer = Writer::recover(dir.path(), key, AuditConfig::default()).unwrap();
        let (tx, rx) = mpsc::channel();
        let log = AuditLog {
            tx,
            dir: dir.path().to_owned(),
            public: public.clone(),
        };
        // Both queued before the writer starts, so the test does not race it.
        log.queue(outcome(1));
        let (done, wait) = oneshot::channel();
        log.tx
            .send(Job {
                events: vec![outcome(2)],
                receipt: None,
                done: Some(done),
            })
            .unwrap();
        std::thread::spawn(move || writer.run(rx));
        let written = wait.await.unwrap().unwrap();
        assert_eq!((written.first, written.last), (2, 2));
        let r = verify(dir.path(), &public).unwrap();
        assert_eq!((r.records, r.seals), (3, 1), "both records under one seal");

        log.queue(outcome(3));
        let deadline = Instant::now() + Duration::from_secs(5);
        while verify(dir.path(), &public).unwrap().records < 5 {
            assert!(Instant::now() < deadline, "a lone queued record is written");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(verify(dir.path(), &public).unwrap().seals, 2);
    }

    /// The receipts of one segment share one signature, each verifying by its own path;
    /// a receipt written alone signs its message, as before batches existed.
    #[test]
    fn receipts_of_a_segment_are_signed_once_and_each_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::generate().unwrap();
        let public = key.public();
        let mut w = Writer::recover(dir.path(), key, AuditConfig::default()).unwrap();
        let job = |call_id: u64, receipt: bool| Job {
            events: vec![outcome(call_id)],
            receipt: receipt.then(|| ReceiptFor {
                tenant: "acme".into(),
                call_id,
            }),
            done: None,
        };
        let check = |jobs: &[Job], written: &[Written]| {
            for (job, w) in jobs.iter().zip(written) {
                let (Some(asked), Some(r)) = (&job.receipt, &w.receipt) else {
                    assert!(job.receipt.is_none() && w.receipt.is_none());
                    continue;
                };
                assert_eq!((r.seq, &r.record_hash), (w.last, &w.last_hash));
                let message = receipt::message(&asked.tenant, asked.call_id, r.seq, &r.record_hash);
                let path = receipt::path_from_bytes(&r.path).unwrap();
                let signed = receipt::signed_bytes(&message, r.index, r.count, &path).unwrap();
                assert!(public.verifies_message(&signed, &r.signature));
            }
        };
        let jobs = vec![job(1, true), job(2, false), job(3, true), job(4, true)];
        let mut written = w.commit(&jobs).unwrap();
        w.sign_receipts(&jobs, &mut written);
        check(&jobs, &written);
        let sigs: std::collections::HashSet<_> = written
            .iter()
            .filter_map(|w| w.receipt.as_ref().map(|r| r.signature.clone()))
            .collect();
        assert_eq!(sigs.len(), 1);
        assert_eq!(written[3].receipt.as_ref().unwrap().count, 3);

        let alone = vec![job(5, true)];
        let mut written = w.commit(&alone).unwrap();
        w.sign_receipts(&alone, &mut written);
        check(&alone, &written);
        assert!(written[0].receipt.as_ref().unwrap().path.is_empty());
    }

    #[test]
    fn at_the_bound_a_refusing_log_writes_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::generate().unwrap();
        let config = AuditConfig {
            max_file_bytes: 1000,
            max_total_bytes: 1200,
            on_full: OnFull::Refuse,
        };
        let mut w = Writer::recover(dir.path(), key, config).unwrap();
        w.commit(&[Job {
            events: vec![outcome(1)],
            receipt: None,
            done: None,
        }])
        .unwrap();
        let before = std::fs::read(dir.path().join(file_name(1))).unwrap();
        let big: Vec<Event> = (0..10).map(outcome).collect();
        let e = w
            .commit(&[Job {
                events: big,
                receipt: None,
                done: None,
            }])
            .unwrap_err();
        assert!(matches!(e, AuditError::Full { .. }), "{e}");
        assert!(e.to_string().contains("on_full"), "{e}");
        assert_eq!(
            std::fs::read(dir.path().join(file_name(1))).unwrap(),
            before
        );
    }
}
