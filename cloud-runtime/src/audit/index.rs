//! Keeps the audit trail's search index ([`crate::store::audit_index`]) following the
//! chains: a task that reads what was appended since it last looked (the data directory's
//! file from where it stopped reading, or each replica's chain in the database after the
//! highest sequence number indexed) and adds it, a batch per transaction.
//!
//! The chains stay the record of truth and are never read from the index: a record the
//! index lacks (it lags by up to [`INTERVAL`], or the store was away) is still in its
//! chain, and the next pass adds it; a runtime that starts on a store without an index
//! (after `migrate-store`) rebuilds it from the chains.

use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::chain::{self, LineError};
use crate::store::audit_index::IndexRow;
use crate::store::{Store, StoreError};

/// How often the index looks for new records: the most a search lags behind the chain.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// Records per transaction.
const BATCH: u32 = 1000;
/// The most of the file read in one go.
const READ_CHUNK: u64 = 4 << 20;
/// The longest record line read whole (far above the 4 MiB request limit).
const MAX_LINE: u64 = 64 << 20;
/// The chain name of the data directory's file.
pub const LOCAL_CHAIN: &str = "local";

/// Where the chains are.
#[derive(Debug, Clone)]
pub enum Chains {
    /// The data directory's file (one process on SQLite).
    File(PathBuf),
    /// Every replica's chain in the database (replicas on PostgreSQL).
    Store,
}

/// Why a pass stopped; the next one tries again.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file could not be read.
    #[error("reading the audit log: {0}")]
    Read(#[from] std::io::Error),
}

/// The index row of a chained `line` of `chain`.
pub fn row(chain: &str, line: &[u8]) -> Result<IndexRow, LineError> {
    let parsed = chain::parse_line(line)?;
    let r = parsed.record;
    let at_ms =
        time::OffsetDateTime::parse(&r.time, &time::format_description::well_known::Rfc3339)
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
            .map_err(|e| LineError::Unreadable(format!("its time {:?}: {e}", r.time)))?;
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok().and_then(|v| v.as_str().map(str::to_owned))
    };
    Ok(IndexRow {
        chain: chain.to_owned(),
        seq: parsed.seq,
        tenant: r.tenant,
        at_ms,
        kind: name(serde_json::to_value(r.kind)).unwrap_or_default(),
        user: r.user,
        agent: r.agent,
        tool: r.tool,
        connector: r.connector,
        decision: r.decision.and_then(|d| name(serde_json::to_value(d))),
        layer: r.layer.map(|l| l.as_str().to_owned()),
        outcome: r.outcome,
        trace_id: r.trace_id,
        line: String::from_utf8_lossy(line).into_owned(),
    })
}

/// Indexes what `chains` hold and the index lacks (the command line, before it searches
/// a store no runtime may be following); returns how many records.
pub async fn catch_up(store: Store, chains: Chains) -> Result<usize, IndexError> {
    Follower::new(store, chains).pass().await
}

/// Follows `chains` into `store`'s index until `shutdown`.
pub async fn follow(store: Store, chains: Chains, shutdown: CancellationToken) {
    let mut follower = Follower::new(store, chains);
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match follower.pass().await {
            Ok(n) => {
                if n > 0 {
                    debug!(records = n, "audit records indexed");
                }
                if std::mem::replace(&mut follower.failing, false) {
                    warn!("the audit index follows its chains again");
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut follower.failing, true) {
                    warn!(error = %e, "the audit index cannot follow its chains; searches lag until it can");
                }
            }
        }
    }
}

struct Follower {
    store: Store,
    chains: Chains,
    /// How far the file has been read.
    file_offset: u64,
    /// The highest sequence number of the file's chain indexed (read once from the store).
    file_last: Option<u64>,
    failing: bool,
}

impl Follower {
    fn new(store: Store, chains: Chains) -> Self {
        Self {
            store,
            chains,
            file_offset: 0,
            file_last: None,
            failing: false,
        }
    }

    /// Indexes what the chains gained; returns how many records.
    async fn pass(&mut self) -> Result<usize, IndexError> {
        match self.chains.clone() {
            Chains::File(path) => self.file_pass(path).await,
            Chains::Store => self.store_pass().await,
        }
    }

    async fn file_pass(&mut self, path: PathBuf) -> Result<usize, IndexError> {
        let last = match self.file_last {
            Some(last) => last,
            None => self.store.audit_index_last(LOCAL_CHAIN).await?,
        };
        self.file_last = Some(last);
        let mut total = 0;
        loop {
            let offset = self.file_offset;
            let (chunk, len) = tokio::task::spawn_blocking({
                let path = path.clone();
                move || read_from(&path, offset)
            })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
            if len < offset {
                warn!(path = %path.display(), "the audit log is shorter than before; indexing it again from its start");
                self.file_offset = 0;
                continue;
            }
            // Only whole lines: the writer may be in the middle of one.
            let Some(end) = chunk.iter().rposition(|&b| b == b'\n') else {
                if chunk.len() as u64 >= READ_CHUNK + MAX_LINE {
                    // No record is this long; `audit verify` names what it is.
                    warn!(path = %path.display(), offset, "more than 64 MiB without a line end in the audit log; the index skips it");
                    self.file_offset = offset + chunk.len() as u64;
                    continue;
                }
                return Ok(total);
            };
            let mut rows = Vec::new();
            let mut last = self.file_last.unwrap_or(0);
            for line in chunk.get(..end).unwrap_or_default().split(|&b| b == b'\n') {
                if line.is_empty() {
                    continue;
                }
                match row(LOCAL_CHAIN, line) {
                    Ok(r) if r.seq <= last => {}
                    Ok(r) => {
                        last = r.seq;
                        rows.push(r);
                    }
                    // `audit verify` names it; the index goes on past it.
                    Err(e) => warn!(error = %e, "an audit record the index cannot read"),
                }
            }
            for batch in rows.chunks(BATCH as usize) {
                self.store.index_audit_rows(batch).await?;
            }
            total += rows.len();
            self.file_last = Some(last);
            self.file_offset = offset + end as u64 + 1;
            if self.file_offset >= len {
                return Ok(total);
            }
        }
    }

