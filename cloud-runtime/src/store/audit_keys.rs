//! The audit keys connectors announce at hello, kept to check their receipts later.

use super::db::query;
use super::{Store, StoreError};

impl Store {
    /// Remembers that `connector` signs its audit log and receipts with `key`.
    pub async fn record_audit_key(&self, connector: &str, key: &str) -> Result<(), StoreError> {
        query(
            "INSERT INTO connector_audit_keys (connector, audit_key, first_seen) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(connector)
        .bind(key)
        .bind(self.now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every audit key `connector` announced, oldest first.
    pub async fn audit_keys(&self, connector: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = query(
            "SELECT audit_key FROM connector_audit_keys WHERE connector = $1 ORDER BY first_seen",
        )
        .bind(connector)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(k,)| k).collect())
    }
}
