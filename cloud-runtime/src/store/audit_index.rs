//! Store operations for the audit trail's search index ([`crate::audit::index`] fills it,
//! [`crate::audit::search`] reads it): one row per chained record, keyed by chain and
//! sequence number, newest first by time.

use super::db::query;
use super::{Store, StoreError};

/// One record as the index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    /// The chain: `local` for the data directory's file, else the replica id.
    pub chain: String,
    /// The record's sequence number in its chain.
    pub seq: u64,
    /// Tenant.
    pub tenant: String,
    /// The record's time, Unix milliseconds.
    pub at_ms: i64,
    /// `decision`, `upstream`, `outcome`, ...
    pub kind: String,
    /// The user's name.
    pub user: String,
    /// The agent.
    pub agent: String,
    /// The tool (or, for an admin's act, the action).
    pub tool: String,
    /// The connector.
    pub connector: Option<String>,
    /// `allow` or `deny` (decision records).
    pub decision: Option<String>,
    /// The layer that denied.
    pub layer: Option<String>,
    /// How the call ended.
    pub outcome: Option<String>,
    /// W3C trace id.
    pub trace_id: String,
    /// The record's line exactly as chained.
    pub line: String,
}

/// Where a page of search results starts: after this (time, chain, seq), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Chain.
    pub chain: String,
    /// Sequence number.
    pub seq: u64,
}

/// A search of one tenant's records, validated by [`crate::audit::search::parse`]: every
/// field that is set must match exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Tenant.
    pub tenant: String,
    /// From (inclusive), Unix milliseconds.
    pub from_ms: i64,
    /// To (inclusive), Unix milliseconds.
    pub to_ms: i64,
    /// User name.
    pub user: Option<String>,
    /// Agent.
    pub agent: Option<String>,
    /// Tool.
    pub tool: Option<String>,
    /// Connector.
    pub connector: Option<String>,
    /// Record kind.
    pub kind: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// Denying layer.
    pub layer: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Continue after this record.
    pub after: Option<After>,
    /// At most this many.
    pub limit: u32,
}

/// A record a search found.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FoundRecord {
    /// Its chain.
    pub chain: String,
    /// Its sequence number there.
    pub seq: i64,
    /// Its time, Unix milliseconds.
    pub at_ms: i64,
    /// Its line exactly as chained.
    pub line: String,
}

/// The filters an index leads with, most selective first: a search by one of them reads
/// that index, in the order pages are read.
const INDEXED: [(&str, &str); 4] = [
    ("user_name", "audit_index_by_user"),
    ("tool", "audit_index_by_tool"),
    ("agent", "audit_index_by_agent"),
    ("decision", "audit_index_by_decision"),
];

/// The search statement for `filter` on `engine`, and the filter values to bind after the
/// tenant and the time range (then the cursor's three, then the limit). Only fixed column
/// names go into the text; every value is a parameter.
fn search_sql(filter: &AuditFilter, engine: super::Engine) -> (String, Vec<&str>) {
    let filters = [
        ("user_name", &filter.user),
        ("agent", &filter.agent),
        ("tool", &filter.tool),
        ("connector", &filter.connector),
        ("kind", &filter.kind),
        ("decision", &filter.decision),
        ("layer", &filter.layer),
        ("outcome", &filter.outcome),
        ("trace_id", &filter.trace_id),
    ];
    // SQLite without statistics reads a rare user's records through the time index (90 ms
    // over 100,000 records rather than 0.5 ms): it is told which index leads with a filter
    // the search has. PostgreSQL's planner has the statistics autovacuum gathers.
    let hint = match engine {
        super::Engine::Sqlite => INDEXED
            .iter()
            .find(|(column, _)| filters.iter().any(|(c, v)| c == column && v.is_some()))
            .map(|(_, index)| format!(" INDEXED BY {index}"))
            .unwrap_or_default(),
        super::Engine::Postgres => String::new(),
    };
    let mut sql = format!(
        "SELECT chain, seq, at_ms, line FROM audit_index{hint} WHERE tenant = $1 AND at_ms >= $2 AND at_ms <= $3"
    );
    let mut values: Vec<&str> = Vec::new();
    for (column, value) in filters {
        if let Some(v) = value {
            values.push(v);
            sql.push_str(&format!(" AND {column} = ${}", 3 + values.len()));
        }
    }
    let n = 3 + values.len();
    if filter.after.is_some() {
        sql.push_str(&format!(
            " AND (at_ms, chain, seq) < (${}, ${}, ${})",
            n + 1,
            n + 2,
            n + 3
        ));
    }
    sql.push_str(&format!(
        " ORDER BY at_ms DESC, chain DESC, seq DESC LIMIT ${}",
        n + if filter.after.is_some() { 4 } else { 1 }
    ));
    (sql, values)
}

