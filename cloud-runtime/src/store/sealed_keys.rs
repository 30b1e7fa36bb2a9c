//! Store operations for the runtime's sealed secret keys ([`crate::sealed_keys`]): the
//! store keeps only what the operator's key-encryption key sealed.

use super::db::query;
use super::{Store, StoreError};

impl Store {
    /// The sealed key `name`, if one was stored.
    pub async fn sealed_key(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> = query("SELECT sealed FROM sealed_keys WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(s,)| s))
    }

    /// Stores the sealed key `name` unless one is there already (another replica may have
    /// made it first: read it back).
    pub async fn put_sealed_key_if_absent(
        &self,
        name: &str,
        sealed: Vec<u8>,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO sealed_keys (name, sealed, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(sealed)
        .bind(self.now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the sealed key `name` with `current` if it is still `expected`, and keeps
    /// what it replaces as `previous_name` (sealed as `previous`), both or neither. False
    /// when `name` changed meanwhile (another rotation won).
    pub async fn rotate_sealed_key(
        &self,
        name: &str,
        expected: &[u8],
        current: Vec<u8>,
        previous_name: &str,
        previous: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let swapped = query(
            "UPDATE sealed_keys SET sealed = $1, created_at = $2 WHERE name = $3 AND sealed = $4",
        )
        .bind(current)
        .bind(self.now_ms())
        .bind(name)
        .bind(expected)
        .execute(&mut tx)
        .await?
        .rows_affected()
            == 1;
        if !swapped {
            return Ok(false);
        }
        query(
            "INSERT INTO sealed_keys (name, sealed, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, created_at = excluded.created_at",
        )
        .bind(previous_name)
        .bind(previous)
        .bind(self.now_ms())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
