//! Store operations for just-in-time upstream authorization: connect requests waiting for
//! the user's browser, and signed-in browser sessions (by the cookie's hash).

use serde::Serialize;

use super::db::query;
use super::{Store, StoreError, UnixMs};

/// A connector's request that a user connect their upstream account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ConnectRow {
    /// Random id, the last segment of the connect URL.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// The id of the user it was made for.
    pub user_id: String,
    /// The agent whose call asked for it.
    pub agent: String,
    /// The connector holding the state and verifier.
    pub connector: String,
    /// The provider instance.
    pub provider: String,
    /// "GitHub Enterprise at host".
    pub display_name: String,
    /// The upstream's consent URL.
    pub authorize_url: String,
    /// The upstream `state` in it.
    pub state: String,
    /// Id of the URL elicitation the client was sent.
    pub elicitation_id: String,
    /// Created.
    pub created_at: UnixMs,
    /// Expiry.
    pub expires_at: UnixMs,
    /// When the user came back, if they did.
    pub completed_at: Option<UnixMs>,
    /// `connected`, `declined` or `failed`.
    pub outcome: Option<String>,
}

const COLUMNS: &str = "id, tenant, user_id, agent, connector, provider, display_name, authorize_url, state, elicitation_id, created_at, expires_at, completed_at, outcome";

impl Store {
    /// Stores a connect request.
    pub async fn create_connect(&self, r: &ConnectRow) -> Result<(), StoreError> {
        query(
            "INSERT INTO connect_requests (id, tenant, user_id, agent, connector, provider, display_name, authorize_url, state, elicitation_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&r.id)
        .bind(&r.tenant)
        .bind(&r.user_id)
        .bind(&r.agent)
        .bind(&r.connector)
        .bind(&r.provider)
        .bind(&r.display_name)
        .bind(&r.authorize_url)
        .bind(&r.state)
        .bind(&r.elicitation_id)
        .bind(r.created_at)
        .bind(r.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An open (unexpired, not completed) connect request by id.
    pub async fn open_connect(&self, id: &str) -> Result<Option<ConnectRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM connect_requests WHERE id = $1 AND expires_at > $2 AND completed_at IS NULL"
        ));
        Ok(query(sql)
            .bind(id)
            .bind(self.now_ms())
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The open connect request with upstream `state`.
    pub async fn connect_by_state(&self, state: &str) -> Result<Option<ConnectRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM connect_requests WHERE state = $1 AND expires_at > $2 AND completed_at IS NULL"
        ));
        Ok(query(sql)
            .bind(state)
            .bind(self.now_ms())
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Closes the open connect request with upstream `state`, once: of two callbacks with
    /// the same state, one gets the request.
    pub async fn complete_connect(
        &self,
        state: &str,
        outcome: &str,
    ) -> Result<Option<ConnectRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE connect_requests SET completed_at = $1, outcome = $2 WHERE state = $3 AND completed_at IS NULL AND expires_at > $4 RETURNING {COLUMNS}"
        ));
        let now = self.now_ms();
        Ok(query(sql)
            .bind(now)
            .bind(outcome)
            .bind(state)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records the outcome of a completed request (after the connector answered).
    pub async fn set_connect_outcome(&self, id: &str, outcome: &str) -> Result<(), StoreError> {
        query("UPDATE connect_requests SET outcome = $1 WHERE id = $2")
            .bind(outcome)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a signed-in browser.
    pub async fn create_browser_session(
        &self,
        session_hash: &str,
        tenant: &str,
        user_id: &str,
        expires_at: UnixMs,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO browser_sessions (session_hash, tenant, user_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(session_hash)
        .bind(tenant)
        .bind(user_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends the browser session whose token hashes to `session_hash` (sign-out).
    pub async fn end_browser_session(&self, session_hash: &str) -> Result<(), StoreError> {
        query("DELETE FROM browser_sessions WHERE session_hash = $1")
            .bind(session_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The (tenant, user id) of an unexpired browser session.
    pub async fn browser_session(
        &self,
        session_hash: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(query(
            "SELECT tenant, user_id FROM browser_sessions WHERE session_hash = $1 AND expires_at > $2",
        )
        .bind(session_hash)
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::identity::TenantId;

    #[tokio::test]
    async fn a_connect_request_completes_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::test_store(dir.path()).await;
        let t: TenantId = "acme".parse().unwrap();
        s.create_tenant(&t).await.unwrap();
        let row = ConnectRow {
            id: "c1".into(),
            tenant: "acme".into(),
            user_id: "alice".into(),
            agent: "bot".into(),
            connector: "k1".into(),
            provider: "ghes".into(),
            display_name: "GHES".into(),
            authorize_url: "https://ghes/login/oauth/authorize?state=st".into(),
            state: "st".into(),
            elicitation_id: "e1".into(),
            created_at: s.now_ms(),
            expires_at: s.now_ms() + 60_000,
            completed_at: None,
            outcome: None,
        };
        s.create_connect(&row).await.unwrap();
        assert!(s.open_connect("c1").await.unwrap().is_some());
        assert!(s.connect_by_state("st").await.unwrap().is_some());
        assert!(
            s.complete_connect("st", "connected")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            s.complete_connect("st", "connected")
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.open_connect("c1").await.unwrap().is_none());
        s.create_browser_session("h", "acme", "alice", s.now_ms() + 1000)
            .await
            .unwrap();
        assert_eq!(
            s.browser_session("h").await.unwrap(),
            Some(("acme".to_owned(), "alice".to_owned()))
        );
        assert_eq!(s.browser_session("x").await.unwrap(), None);
    }
}
