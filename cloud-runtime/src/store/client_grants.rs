//! Store operations for the OAuth clients of a tenant: which clients its users let act for
//! them, when each first and last got tokens there, and revocation by the tenant's admins.

use serde::Serialize;

use super::db::query;
use super::{Store, StoreError};

/// A client as a tenant's administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ClientGrant {
    /// Client id.
    pub client_id: String,
    /// The name it registered with.
    pub client_name: Option<String>,
    /// Its registered redirect URIs, as stored (a JSON list).
    #[serde(skip)]
    pub redirect_uris: Option<String>,
    /// When it first got tokens in the tenant, Unix ms.
    pub first_used_at: i64,
    /// When it last did.
    pub last_used_at: i64,
    /// When an administrator revoked it, if one did.
    pub revoked_at: Option<i64>,
    /// The agent it acts as, if one is bound to it.
    pub agent: Option<String>,
}

impl ClientGrant {
    /// The hosts its redirect URIs point at (where its authorizations go).
    pub fn redirect_hosts(&self) -> Vec<String> {
        let uris: Vec<String> = self
            .redirect_uris
            .as_deref()
            .and_then(|u| serde_json::from_str(u).ok())
            .unwrap_or_default();
        let mut hosts: Vec<String> = uris
            .iter()
            .filter_map(|u| url::Url::parse(u).ok())
            .map(|u| match u.host_str() {
                Some(h) => h.to_owned(),
                None => format!("{}:", u.scheme()),
            })
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

impl Store {
    /// Notes that `client_id` gets tokens in `tenant` now; false (and nothing noted) if an
    /// administrator revoked it there.
    pub async fn record_client_use(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let revoked: Option<(Option<i64>,)> = query(
            "SELECT revoked_at FROM oauth_client_grants WHERE tenant = $1 AND client_id = $2",
        )
        .bind(tenant)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        if matches!(revoked, Some((Some(_),))) {
            return Ok(false);
        }
        query(
            "INSERT INTO oauth_client_grants (tenant, client_id, first_used_at, last_used_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (tenant, client_id) DO UPDATE SET last_used_at = excluded.last_used_at",
        )
        .bind(tenant)
        .bind(client_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// Whether an administrator revoked `client_id` in `tenant`.
    pub async fn client_revoked(&self, tenant: &str, client_id: &str) -> Result<bool, StoreError> {
        let revoked: Option<(Option<i64>,)> = query(
            "SELECT revoked_at FROM oauth_client_grants WHERE tenant = $1 AND client_id = $2",
        )
        .bind(tenant)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(matches!(revoked, Some((Some(_),))))
    }

    /// The clients of `tenant`, last used first.
    pub async fn client_grants(&self, tenant: &str) -> Result<Vec<ClientGrant>, StoreError> {
        Ok(query(
            "SELECT g.client_id, c.client_name, c.redirect_uris, g.first_used_at, g.last_used_at, g.revoked_at, \
             (SELECT MIN(a.name) FROM agents a WHERE a.tenant = g.tenant AND a.oauth_client_id = g.client_id) AS agent \
             FROM oauth_client_grants g LEFT JOIN oauth_clients c ON c.client_id = g.client_id \
             WHERE g.tenant = $1 ORDER BY g.last_used_at DESC, g.client_id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes `client_id` in `tenant`: no token there from now on, and every refresh
    /// token it holds there spent. `None` if the client never got tokens in the tenant;
    /// otherwise whether it was revoked now (false: already).
    pub async fn revoke_client_grant(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<bool>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let known: Option<(Option<i64>,)> = query(
            "SELECT revoked_at FROM oauth_client_grants WHERE tenant = $1 AND client_id = $2",
        )
        .bind(tenant)
        .bind(client_id)
        .fetch_optional(&mut tx)
        .await?;
        let Some((revoked_at,)) = known else {
            return Ok(None);
        };
        if revoked_at.is_some() {
            return Ok(Some(false));
        }
        query(
            "UPDATE oauth_client_grants SET revoked_at = $3 WHERE tenant = $1 AND client_id = $2",
        )
        .bind(tenant)
        .bind(client_id)
        .bind(self.now_ms())
        .execute(&mut tx)
        .await?;
        query("UPDATE oauth_refresh SET revoked = 1 WHERE tenant = $1 AND client_id = $2")
            .bind(tenant)
            .bind(client_id)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(Some(true))
    }
}