    async fn store_pass(&mut self) -> Result<usize, IndexError> {
        let mut total = 0;
        for replica in self.store.audit_chain_replicas().await? {
            let mut last = self.store.audit_index_last(&replica).await?;
            loop {
                let lines = self.store.audit_chain_after(&replica, last, BATCH).await?;
                let Some((seq, _)) = lines.last() else {
                    break;
                };
                last = *seq;
                let rows: Vec<IndexRow> = lines
                    .iter()
                    .filter_map(|(_, line)| {
                        row(&replica, line)
                            .map_err(|e| warn!(error = %e, replica = %replica, "an audit record the index cannot read"))
                            .ok()
                    })
                    .collect();
                self.store.index_audit_rows(&rows).await?;
                total += rows.len();
                if lines.len() < BATCH as usize {
                    break;
                }
            }
        }
        Ok(total)
    }
}

/// Up to [`READ_CHUNK`] bytes of `path` from `offset` (or, when its first line is longer,
/// that line, up to [`MAX_LINE`] more), and the file's length.
fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len <= offset {
        return Ok((Vec::new(), len));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut chunk = Vec::new();
    (&mut file).take(READ_CHUNK).read_to_end(&mut chunk)?;
    if chunk.len() as u64 == READ_CHUNK && !chunk.contains(&b'\n') {
        // One record longer than a chunk (arguments recorded by opt-in): read on to its end,
        // so the index never waits on it.
        std::io::BufReader::new(file.take(MAX_LINE)).read_until(b'\n', &mut chunk)?;
    }
    Ok((chunk, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;
    use crate::audit::record::{AuditRecord, Kind, Verdict};
    use crate::store::audit_index::AuditFilter;

    fn record(tenant: &str, user: &str, deny: bool) -> AuditRecord {
        let mut r = AuditRecord::event(Kind::Decision, tenant, "list_repositories");
        r.user = user.to_owned();
        r.agent = "triage".to_owned();
        r.decision = Some(if deny { Verdict::Deny } else { Verdict::Allow });
        r.layer = deny.then_some(crate::policy::Layer::User);
        r
    }

    #[tokio::test]
    async fn the_index_follows_the_file_and_catches_up_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::test_store(dir.path()).await;
        let path = dir.path().join("audit.log");
        let (log, writer) = AuditLog::open(&path, None).unwrap();
        for i in 0..5 {
            log.write(record("acme", &format!("u{i}"), i == 3))
                .await
                .unwrap();
        }
        log.write(record("globex", "g", true)).await.unwrap();
        let mut f = Follower::new(store.clone(), Chains::File(path.clone()));
        assert_eq!(f.pass().await.unwrap(), 6);
        assert_eq!(f.pass().await.unwrap(), 0);
        let filter = AuditFilter {
            tenant: "acme".into(),
            from_ms: 0,
            to_ms: i64::MAX,
            decision: Some("deny".into()),
            limit: 10,
            ..AuditFilter::default()
        };
        let found = store.search_audit(&filter).await.unwrap();
        assert_eq!(found.len(), 1);
        assert!(
            found[0].line.contains("\"user\":\"u3\""),
            "{}",
            found[0].line
        );
        assert_eq!(found[0].seq, 4);

        // A new follower (a restart) indexes only what it lacks.
        log.write(record("acme", "late", false)).await.unwrap();
        drop(log);
        writer.join();
        assert_eq!(
            catch_up(store.clone(), Chains::File(path)).await.unwrap(),
            1
        );
        assert_eq!(store.audit_index_count("acme").await.unwrap(), 6);
        assert_eq!(store.audit_index_count("globex").await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_record_longer_than_a_read_is_indexed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::test_store(dir.path()).await;
        let path = dir.path().join("audit.log");
        let (log, writer) = AuditLog::open(&path, None).unwrap();
        let mut long = record("acme", "long", false);
        long.reason = Some("x".repeat(READ_CHUNK as usize + 1000));
        log.write(long).await.unwrap();
        log.write(record("acme", "after", false)).await.unwrap();
        drop(log);
        writer.join();
        assert_eq!(
            catch_up(store.clone(), Chains::File(path)).await.unwrap(),
            2
        );
        assert_eq!(store.audit_index_count("acme").await.unwrap(), 2);
    }

    #[test]
    fn an_altered_line_is_not_indexed() {
        let mut head = chain::Head::default();
        let mut line = chain::append(&mut head, &record("acme", "u", false)).unwrap();
        line.pop();
        assert_eq!(row("local", &line).unwrap().user, "u");
        let text = String::from_utf8(line).unwrap().replace("\"u\"", "\"v\"");
        assert_eq!(row("local", text.as_bytes()), Err(LineError::Altered));
    }
}
