//! Store operations for the audit trail kept in the database ([`crate::audit::log`]): one
//! hash chain per replica, each row a record as the chain hashed it.

use super::db::query;
use super::{Store, StoreError};

impl Store {
    /// Appends `lines` (sequence number, record line) to `replica`'s chain, all or none,
    /// and records `head` (the last line's sequence number and hash) as where it stands:
    /// fails if any sequence number is taken (another writer got there first).
    pub async fn append_audit_lines(
        &self,
        replica: &str,
        lines: &[(u64, Vec<u8>)],
        head: (u64, &str),
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        query(
            "INSERT INTO audit_heads (replica, seq, hash) VALUES ($1, $2, $3) ON CONFLICT (replica) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(replica)
        .bind(i64::try_from(head.0).unwrap_or(i64::MAX))
        .bind(head.1)
        .execute(&mut tx)
        .await?;
        for (seq, line) in lines {
            query("INSERT INTO audit_chain (replica, seq, line) VALUES ($1, $2, $3)")
                .bind(replica)
                .bind(i64::try_from(*seq).unwrap_or(i64::MAX))
                .bind(line.as_slice())
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The last record line of `replica`'s chain.
    pub async fn audit_chain_last(&self, replica: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> =
            query("SELECT line FROM audit_chain WHERE replica = $1 ORDER BY seq DESC LIMIT 1")
                .bind(replica)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(l,)| l))
    }

    /// Where `replica`'s chain stood after its writer's last batch.
    pub async fn audit_chain_head(
        &self,
        replica: &str,
    ) -> Result<Option<(u64, String)>, StoreError> {
        let row: Option<(i64, String)> =
            query("SELECT seq, hash FROM audit_heads WHERE replica = $1")
                .bind(replica)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(seq, hash)| (u64::try_from(seq).unwrap_or(0), hash)))
    }

    /// The replicas that have a chain, by name.
    pub async fn audit_chain_replicas(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = query(
            "SELECT replica FROM audit_chain UNION SELECT replica FROM audit_heads ORDER BY replica",
        )
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(r,)| r).collect())
    }

    /// `replica`'s chain, one line per record in sequence order, as one text.
    pub async fn audit_chain_text(&self, replica: &str) -> Result<Vec<u8>, StoreError> {
        let rows: Vec<(Vec<u8>,)> =
            query("SELECT line FROM audit_chain WHERE replica = $1 ORDER BY seq")
                .bind(replica)
                .fetch_all(&self.pool)
                .await?;
        let mut text = Vec::new();
        for (line,) in rows {
            text.extend_from_slice(&line);
            text.push(b'\n');
        }
        Ok(text)
    }
}
