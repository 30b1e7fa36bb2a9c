//! Store operations for approvals a connector asked for: the call, the nonce the user's
//! sign-in must carry, and the ID token that sign-in brought back.

use super::db::query;
use super::{Store, StoreError, UnixMs};

/// The proofs a call carries to the connector ([`Store::call_proofs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallProofs {
    /// The ID token of the user's latest sign-in at the tenant's identity provider.
    pub user_proof: Option<String>,
    /// The ID token of the user's approval of this exact call, now spent.
    pub approval: Option<String>,
}

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
        query(
            "INSERT INTO approvals (id, tenant, user_id, tool, arguments_json, nonce, summary, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
            "SELECT {COLUMNS} FROM approvals WHERE id = $1 AND expires_at > $2 AND used_at IS NULL"
        ));
        Ok(query(sql)
            .bind(id)
            .bind(self.now_ms())
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Notes the sign-in (`pending_id`) started to approve `id`.
    pub async fn set_approval_pending(&self, id: &str, pending_id: &str) -> Result<(), StoreError> {
        query("UPDATE approvals SET pending_id = $1 WHERE id = $2 AND id_token IS NULL")
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
        let r = query(
            "UPDATE approvals SET id_token = $1 WHERE pending_id = $2 AND user_id = $3 AND id_token IS NULL AND expires_at > $4",
        )
        .bind(id_token)
        .bind(pending_id)
        .bind(user_id)
        .bind(self.now_ms())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// What a call of `user_id`'s carries to the connector, read in one round trip to the
    /// database: the user's proof (see [`Store::user_proof`]) and, when `approval_for` names
    /// the call (tool, arguments as sent), the latest approval the user gave for exactly
    /// that call, spent here so that it serves once.
    pub async fn call_proofs(
        &self,
        tenant: &str,
        user_id: &str,
        approval_for: Option<(&str, &str)>,
    ) -> Result<CallProofs, StoreError> {
        let Some((tool, arguments_json)) = approval_for else {
            return Ok(CallProofs {
                user_proof: self.user_proof(tenant, user_id).await?,
                approval: None,
            });
        };
        let now = self.now_ms();
        let (user_proof, approval_id): (Option<String>, Option<String>) = query(
            "SELECT (SELECT id_token FROM idp_sessions WHERE tenant = $1 AND user_id = $2), \
             (SELECT id FROM approvals WHERE tenant = $3 AND user_id = $4 AND tool = $5 AND arguments_json = $6 \
             AND id_token IS NOT NULL AND used_at IS NULL AND expires_at > $7 ORDER BY created_at DESC LIMIT 1)",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(tenant)
        .bind(user_id)
        .bind(tool)
        .bind(arguments_json)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let approval = match approval_id {
            // Another request may spend it first: then this call has none.
            Some(id) => query(
                "UPDATE approvals SET used_at = $1 WHERE id = $2 AND used_at IS NULL RETURNING id_token",
            )
            .bind(now)
            .bind(&id)
            .fetch_optional::<(String,)>(&self.pool)
            .await?
            .map(|(token,)| token),
            None => None,
        };
        Ok(CallProofs {
            user_proof,
            approval,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shared::clock::ManualClock;
    use shared::identity::{TenantId, UserId};

    use super::*;

    const START: UnixMs = 1_000_000;

    /// A call carries the user's proof, and the approval given for exactly that call once.
    #[tokio::test]
    async fn an_approval_is_spent_by_the_call_it_was_given_for_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::test_store(dir.path())
            .await
            .with_clock(Arc::new(ManualClock::at(START)));
        s.create_tenant(&"acme".parse::<TenantId>().unwrap())
            .await
            .unwrap();
        let alice = UserId::from_bytes(&[7; 16]);
        let none = s.call_proofs("acme", alice.as_str(), None).await.unwrap();
        assert_eq!(none, CallProofs::default());

        s.set_idp_session("acme", &alice, None, "proof-token")
            .await
            .unwrap();
        let args = r#"{"number":7}"#;
        s.create_approval(&ApprovalRow {
            id: "ap1".into(),
            tenant: "acme".into(),
            user_id: alice.to_string(),
            tool: "github_merge_pull_request".into(),
            arguments_json: args.into(),
            nonce: "n".into(),
            summary: "merge #7".into(),
            created_at: START,
            expires_at: START + 60_000,
            approved: false,
        })
        .await
        .unwrap();
        let call = Some(("github_merge_pull_request", args));
        // Asked for, not yet given: the call carries the proof alone.
        let before = s.call_proofs("acme", alice.as_str(), call).await.unwrap();
        assert_eq!(before.user_proof.as_deref(), Some("proof-token"));
        assert_eq!(before.approval, None);

        s.set_approval_pending("ap1", "pend1").await.unwrap();
        assert!(
            s.complete_approval("pend1", alice.as_str(), "approval-token")
                .await
                .unwrap()
        );
        let other = Some(("github_merge_pull_request", r#"{"number":8}"#));
        let elsewhere = s.call_proofs("acme", alice.as_str(), other).await.unwrap();
        assert_eq!(elsewhere.approval, None, "another call");
        let preview = s.call_proofs("acme", alice.as_str(), None).await.unwrap();
        assert_eq!(preview.approval, None, "not asked for");
        let first = s.call_proofs("acme", alice.as_str(), call).await.unwrap();
        assert_eq!(first.approval.as_deref(), Some("approval-token"));
        assert_eq!(first.user_proof.as_deref(), Some("proof-token"));
        let again = s.call_proofs("acme", alice.as_str(), call).await.unwrap();
        assert_eq!(again.approval, None, "spent");
    }
}
