//! Store operations for the tenant admin API's tokens ([`crate::admin_api::tokens`]): the
//! secret arrives here hashed.

use serde::Serialize;

use super::db::query;
use super::{Store, StoreError, UnixMs};

/// An admin API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AdminTokenRow {
    /// Id, for listing and revoking (`adm-` and hex).
    pub id: String,
    /// The tenant it administers.
    pub tenant: String,
    /// Who or what it is for (shown in the audit trail as the admin's name).
    pub name: String,
    /// Its scopes, comma-separated.
    pub scopes: String,
    /// When it was made, Unix ms.
    pub created_at: UnixMs,
    /// When it stops working, Unix ms.
    pub expires_at: UnixMs,
    /// When it was revoked, Unix ms.
    pub revoked_at: Option<UnixMs>,
    /// When it was last presented, Unix ms.
    pub last_used: Option<UnixMs>,
}

const COLUMNS: &str = "id, tenant, name, scopes, created_at, expires_at, revoked_at, last_used";

impl Store {
    /// Stores a new admin token.
    pub async fn create_admin_token(
        &self,
        row: &AdminTokenRow,
        secret_hash: &str,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO admin_tokens (id, tenant, name, secret_hash, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(row.id.as_str())
        .bind(row.tenant.as_str())
        .bind(row.name.as_str())
        .bind(secret_hash)
        .bind(row.scopes.as_str())
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token whose secret hashes to `secret_hash`, if any (expired and revoked ones
    /// included: the caller says which it is), and marks it used.
    pub async fn admin_token_by_secret(
        &self,
        secret_hash: &str,
    ) -> Result<Option<AdminTokenRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM admin_tokens WHERE secret_hash = $1"
        ));
        let row: Option<AdminTokenRow> = query(sql)
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(r) = &row {
            query("UPDATE admin_tokens SET last_used = $1 WHERE id = $2")
                .bind(self.now_ms())
                .bind(r.id.as_str())
                .execute(&self.pool)
                .await?;
        }
        Ok(row)
    }

    /// `tenant`'s admin tokens, newest first.
    pub async fn admin_tokens(&self, tenant: &str) -> Result<Vec<AdminTokenRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM admin_tokens WHERE tenant = $1 ORDER BY created_at DESC, id"
        ));
        Ok(query(sql).bind(tenant).fetch_all(&self.pool).await?)
    }

    /// Revokes the admin token `id`; false if there is none or it was revoked already.
    pub async fn revoke_admin_token(&self, id: &str) -> Result<bool, StoreError> {
        let done =
            query("UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(self.now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
