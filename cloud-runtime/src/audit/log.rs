//! The local audit log: an append-only file of hash-chained records ([`super::chain`]),
//! written by one thread.
//!
//! Callers hand records over a bounded channel; the writer takes whatever is queued, appends
//! it with a single `write(2)` on an `O_APPEND` file and only then answers. A process killed
//! at any moment therefore leaves whole records (the kernel finishes a write it started), and
//! a caller that waited for its decision record knows it is on disk before it acts. After a
//! power cut a torn last line is cut off at the next start.
//!
//! Every second (and at shutdown) the writer checkpoints the head, the last sequence number
//! and hash, to `audit.head`, so `audit verify` also notices records removed from the end.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use super::chain::{self, Head};
use super::record::AuditRecord;

/// Records that may wait for the writer before callers feel back-pressure.
pub(super) const QUEUE: usize = 8192;
/// Most records per write.
pub(super) const BATCH: usize = 512;
/// How often the head is checkpointed.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Why the audit trail cannot take a record. Callers refuse to act without one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log file could not be opened or read.
    #[error("audit log {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The writer stopped (shutdown, or a write failed: disk full, permissions).
    #[error("the audit trail is unavailable: {0}")]
    Unavailable(String),
}

/// Receives every record after it is on disk (the OpenTelemetry export).
pub trait RecordSink: Send {
    /// One record, with its sequence number.
    fn emit(&mut self, seq: u64, record: &AuditRecord);
}

pub(super) enum Entry {
    Record {
        // Boxed: a record is large beside a flush, and the queue holds thousands.
        record: Box<AuditRecord>,
        done: Option<oneshot::Sender<Result<(), String>>>,
    },
    /// Sync the file and checkpoint the head now (shutdown).
    Flush(oneshot::Sender<()>),
}

/// A handle on the audit log; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    pub(super) tx: mpsc::Sender<Entry>,
}

/// The writer thread; join it after the last handle is dropped.
#[derive(Debug)]
pub struct AuditWriter(std::thread::JoinHandle<()>);

impl AuditWriter {
    /// Waits for the writer to write what it has and checkpoint.
    pub fn join(self) {
        if self.0.join().is_err() {
            error!("audit writer panicked");
        }
    }
}

/// The path of the head checkpoint beside `log`.
pub fn head_path(log: &Path) -> PathBuf {
    log.with_extension("head")
}

/// Reads where the chain stands from the end of the file, cutting off a torn last line.
fn recover_head(file: &mut File, path: &Path) -> std::io::Result<Head> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Head::default());
    }
    // The last record is well under 64 KiB (arguments are hashes unless opted in).
    let window = len.min(1 << 20);
    file.seek(SeekFrom::Start(len - window))?;
    let mut tail = Vec::with_capacity(usize::try_from(window).unwrap_or(0));
    file.read_to_end(&mut tail)?;
    let complete = match tail.iter().rposition(|&b| b == b'\n') {
        Some(end) => end + 1,
        None => 0,
    };
    if complete < tail.len() {
        let keep = len - (tail.len() - complete) as u64;
        warn!(path = %path.display(), dropped_bytes = tail.len() - complete, "audit log ends in a torn record (power loss?); cutting it off");
        file.set_len(keep)?;
    }
    let body = tail.get(..complete).unwrap_or_default();
    let last = body
        .strip_suffix(b"\n")
        .unwrap_or(body)
        .rsplit(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    if last.is_empty() {
        return Ok(Head::default());
    }
    match chain::parse_line(last) {
        Ok(p) => Ok(Head {
            seq: p.seq,
            hash: p.hash,
        }),
        Err(e) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the last record does not verify ({e}); run `cloud-runtime audit verify`"),
        )),
    }
}

