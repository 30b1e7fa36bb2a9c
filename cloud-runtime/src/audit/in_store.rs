//! The audit trail kept in the database, for replicas on PostgreSQL: the same hash-chained
//! records as the file ([`super::chain`]), one chain per replica, written by one task per
//! process in batches, each batch one transaction. A caller that waited for its record
//! knows it is committed before it acts, as with the file.
//!
//! A record goes in only as the next sequence number of its chain, so two processes that
//! share a replica id cannot fork it: the one that loses reads the chain's head again and
//! goes on from there. A batch that fails (the database is away) is answered with the
//! error, so its calls are refused, and the next batch tries again.

use tokio::sync::mpsc;
use tracing::{error, warn};

use super::chain::{self, Head};
use super::log::{AuditError, AuditLog, BATCH, Entry, QUEUE, RecordSink};
use super::record::AuditRecord;
use crate::store::Store;

/// Where a waiting caller hears how its record went.
type Done = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Where `replica`'s chain stands.
async fn head(store: &Store, replica: &str) -> Result<Head, String> {
    let Some(line) = store
        .audit_chain_last(replica)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(Head::default());
    };
    let p = chain::parse_line(&line).map_err(|e| {
        format!("the last record of chain {replica:?} does not verify ({e}); run `cloud-runtime audit verify`")
    })?;
    Ok(Head {
        seq: p.seq,
        hash: p.hash,
    })
}

/// A record's row: its sequence number and line.
type Row = (u64, Vec<u8>);

/// Encodes `records` after `head`; returns the rows and the head after them.
fn encode(
    head: &Head,
    records: &[(Box<AuditRecord>, Option<Done>)],
) -> Result<(Vec<Row>, Head), String> {
    let mut next = head.clone();
    let mut rows = Vec::with_capacity(records.len());
    for (record, _) in records {
        let mut line = chain::append(&mut next, record).map_err(|e| e.to_string())?;
        line.pop();
        rows.push((next.seq, line));
    }
    Ok((rows, next))
}

impl AuditLog {
    /// Starts the writer of `replica`'s chain in `store`.
    pub async fn open_in_store(
        store: Store,
        replica: String,
        mut sink: Option<Box<dyn RecordSink>>,
    ) -> Result<Self, AuditError> {
        let mut at = head(&store, &replica)
            .await
            .map_err(AuditError::Unavailable)?;
        let (tx, mut rx) = mpsc::channel::<Entry>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut flushes = Vec::new();
            while let Some(first) = rx.recv().await {
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
                let mut result = Ok(());
                if !batch.is_empty() {
                    for attempt in 0..2 {
                        result = match encode(&at, &batch) {
                            Err(e) => Err(e),
                            Ok((rows, after)) => {
                                match store
                                    .append_audit_lines(&replica, &rows, (after.seq, &after.hash))
                                    .await
                                {
                                    Ok(()) => {
                                        if let Some(sink) = sink.as_mut() {
                                            for ((seq, _), (record, _)) in rows.iter().zip(&batch) {
                                                sink.emit(*seq, record);
                                            }
                                        }
                                        at = after;
                                        Ok(())
                                    }
                                    Err(e) => Err(e.to_string()),
                                }
                            }
                        };
                        if result.is_ok() || attempt == 1 {
                            break;
                        }
                        // Another writer may have moved the chain on: start from its head.
                        match head(&store, &replica).await {
                            Ok(h) => at = h,
                            Err(e) => {
                                result = Err(e);
                                break;
                            }
                        }
                    }
                }
                if let Err(e) = &result {
                    error!(error = %e, records = batch.len(), "audit records not stored; refusing their calls");
                }
                for (_, done) in batch.drain(..) {
                    if let Some(done) = done {
                        let _ = done.send(result.clone());
                    }
                }
                for ack in flushes.drain(..) {
                    let _ = ack.send(());
                }
            }
            warn!("audit writer stopped");
        });
        Ok(Self { tx })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Kind;

    fn record(i: u64) -> AuditRecord {
        AuditRecord {
            time: "2026-12-07T00:00:00.000Z".into(),
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
    async fn two_writers_of_one_replica_take_turns_on_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::test_store(dir.path()).await;
        let a = AuditLog::open_in_store(store.clone(), "rt-1".into(), None)
            .await
            .unwrap();
        let b = AuditLog::open_in_store(store.clone(), "rt-1".into(), None)
            .await
            .unwrap();
        let other = AuditLog::open_in_store(store.clone(), "rt-2".into(), None)
            .await
            .unwrap();
        for i in 0..5 {
            a.write(record(i)).await.unwrap();
            // b's head is stale after a's writes: it reads the chain again and goes on.
            b.write(record(100 + i)).await.unwrap();
            other.write(record(200 + i)).await.unwrap();
        }
        let replicas = store.audit_chain_replicas().await.unwrap();
        assert_eq!(replicas, ["rt-1", "rt-2"]);
        for replica in replicas {
            let text = store.audit_chain_text(&replica).await.unwrap();
            let (seq, hash) = store.audit_chain_head(&replica).await.unwrap().unwrap();
            let head = chain::verify_against(&text, Some(&Head { seq, hash }))
                .unwrap_or_else(|p| panic!("{replica}: {p:?}"));
            assert_eq!(head.seq, if replica == "rt-1" { 10 } else { 5 });
        }
    }
}
