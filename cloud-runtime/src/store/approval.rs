//! Store operations for approvals a connector asked for: the call, the nonce the user's
//! sign-in must carry, and the ID token that sign-in brought back.

use super::{Store, StoreError, UnixMs};

/// An approval a connector asked a user for.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApprovalRow {
    /// Random id, the last segment of the approval page's URL.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// The user who must approve.
    pub user_id: String,
    /// The tool called.
    pub tool: String,
    /// Its arguments, as the runtime sends them.
    pub arguments_json: String,
    /// The nonce the connector chose.
    pub nonce: String,
    /// What the call does, in the connector's words.
    pub summary: String,
    /// Created.
    pub created_at: UnixMs,
    /// Expiry.
    pub expires_at: UnixMs,
    /// Whether the user approved (an ID token came back for it).
    pub approved: bool,
}

const COLUMNS: &str = "id, tenant, user_id, tool, arguments_json, nonce, summary, created_at, expires_at, id_token IS NOT NULL AS approved";

impl Store {
    /// Stores an approval request.
    pub async fn create_approval(&self, r: &ApprovalRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO approvals (id, tenant, user_id, tool, arguments_json, nonce, summary, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(&r.tenant)
        .bind(&r.user_id)
        .bind(&r.tool)
        .bind(&r.arguments_json)
        .bind(&r.nonce)
        .bind(&r.summary)
        .bind(r.created_at)
        .bind(r.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An unexpired approval request.
    pub async fn approval(&self, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE id = ? AND expires_at > ? AND used_at IS NULL"
        ));
        Ok(sqlx::query_as(sql)
            .bind(id)
            .bind(self.now_ms())
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Notes the sign-in (`pending_id`) started to approve `id`.
    pub async fn set_approval_pending(&self, id: &str, pending_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE approvals SET pending_id = ? WHERE id = ? AND id_token IS NULL")
            .bind(pending_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Keeps the ID token of the sign-in `pending_id` as the approval it was started for,
    /// if `user_id` is the user who must approve; true when it was one.
    pub async fn complete_approval(
        &self,
        pending_id: &str,
        user_id: &str,
        id_token: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE approvals SET id_token = ? WHERE pending_id = ? AND user_id = ? AND id_token IS NULL AND expires_at > ?",
        )
        .bind(id_token)
        .bind(pending_id)
        .bind(user_id)
        .bind(self.now_ms())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Spends the latest approval `user_id` gave for this exact call, if any: its ID token.
    pub async fn take_approval(
        &self,
        tenant: &str,
        user_id: &str,
        tool: &str,
        arguments_json: &str,
    ) -> Result<Option<String>, StoreError> {
        let now = self.now_ms();
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT id, id_token FROM approvals WHERE tenant = ? AND user_id = ? AND tool = ? AND arguments_json = ? \
             AND id_token IS NOT NULL AND used_at IS NULL AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(tool)
        .bind(arguments_json)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, token)) = row else {
            return Ok(None);
        };
        let spent =
            sqlx::query("UPDATE approvals SET used_at = ? WHERE id = ? AND used_at IS NULL")
                .bind(now)
                .bind(&id)
                .execute(&self.pool)
                .await?;
        // Another request spent it first.
        Ok((spent.rows_affected() == 1).then_some(token))
    }
}