fn checkpoint(path: &Path, head: &Head) {
    let text = serde_json::to_vec(head).unwrap_or_default();
    if let Err(e) = certs::files::write_atomic(&head_path(path), &text, 0o600) {
        warn!(error = %e, "could not checkpoint the audit head");
    }
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log at `path` and starts its writer.
    pub fn open(
        path: &Path,
        mut sink: Option<Box<dyn RecordSink>>,
    ) -> Result<(Self, AuditWriter), AuditError> {
        let open_err = |source| AuditError::Open {
            path: path.to_owned(),
            source,
        };
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)
                .map_err(open_err)?
        };
        let mut head = recover_head(&mut file, path).map_err(open_err)?;
        let (tx, mut rx) = mpsc::channel::<Entry>(QUEUE);
        let path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                let mut buf = Vec::with_capacity(64 * 1024);
                let mut batch = Vec::with_capacity(BATCH);
                let mut checkpointed = head.clone();
                let mut last_checkpoint = Instant::now();
                let mut failed: Option<String> = None;
                let mut flushes = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    let mut next = Some(first);
                    while let Some(e) = next.take() {
                        match e {
                            Entry::Record { record, done } => batch.push((record, done)),
                            Entry::Flush(ack) => flushes.push(ack),
                        }
                        if batch.len() < BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    let result = match &failed {
                        _ if batch.is_empty() => Ok(()),
                        Some(e) => Err(e.clone()),
                        None => {
                            buf.clear();
                            let mut next = head.clone();
                            let mut encoded = Ok(());
                            for (record, _) in &batch {
                                match chain::append(&mut next, record) {
                                    Ok(line) => buf.extend_from_slice(&line),
                                    Err(err) => {
                                        encoded = Err(err.to_string());
                                        break;
                                    }
                                }
                            }
                            encoded.and_then(|()| {
                                file.write_all(&buf).map_err(|e| e.to_string())?;
                                let first_seq = head.seq + 1;
                                head = next;
                                if let Some(sink) = sink.as_mut() {
                                    for (i, (record, _)) in batch.iter().enumerate() {
                                        sink.emit(first_seq + i as u64, record);
                                    }
                                }
                                Ok(())
                            })
                        }
                    };
                    if let Err(e) = &result
                        && failed.is_none()
                    {
                        error!(error = %e, "audit log write failed; refusing further calls");
                        failed = Some(e.clone());
                    }
                    for (_, done) in batch.drain(..) {
                        if let Some(done) = done {
                            let _ = done.send(result.clone());
                        }
                    }
                    let flush = !flushes.is_empty();
                    if head != checkpointed
                        && (flush || last_checkpoint.elapsed() >= CHECKPOINT_EVERY)
                    {
                        if flush {
                            let _ = file.sync_all();
                        }
                        checkpoint(&path, &head);
                        checkpointed = head.clone();
                        last_checkpoint = Instant::now();
                    }
                    for ack in flushes.drain(..) {
                        let _ = ack.send(());
                    }
                }
                if head != checkpointed {
                    let _ = file.sync_all();
                    checkpoint(&path, &head);
                }
            })
            .map_err(|e| AuditError::Unavailable(e.to_string()))?;
        Ok((Self { tx }, AuditWriter(thread)))
    }

    /// Appends `record` and waits until it is written.
    pub async fn write(&self, record: AuditRecord) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Entry::Record {
                record: Box::new(record),
                done: Some(done),
            })
            .await
            .map_err(|_| AuditError::Unavailable("the writer has stopped".into()))?;
        wait.await
            .map_err(|_| AuditError::Unavailable("the writer has stopped".into()))?
            .map_err(AuditError::Unavailable)
    }

    /// Syncs the log to disk and checkpoints its head (before the process exits).
    pub async fn flush(&self) {
        let (ack, wait) = oneshot::channel();
        if self.tx.send(Entry::Flush(ack)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Appends `record` without waiting for the write (it is still written in order).
    pub async fn submit(&self, record: AuditRecord) {
        if self
            .tx
            .send(Entry::Record {
                record: Box::new(record),
                done: None,
            })
            .await
            .is_err()
        {
            warn!("audit writer stopped; record dropped");
        }
    }
}

/// Reads and verifies the log at `path` against its head checkpoint.
pub fn verify_file(path: &Path) -> Result<Result<Head, Vec<chain::Problem>>, AuditError> {
    let text = std::fs::read(path).map_err(|source| AuditError::Open {
        path: path.to_owned(),
        source,
    })?;
    let checkpoint: Option<Head> = std::fs::read(head_path(path))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    Ok(chain::verify_against(&text, checkpoint.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Kind;

    fn record(i: u64) -> AuditRecord {
        AuditRecord {
            time: "2026-12-02T00:00:00.000Z".into(),
            kind: Kind::Outcome,
            tenant: "acme".into(),
            gateway: None,
            user: "alice".into(),
            user_id: None,
            agent: "bot".into(),
            connector: None,
            tool: "diag.ping".into(),
            instance: None,
            target: None,
            decision: None,
            layer: None,
            reason: None,
            outcome: Some("ok".into()),
            duration_ms: Some(1.0),
            upstream: None,
            arguments: None,
            confirmation: None,
            call_id: i,
            trace_id: "0".repeat(32),
            span_id: "0".repeat(16),
            receipt: None,
        }
    }

    #[tokio::test]
    async fn records_survive_reopening_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        for round in 0..2 {
            let (log, writer) = AuditLog::open(&path, None).unwrap();
            for i in 0..10 {
                log.write(record(round * 10 + i)).await.unwrap();
            }
            log.submit(record(99)).await;
            drop(log);
            writer.join();
        }
        let head = verify_file(&path).unwrap().unwrap();
        assert_eq!(head.seq, 22);
        // A torn last line (power cut mid-write) is cut off at the next start.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":23,\"prev\":\"").unwrap();
        let (log, writer) = AuditLog::open(&path, None).unwrap();
        log.write(record(1)).await.unwrap();
        drop(log);
        writer.join();
        assert_eq!(verify_file(&path).unwrap().unwrap().seq, 23);
    }

    #[tokio::test]
    async fn records_removed_from_the_end_are_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (log, writer) = AuditLog::open(&path, None).unwrap();
        for i in 0..3 {
            log.write(record(i)).await.unwrap();
        }
        drop(log);
        writer.join();
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text.lines().take(2).collect();
        std::fs::write(&path, format!("{}\n", kept.join("\n"))).unwrap();
        let problems = verify_file(&path).unwrap().unwrap_err();
        assert!(
            problems[0].message.contains("removed from the end"),
            "{problems:?}"
        );
    }
}
