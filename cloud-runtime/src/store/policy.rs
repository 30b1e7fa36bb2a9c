//! Store operations for tenant policies: numbered revisions of the policy file, and what
//! connectors report of their local policy.

use serde::Serialize;
use shared::identity::{ConnectorId, TenantId};

use super::db::query;
use super::{GatewayRow, Store, StoreError, UnixMs};

/// One applied policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PolicyRevision {
    /// Tenant.
    pub tenant: String,
    /// Revision number, from 1.
    pub revision: i64,
    /// The file's text.
    pub source: String,
    /// SHA-256 of the text, hex.
    pub sha256: String,
    /// The file's name as given to `policy apply`.
    pub file_name: String,
    /// When it was applied.
    pub applied_at: UnixMs,
}

/// One revision in a tenant's policy history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PolicyEntry {
    /// Revision number, from 1.
    pub revision: i64,
    /// SHA-256 of the text, hex.
    pub sha256: String,
    /// The file's name as applied.
    pub file_name: String,
    /// When it was applied, Unix ms.
    pub applied_at: UnixMs,
}

impl Store {
    /// Stores a validated policy file as the tenant's next revision and applies the
    /// gateways it defines, in one transaction. Returns the revision number.
    pub async fn apply_policy(
        &self,
        tenant: &TenantId,
        file_name: &str,
        source: &str,
        sha256: &str,
        gateways: &[GatewayRow],
    ) -> Result<i64, StoreError> {
        if !self.tenant_exists(tenant).await? {
            return Err(StoreError::NotFound(format!("tenant {tenant}")));
        }
        let now = self.now_ms();
        let mut tx = self.pool.begin().await?;
        let (current,): (Option<i64>,) =
            query("SELECT MAX(revision) FROM policy_revisions WHERE tenant = $1")
                .bind(tenant.as_str())
                .fetch_one(&mut tx)
                .await?;
        let revision = current.unwrap_or(0) + 1;
        query(
            "INSERT INTO policy_revisions (tenant, revision, source, sha256, file_name, applied_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant.as_str())
        .bind(revision)
        .bind(source)
        .bind(sha256)
        .bind(file_name)
        .bind(now)
        .execute(&mut tx)
        .await?;
        for gw in gateways {
            query(
                "INSERT INTO gateways (tenant, name, instructions, tools, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant, name) DO UPDATE SET instructions = excluded.instructions, tools = excluded.tools",
            )
            .bind(tenant.as_str())
            .bind(&gw.name)
            .bind(&gw.instructions)
            .bind(gw.tools.join(","))
            .bind(now)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(revision)
    }

    /// The policy in force for a tenant.
    pub async fn policy(&self, tenant: &str) -> Result<Option<PolicyRevision>, StoreError> {
        Ok(query(
            "SELECT tenant, revision, source, sha256, file_name, applied_at FROM policy_revisions \
             WHERE tenant = $1 ORDER BY revision DESC LIMIT 1",
        )
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// One revision of a tenant's policy.
    pub async fn policy_revision(
        &self,
        tenant: &str,
        revision: i64,
    ) -> Result<Option<PolicyRevision>, StoreError> {
        Ok(query(
            "SELECT tenant, revision, source, sha256, file_name, applied_at FROM policy_revisions \
             WHERE tenant = $1 AND revision = $2",
        )
        .bind(tenant)
        .bind(revision)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every revision of a tenant's policy, newest first, without their text.
    pub async fn policy_history(&self, tenant: &str) -> Result<Vec<PolicyEntry>, StoreError> {
        Ok(query(
            "SELECT revision, sha256, file_name, applied_at FROM policy_revisions \
             WHERE tenant = $1 ORDER BY revision DESC",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The revision in force for every tenant that has a policy: cheap enough to poll.
    pub async fn policy_heads(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(query(
            "SELECT tenant, MAX(revision) FROM policy_revisions GROUP BY tenant ORDER BY tenant",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records the local policy a connector reported (JSON array of rules).
    pub async fn record_local_policy(
        &self,
        id: &ConnectorId,
        rules_json: &str,
    ) -> Result<(), StoreError> {
        query("UPDATE connectors SET local_policy = $1 WHERE id = $2")
            .bind(rules_json)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The local policies last reported by the tenant's non-revoked connectors.
    pub async fn local_policies(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        Ok(query(
            "SELECT id, local_policy FROM connectors WHERE tenant = $1 AND revoked_at IS NULL ORDER BY id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revisions_count_up_and_gateways_are_upserted() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::test_store(dir.path()).await;
        let t: TenantId = "acme".parse().unwrap();
        s.create_tenant(&t).await.unwrap();
        assert!(s.policy("acme").await.unwrap().is_none());
        let gw = |tools: &str| GatewayRow {
            tenant: "acme".into(),
            name: "eng".into(),
            instructions: None,
            tools: vec![tools.into()],
        };
        assert_eq!(
            s.apply_policy(&t, "p.toml", "a", "h1", &[gw("x")])
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.apply_policy(&t, "p.toml", "b", "h2", &[gw("y")])
                .await
                .unwrap(),
            2
        );
        let p = s.policy("acme").await.unwrap().unwrap();
        assert_eq!((p.revision, p.source.as_str()), (2, "b"));
        assert_eq!(
            s.policy_revision("acme", 1).await.unwrap().unwrap().source,
            "a"
        );
        assert_eq!(
            s.policy_heads().await.unwrap(),
            vec![("acme".to_owned(), 2)]
        );
        assert_eq!(
            s.gateway("acme", "eng").await.unwrap().unwrap().tools,
            vec!["y"]
        );
        let ghost: TenantId = "ghost".parse().unwrap();
        assert!(matches!(
            s.apply_policy(&ghost, "p", "a", "h", &[]).await,
            Err(StoreError::NotFound(_))
        ));
    }
}