impl Store {
    /// Adds `rows` to the index in one transaction; rows it has already are left as they are
    /// (two replicas may index the same chain).
    pub async fn index_audit_rows(&self, rows: &[IndexRow]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for r in rows {
            query(
                "INSERT INTO audit_index (chain, seq, tenant, at_ms, kind, user_name, agent, tool, connector, decision, layer, outcome, trace_id, line) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (chain, seq) DO NOTHING",
            )
            .bind(r.chain.as_str())
            .bind(i64::try_from(r.seq).unwrap_or(i64::MAX))
            .bind(r.tenant.as_str())
            .bind(r.at_ms)
            .bind(r.kind.as_str())
            .bind(r.user.as_str())
            .bind(r.agent.as_str())
            .bind(r.tool.as_str())
            .bind(&r.connector)
            .bind(&r.decision)
            .bind(&r.layer)
            .bind(&r.outcome)
            .bind(r.trace_id.as_str())
            .bind(r.line.as_str())
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The highest sequence number of `chain` in the index (0 if none).
    pub async fn audit_index_last(&self, chain: &str) -> Result<u64, StoreError> {
        let (last,): (Option<i64>,) = query("SELECT MAX(seq) FROM audit_index WHERE chain = $1")
            .bind(chain)
            .fetch_one(&self.pool)
            .await?;
        Ok(last.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
    }

    /// Up to `limit` record lines of `replica`'s stored chain after sequence number `after`.
    pub async fn audit_chain_after(
        &self,
        replica: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = query(
            "SELECT seq, line FROM audit_chain WHERE replica = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(replica)
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, line)| (u64::try_from(seq).unwrap_or(0), line))
            .collect())
    }

    /// The records `filter` matches, newest first.
    pub async fn search_audit(&self, filter: &AuditFilter) -> Result<Vec<FoundRecord>, StoreError> {
        let (sql, values) = search_sql(filter, self.engine());
        let mut q = query(sqlx::AssertSqlSafe(sql))
            .bind(filter.tenant.as_str())
            .bind(filter.from_ms)
            .bind(filter.to_ms);
        for v in values {
            q = q.bind(v);
        }
        if let Some(after) = &filter.after {
            q = q
                .bind(after.at_ms)
                .bind(after.chain.as_str())
                .bind(i64::try_from(after.seq).unwrap_or(i64::MAX));
        }
        Ok(q.bind(i64::from(filter.limit))
            .fetch_all(&self.pool)
            .await?)
    }

    /// `tenant`'s call decisions since `since_ms`, and how many of them were denials.
    pub async fn audit_decisions_since(
        &self,
        tenant: &str,
        since_ms: i64,
    ) -> Result<(u64, u64), StoreError> {
        let (calls, denials): (i64, Option<i64>) = query(
            "SELECT COUNT(*), SUM(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END) FROM audit_index \
             WHERE tenant = $1 AND at_ms >= $2 AND kind = 'decision'",
        )
        .bind(tenant)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok((n(calls), n(denials.unwrap_or(0))))
    }

    /// Up to `limit` of `tenant`'s records after `after`, oldest first, of the kinds
    /// `kinds` (what a live view shows next).
    pub async fn audit_after(
        &self,
        tenant: &str,
        after: &After,
        kinds: &[&str],
        limit: u32,
    ) -> Result<Vec<FoundRecord>, StoreError> {
        let mut sql = String::from(
            "SELECT chain, seq, at_ms, line FROM audit_index WHERE tenant = $1 \
             AND (at_ms, chain, seq) > ($2, $3, $4)",
        );
        if !kinds.is_empty() {
            let list: Vec<String> = (0..kinds.len()).map(|i| format!("${}", 6 + i)).collect();
            sql.push_str(&format!(" AND kind IN ({})", list.join(", ")));
        }
        sql.push_str(" ORDER BY at_ms, chain, seq LIMIT $5");
        let mut q = query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(after.at_ms)
            .bind(after.chain.as_str())
            .bind(i64::try_from(after.seq).unwrap_or(i64::MAX))
            .bind(i64::from(limit));
        for k in kinds {
            q = q.bind(*k);
        }
        Ok(q.fetch_all(&self.pool).await?)
    }

    /// How many of `tenant`'s records the index holds.
    pub async fn audit_index_count(&self, tenant: &str) -> Result<u64, StoreError> {
        let (n,): (i64,) = query("SELECT COUNT(*) FROM audit_index WHERE tenant = $1")
            .bind(tenant)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::audit::search;

    fn row(chain: &str, seq: u64, tenant: &str, at_ms: i64, user: &str) -> IndexRow {
        IndexRow {
            chain: chain.into(),
            seq,
            tenant: tenant.into(),
            at_ms,
            kind: "decision".into(),
            user: user.into(),
            agent: "triage".into(),
            tool: "list_repositories".into(),
            connector: None,
            decision: Some(
                if seq.is_multiple_of(7) {
                    "deny"
                } else {
                    "allow"
                }
                .into(),
            ),
            layer: None,
            outcome: None,
            trace_id: format!("{seq:032x}"),
            line: format!("{{\"seq\":{seq}}}"),
        }
    }

    #[tokio::test]
    async fn a_rare_user_is_read_through_the_user_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::test_store(dir.path()).await;
        if store.engine() != crate::store::Engine::Sqlite {
            return; // PostgreSQL's autovacuum keeps its own statistics.
        }
        let rows: Vec<IndexRow> = (1..=5000)
            .map(|seq| row("local", seq, "acme", seq as i64, &format!("u{}", seq % 50)))
            .collect();
        store.index_audit_rows(&rows).await.unwrap();
        let filter = AuditFilter {
            tenant: "acme".into(),
            from_ms: 0,
            to_ms: i64::MAX,
            user: Some("nobody".into()),
            decision: Some("deny".into()),
            limit: 51,
            ..AuditFilter::default()
        };
        let (sql, _) = search_sql(&filter, store.engine());
        let plan: Vec<(i64, i64, i64, String)> =
            query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind("acme")
                .bind(0i64)
                .bind(i64::MAX)
                .bind("nobody")
                .bind("deny")
                .bind(51i64)
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert!(
            plan.iter()
                .any(|(_, _, _, step)| step.contains("audit_index_by_user")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn pages_cover_every_match_once_newest_first_and_never_another_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::test_store(dir.path()).await;
        // Two chains, many records in the same millisecond: the cursor must break ties.
        let mut rows = Vec::new();
        for seq in 1..=130 {
            rows.push(row("r1", seq, "acme", 1_000 + (seq as i64 / 10), "alice"));
            rows.push(row("r2", seq, "acme", 1_000 + (seq as i64 / 10), "bob"));
            rows.push(row("r3", seq, "globex", 1_000 + (seq as i64 / 10), "alice"));
        }
        store.index_audit_rows(&rows).await.unwrap();
        // Indexing again (a second replica, a restart) changes nothing.
        store.index_audit_rows(&rows[..10]).await.unwrap();
        assert_eq!(store.audit_index_last("r2").await.unwrap(), 130);

        let mut filter = AuditFilter {
            tenant: "acme".into(),
            from_ms: 0,
            to_ms: 10_000,
            limit: 50,
            ..AuditFilter::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = search::search(&store, &filter).await.unwrap();
            assert!(page.records.len() <= 50);
            seen.extend(
                page.records
                    .iter()
                    .map(|r| (r.at_ms, r.chain.clone(), r.seq)),
            );
            match page.next_cursor {
                Some(c) => filter.after = Some(search::decode_cursor(&c).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 260);
        assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 260);
        assert!(
            seen.windows(2).all(|w| w[0] > w[1]),
            "newest first, no repeats"
        );
        assert!(seen.iter().all(|(_, chain, _)| chain != "r3"));

        let denied = AuditFilter {
            user: Some("bob".into()),
            decision: Some("deny".into()),
            after: None,
            limit: 500,
            ..filter
        };
        let found = store.search_audit(&denied).await.unwrap();
        assert_eq!(found.len(), 18);
        assert!(found.iter().all(|r| r.chain == "r2" && r.seq % 7 == 0));
        assert_eq!(store.audit_index_count("globex").await.unwrap(), 130);
    }
}
