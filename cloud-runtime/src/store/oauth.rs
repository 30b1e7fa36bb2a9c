//! Store operations for OAuth: users, agents, clients, pending authorizations, codes and
//! refresh tokens. Secrets arrive here already hashed.

use serde::Serialize;
use shared::identity::UserId;

use super::db::query;
use super::{Store, StoreError, UnixMs};

/// An agent (application) of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentRow {
    /// Tenant.
    pub tenant: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// OAuth client bound to this agent, if any.
    pub oauth_client_id: Option<String>,
}

/// A user of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Stable id, never reused.
    pub id: UserId,
    /// Current name (display).
    pub name: String,
    /// Groups (their grants).
    pub groups: Vec<String>,
    /// The identity provider's account (`issuer sub`), for users who sign in there.
    pub subject: Option<String>,
}

fn user_row(id: String, name: String, groups_csv: &str) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        subject: None,
        id: UserId::parse(&id).map_err(|e| StoreError::Corrupt(format!("user {name}: {e}")))?,
        name,
        groups: groups_csv
            .split(',')
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// The id of the identity provider's account `subject` (`issuer sub`): the first 16 bytes
/// of its SHA-256, so the same account always gets the same id, and no other account can.
pub fn idp_user_id(subject: &str) -> UserId {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, subject.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(digest.as_ref().get(..16).unwrap_or(&[0; 16]));
    UserId::from_bytes(&bytes)
}

/// Whether a provider user's groups and status are due to be asked of the provider again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Checked recently enough (or being checked by a concurrent refresh).
    Fresh,
    /// Due, and claimed by this caller.
    Due {
        /// The provider's refresh token from the user's sign-in, if it gave one.
        refresh_token: Option<String>,
        /// When it was checked before (to give the claim back).
        previous: UnixMs,
    },
    /// No provider sign-in is on record (signed in before re-checks existed).
    NoSession,
}

/// A registered OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// Client id.
    pub client_id: String,
    /// Display name.
    pub client_name: Option<String>,
    /// Registered redirect URIs (exact match).
    pub redirect_uris: Vec<String>,
}

/// An authorization request waiting for sign-in.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PendingRow {
    /// Random id carried by the sign-in form.
    pub id: String,
    /// Client.
    pub client_id: String,
    /// Where to send the code.
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Client state, echoed.
    pub state: Option<String>,
    /// Resource (gateway URL) the token is for.
    pub resource: String,
    /// Tenant of the resource.
    pub tenant: String,
    /// Expiry.
    pub expires_at: UnixMs,
    /// OIDC nonce, when sign-in goes to the tenant's identity provider.
    pub nonce: Option<String>,
    /// PKCE verifier for the identity provider.
    pub idp_verifier: Option<String>,
    /// For a sign-in started from a connect page: where the browser goes afterwards
    /// (instead of a code for an MCP client).
    pub return_to: Option<String>,
    /// SHA-256 of the sign-in binding cookie of the browser that started it.
    pub browser_hash: Option<String>,
    /// The user the identity provider signed in, while they are asked to consent.
    pub signed_in_user_id: Option<String>,
}

/// A tenant's OpenID Connect identity provider.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IdpRow {
    /// Tenant.
    pub tenant: String,
    /// Issuer URL.
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret at the provider.
    pub client_secret: String,
    /// Name of the claim that lists the user's groups.
    pub groups_claim: String,
    /// How often a user's groups and status are asked of the provider again (seconds).
    pub recheck_secs: i64,
}

impl std::fmt::Debug for IdpRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpRow")
            .field("tenant", &self.tenant)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("recheck_secs", &self.recheck_secs)
            .finish_non_exhaustive()
    }
}

/// An issued authorization code (by hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    /// Client.
    pub client_id: String,
    /// Redirect URI it was issued for.
    pub redirect_uri: String,
    /// PKCE challenge.
    pub code_challenge: String,
    /// Resource.
    pub resource: String,
    /// Tenant.
    pub tenant: String,
    /// The signed-in user's stable id.
    pub user_id: String,
    /// Expiry.
    pub expires_at: UnixMs,
}

/// A refresh token (by hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRow {
    /// Rotation family.
    pub family: String,
    /// Client.
    pub client_id: String,
    /// Resource.
    pub resource: String,
    /// Tenant.
    pub tenant: String,
    /// The user's stable id.
    pub user_id: String,
    /// Expiry.
    pub expires_at: UnixMs,
}

/// Why a one-time credential (code, refresh token) was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend<T> {
    /// Accepted and now spent.
    Ok(T),
    /// Not known.
    Unknown,
    /// Already spent: replayed. Carries the rotation family to revoke.
    Replayed(String),
    /// Past its expiry, or revoked.
    Expired,
    /// Presented by another client, for another redirect URI or with the wrong PKCE
    /// verifier; left unspent.
    Mismatch,
}

type CodeTuple = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
);
type RefreshTuple = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    i64,
);

impl Store {
    /// Adds a local user under a fresh random id, which it returns.
    pub async fn create_user(
        &self,
        tenant: &str,
        name: &str,
        groups: &[String],
        secret_hash: &str,
    ) -> Result<UserId, StoreError> {
        let id = UserId::from_bytes(&rand::random());
        let r = query(
            "INSERT INTO users (tenant, name, groups_csv, secret_hash, created_at, id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(name)
        .bind(groups.join(","))
        .bind(secret_hash)
        .bind(self.now_ms())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "user {name} of tenant {tenant}"
            )));
        }
        Ok(id)
    }

    /// The local user `name` of `tenant`, if their secret hashes to `secret_hash`.
    pub async fn check_user(
        &self,
        tenant: &str,
        name: &str,
        secret_hash: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        let row: Option<(String, String, String, String)> = query(
            "SELECT id, name, groups_csv, secret_hash FROM users WHERE tenant = $1 AND name = $2 AND id IS NOT NULL",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, name, groups, stored)) = row else {
            return Ok(None);
        };
        let same = aws_lc_rs::constant_time::verify_slices_are_equal(
            stored.as_bytes(),
            secret_hash.as_bytes(),
        )
        .is_ok();
        if !same {
            return Ok(None);
        }
        user_row(id, name, &groups).map(Some)
    }

    /// A user of `tenant` by id: their current name and groups.
    pub async fn user(&self, tenant: &str, id: &str) -> Result<Option<UserRow>, StoreError> {
        let row: Option<(String, String, String, Option<String>)> = query(
            "SELECT id, name, groups_csv, idp_subject FROM users WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(id, name, groups, subject)| {
            user_row(id, name, &groups).map(|u| UserRow { subject, ..u })
        })
        .transpose()
    }

    /// A user of `tenant` by their current name.
    pub async fn user_named(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        let row: Option<(String, String, String)> = query(
            "SELECT id, name, groups_csv FROM users WHERE tenant = $1 AND name = $2 AND id IS NOT NULL",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(id, name, groups)| user_row(id, name, &groups))
            .transpose()
    }

    /// Every user of `tenant`, by name.
    pub async fn users(&self, tenant: &str) -> Result<Vec<UserRow>, StoreError> {
        let rows: Vec<(String, String, String)> = query(
            "SELECT id, name, groups_csv FROM users WHERE tenant = $1 AND id IS NOT NULL ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, name, groups)| user_row(id, name, &groups))
            .collect()
    }

    /// Gives every user stored before ids existed their id: a digest of the provider's
    /// account for users of an identity provider, a random one for local users.
    pub async fn assign_user_ids(&self) -> Result<u64, StoreError> {
        let rows: Vec<(String, String, Option<String>)> =
            query("SELECT tenant, name, idp_subject FROM users WHERE id IS NULL")
                .fetch_all(&self.pool)
                .await?;
        let mut n = 0;
        for (tenant, name, subject) in rows {
            let id = match subject.as_deref() {
                Some(subject) => idp_user_id(subject),
                None => UserId::from_bytes(&rand::random()),
            };
            n += query("UPDATE users SET id = $1 WHERE tenant = $2 AND name = $3 AND id IS NULL")
                .bind(id.as_str())
                .bind(&tenant)
                .bind(&name)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }

    /// Registers an agent.
    pub async fn create_agent(&self, agent: &AgentRow, key_hash: &str) -> Result<(), StoreError> {
        let r = query(
            "INSERT INTO agents (tenant, name, role, key_hash, oauth_client_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&agent.tenant)
        .bind(&agent.name)
        .bind(&agent.role)
        .bind(key_hash)
        .bind(&agent.oauth_client_id)
        .bind(self.now_ms())
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "agent {} of tenant {}",
                agent.name, agent.tenant
            )));
        }
        Ok(())
    }

    /// The agent whose key hashes to `key_hash`.
    pub async fn agent_by_key(&self, key_hash: &str) -> Result<Option<AgentRow>, StoreError> {
        let row: Option<(String, String, String, Option<String>)> =
            query("SELECT tenant, name, role, oauth_client_id FROM agents WHERE key_hash = $1")
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(tenant, name, role, oauth_client_id)| AgentRow {
            tenant,
            name,
            role,
            oauth_client_id,
        }))
    }

    /// An agent by name.
    pub async fn agent(&self, tenant: &str, name: &str) -> Result<Option<AgentRow>, StoreError> {
        let row: Option<(String, String, String, Option<String>)> = query(
            "SELECT tenant, name, role, oauth_client_id FROM agents WHERE tenant = $1 AND name = $2",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(tenant, name, role, oauth_client_id)| AgentRow {
            tenant,
            name,
            role,
            oauth_client_id,
        }))
    }

    /// Every agent of `tenant`, by name.
    pub async fn agents(&self, tenant: &str) -> Result<Vec<AgentRow>, StoreError> {
        let rows: Vec<(String, String, String, Option<String>)> = query(
            "SELECT tenant, name, role, oauth_client_id FROM agents WHERE tenant = $1 ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(tenant, name, role, oauth_client_id)| AgentRow {
                tenant,
                name,
                role,
                oauth_client_id,
            })
            .collect())
    }

    /// Binds `tenant`'s agent `name` to the OAuth client `client_id` (replacing any
    /// binding it had); false if there is no such agent.
    pub async fn bind_agent_client(
        &self,
        tenant: &str,
        name: &str,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        let done = query("UPDATE agents SET oauth_client_id = $1 WHERE tenant = $2 AND name = $3")
            .bind(client_id)
            .bind(tenant)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The agent of `tenant` bound to an OAuth client.
    pub async fn agent_by_client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<AgentRow>, StoreError> {
        let row: Option<(String, String, String, Option<String>)> =
            query("SELECT tenant, name, role, oauth_client_id FROM agents WHERE tenant = $1 AND oauth_client_id = $2")
                .bind(tenant)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(tenant, name, role, oauth_client_id)| AgentRow {
            tenant,
            name,
            role,
            oauth_client_id,
        }))
    }

    /// Registers an OAuth client.
    pub async fn create_client(&self, c: &ClientRow) -> Result<(), StoreError> {
        let uris = serde_json::to_string(&c.redirect_uris)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        query("INSERT INTO oauth_clients (client_id, client_name, redirect_uris, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&c.client_id)
            .bind(&c.client_name)
            .bind(uris)
            .bind(self.now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a client known by its metadata document (refreshing what was known).
    pub async fn upsert_client(&self, c: &ClientRow) -> Result<(), StoreError> {
        let uris = serde_json::to_string(&c.redirect_uris)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        query(
            "INSERT INTO oauth_clients (client_id, client_name, redirect_uris, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (client_id) DO UPDATE SET client_name = excluded.client_name, redirect_uris = excluded.redirect_uris",
        )
        .bind(&c.client_id)
        .bind(&c.client_name)
        .bind(uris)
        .bind(self.now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A registered client.
    pub async fn client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
        let row: Option<(String, Option<String>, String)> = query(
            "SELECT client_id, client_name, redirect_uris FROM oauth_clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(client_id, client_name, uris)| {
            Ok(ClientRow {
                client_id,
                client_name,
                redirect_uris: serde_json::from_str(&uris)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            })
        })
        .transpose()
    }

    /// Stores a pending authorization.
    pub async fn create_pending(&self, p: &PendingRow) -> Result<(), StoreError> {
        query(
            "INSERT INTO oauth_pending (id, client_id, redirect_uri, code_challenge, state, resource, tenant, expires_at, nonce, idp_verifier, return_to, browser_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&p.id)
        .bind(&p.client_id)
        .bind(&p.redirect_uri)
        .bind(&p.code_challenge)
        .bind(&p.state)
        .bind(&p.resource)
        .bind(&p.tenant)
        .bind(p.expires_at)
        .bind(&p.nonce)
        .bind(&p.idp_verifier)
        .bind(&p.return_to)
        .bind(&p.browser_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A pending authorization that has not expired.
    pub async fn pending(&self, id: &str) -> Result<Option<PendingRow>, StoreError> {
        Ok(query(
            "SELECT id, client_id, redirect_uri, code_challenge, state, resource, tenant, expires_at, nonce, idp_verifier, return_to, browser_hash, signed_in_user_id FROM oauth_pending WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records the user the identity provider signed in for a pending authorization, once.
    pub async fn set_pending_user(&self, id: &str, user_id: &UserId) -> Result<bool, StoreError> {
        let r = query(
            "UPDATE oauth_pending SET signed_in_user_id = $1 WHERE id = $2 AND expires_at > $3 AND signed_in_user_id IS NULL",
        )
        .bind(user_id.as_str())
        .bind(id)
        .bind(self.now_ms())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes a pending sign-in and returns it, once.
    pub async fn take_pending(&self, id: &str) -> Result<Option<PendingRow>, StoreError> {
        Ok(query(
            "DELETE FROM oauth_pending WHERE id = $1 AND expires_at > $2 RETURNING id, client_id, redirect_uri, code_challenge, state, resource, tenant, expires_at, nonce, idp_verifier, return_to, browser_hash, signed_in_user_id",
        )
        .bind(id)
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Turns a pending authorization into an authorization code, once.
    pub async fn complete_pending(
        &self,
        id: &str,
        code_hash: &str,
        user_id: &UserId,
        code_ttl_ms: i64,
    ) -> Result<Option<PendingRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let pending: Option<PendingRow> = query(
            "DELETE FROM oauth_pending WHERE id = $1 AND expires_at > $2 RETURNING id, client_id, redirect_uri, code_challenge, state, resource, tenant, expires_at, nonce, idp_verifier, return_to, browser_hash, signed_in_user_id",
        )
        .bind(id)
        .bind(self.now_ms())
        .fetch_optional(&mut tx)
        .await?;
        let Some(p) = pending else {
            return Ok(None);
        };
        query(
            "INSERT INTO oauth_codes (code_hash, client_id, redirect_uri, code_challenge, resource, tenant, user_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(code_hash)
        .bind(&p.client_id)
        .bind(&p.redirect_uri)
        .bind(&p.code_challenge)
        .bind(&p.resource)
        .bind(&p.tenant)
        .bind(user_id.as_str())
        .bind(self.now_ms() + code_ttl_ms)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(Some(p))
    }

    /// Spends an authorization code, if it was issued to `client_id` for `redirect_uri` with
    /// the PKCE challenge `challenge`. A code presented with anything else stays unspent, so
    /// whoever merely saw a code cannot burn it before its client redeems it.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        client_id: &str,
        redirect_uri: &str,
        challenge: &str,
    ) -> Result<Spend<CodeRow>, StoreError> {
        let now = self.now_ms();
        let row: Option<CodeTuple> = query(
            "UPDATE oauth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL \
             AND client_id = $3 AND redirect_uri = $4 AND code_challenge = $5 \
             RETURNING client_id, redirect_uri, code_challenge, resource, tenant, user_id, expires_at, used_at",
        )
        .bind(now)
        .bind(code_hash)
        .bind(client_id)
        .bind(redirect_uri)
        .bind(challenge)
        .fetch_optional(&self.pool)
        .await?;
        if let Some((
            client_id,
            redirect_uri,
            code_challenge,
            resource,
            tenant,
            user_id,
            expires_at,
            _,
        )) = row
        {
            if expires_at <= now {
                return Ok(Spend::Expired);
            }
            return Ok(Spend::Ok(CodeRow {
                client_id,
                redirect_uri,
                code_challenge,
                resource,
                tenant,
                user_id,
                expires_at,
            }));
        }
        let exists: Option<(Option<i64>,)> =
            query("SELECT used_at FROM oauth_codes WHERE code_hash = $1")
                .bind(code_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match exists {
            // The family of tokens issued from a code is named after the code.
            Some((Some(_),)) => Spend::Replayed(code_hash.to_owned()),
            Some((None,)) => Spend::Mismatch,
            None => Spend::Unknown,
        })
    }

    /// Stores a refresh token.
    pub async fn create_refresh(&self, token_hash: &str, r: &RefreshRow) -> Result<(), StoreError> {
        query(
            "INSERT INTO oauth_refresh (token_hash, family, client_id, resource, tenant, user_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token_hash)
        .bind(&r.family)
        .bind(&r.client_id)
        .bind(&r.resource)
        .bind(&r.tenant)
        .bind(&r.user_id)
        .bind(r.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a refresh token.
    pub async fn spend_refresh(&self, token_hash: &str) -> Result<Spend<RefreshRow>, StoreError> {
        let now = self.now_ms();
        let row: Option<RefreshTuple> = query(
            "UPDATE oauth_refresh SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL RETURNING family, client_id, resource, tenant, user_id, expires_at, used_at, revoked",
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        if let Some((family, client_id, resource, tenant, user_id, expires_at, _, revoked)) = row {
            if revoked != 0 || expires_at <= now {
                return Ok(Spend::Expired);
            }
            return Ok(Spend::Ok(RefreshRow {
                family,
                client_id,
                resource,
                tenant,
                user_id,
                expires_at,
            }));
        }
        let spent: Option<(String,)> =
            query("SELECT family FROM oauth_refresh WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match spent {
            Some((family,)) => Spend::Replayed(family),
            None => Spend::Unknown,
        })
    }

    /// Sets (or replaces) a tenant's identity provider.
    pub async fn set_idp(&self, idp: &IdpRow) -> Result<(), StoreError> {
        query(
            "INSERT INTO idps (tenant, issuer, client_id, client_secret, groups_claim, updated_at, recheck_secs) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id, \
             client_secret = excluded.client_secret, groups_claim = excluded.groups_claim, updated_at = excluded.updated_at, \
             recheck_secs = excluded.recheck_secs",
        )
        .bind(&idp.tenant)
        .bind(&idp.issuer)
        .bind(&idp.client_id)
        .bind(&idp.client_secret)
        .bind(&idp.groups_claim)
        .bind(self.now_ms())
        .bind(idp.recheck_secs)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A tenant's identity provider, if it has one.
    pub async fn idp(&self, tenant: &str) -> Result<Option<IdpRow>, StoreError> {
        Ok(query("SELECT tenant, issuer, client_id, client_secret, groups_claim, recheck_secs FROM idps WHERE tenant = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records a user signed in at the identity provider, with the groups it asserted, and
    /// returns their id ([`idp_user_id`] of `subject`). Such users have no local secret (the
    /// stored hash matches no secret). A name belongs to one account: returns `None`,
    /// changing nothing, when `name` is a local user's or another account's, so that nobody
    /// takes over a colleague's identity by choosing their user name at the provider. An
    /// account whose name changed at the provider keeps its id under the new name.
    pub async fn upsert_idp_user(
        &self,
        tenant: &str,
        name: &str,
        subject: &str,
        groups: &[String],
    ) -> Result<Option<UserId>, StoreError> {
        let id = idp_user_id(subject);
        let renamed = query(
            "UPDATE users SET name = $1, groups_csv = $2 WHERE tenant = $3 AND id = $4 AND secret_hash = '!idp'",
        )
        .bind(name)
        .bind(groups.join(","))
        .bind(tenant)
        .bind(id.as_str())
        .execute(&self.pool)
        .await;
        match renamed {
            Ok(r) if r.rows_affected() == 1 => return Ok(Some(id)),
            Ok(_) => {}
            // The new name is someone else's.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let r = query(
            "INSERT INTO users (tenant, name, groups_csv, secret_hash, created_at, idp_subject, id) VALUES ($1, $2, $3, '!idp', $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(name)
        .bind(groups.join(","))
        .bind(self.now_ms())
        .bind(subject)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok((r.rows_affected() == 1).then_some(id))
    }

    /// Updates the groups of a user of an identity provider, as the provider asserted them
    /// again (at a refresh).
    pub async fn set_user_groups(
        &self,
        tenant: &str,
        id: &str,
        groups: &[String],
    ) -> Result<bool, StoreError> {
        let r = query("UPDATE users SET groups_csv = $1 WHERE tenant = $2 AND id = $3")
            .bind(groups.join(","))
            .bind(tenant)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records the provider's side of a user's sign-in: its refresh token, if it gave one,
    /// and that the user's groups and status were just checked.
    pub async fn set_idp_session(
        &self,
        tenant: &str,
        user_id: &UserId,
        refresh_token: Option<&str>,
        id_token: &str,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO idp_sessions (tenant, user_id, refresh_token, checked_at, id_token) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant, user_id) DO UPDATE SET refresh_token = excluded.refresh_token, checked_at = excluded.checked_at, id_token = excluded.id_token",
        )
        .bind(tenant)
        .bind(user_id.as_str())
        .bind(refresh_token)
        .bind(self.now_ms())
        .bind(id_token)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The ID token the provider signed at the user's latest sign-in or re-check, which
    /// their calls carry to the connector as proof of who they are; `None` for a local user
    /// or one whose grants ended.
    pub async fn user_proof(
        &self,
        tenant: &str,
        user_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> =
            query("SELECT id_token FROM idp_sessions WHERE tenant = $1 AND user_id = $2")
                .bind(tenant)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(t,)| t))
    }

    /// Claims the re-check of a provider user whose last check is older than `max_age_ms`:
    /// `Due` with the provider's refresh token (`None` if it gave none) to this caller
    /// alone, so that concurrent refreshes ask the provider once.
    pub async fn claim_idp_recheck(
        &self,
        tenant: &str,
        user_id: &UserId,
        max_age_ms: i64,
    ) -> Result<Recheck, StoreError> {
        let row: Option<(Option<String>, i64)> = query(
            "SELECT refresh_token, checked_at FROM idp_sessions WHERE tenant = $1 AND user_id = $2",
        )
        .bind(tenant)
        .bind(user_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some((token, checked_at)) = row else {
            return Ok(Recheck::NoSession);
        };
        let now = self.now_ms();
        if now.saturating_sub(checked_at) < max_age_ms {
            return Ok(Recheck::Fresh);
        }
        let claimed = query(
            "UPDATE idp_sessions SET checked_at = $1 WHERE tenant = $2 AND user_id = $3 AND checked_at = $4",
        )
        .bind(now)
        .bind(tenant)
        .bind(user_id.as_str())
        .bind(checked_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(if claimed == 1 {
            Recheck::Due {
                refresh_token: token,
                previous: checked_at,
            }
        } else {
            Recheck::Fresh
        })
    }

    /// Gives back a claimed re-check that could not be made (the provider was unreachable),
    /// so that the next refresh tries again.
    pub async fn release_idp_recheck(
        &self,
        tenant: &str,
        user_id: &UserId,
        previous: i64,
    ) -> Result<(), StoreError> {
        query("UPDATE idp_sessions SET checked_at = $1 WHERE tenant = $2 AND user_id = $3")
            .bind(previous)
            .bind(tenant)
            .bind(user_id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends everything a user was granted (the provider no longer knows or allows them):
    /// their refresh tokens, browser sessions and provider session. They keep their id, and
    /// sign in again if the provider lets them.
    pub async fn end_user_grants(&self, tenant: &str, user_id: &UserId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "UPDATE oauth_refresh SET revoked = 1 WHERE tenant = $1 AND user_id = $2",
            "DELETE FROM browser_sessions WHERE tenant = $1 AND user_id = $2",
            "DELETE FROM idp_sessions WHERE tenant = $1 AND user_id = $2",
        ] {
            query(sql)
                .bind(tenant)
                .bind(user_id.as_str())
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The owner (tenant, user id) of a refresh token that could still be spent, without
    /// spending it.
    pub async fn refresh_owner(
        &self,
        token_hash: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(query(
            "SELECT tenant, user_id FROM oauth_refresh WHERE token_hash = $1 AND used_at IS NULL AND revoked = 0 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Removes a user: their refresh tokens stop working and their browser sessions end.
    /// Returns whether the user existed. (Access tokens already issued lapse within
    /// minutes.) The id goes with them: someone given the same name later is another user,
    /// with no grant, session or upstream account of theirs; a user of an identity provider
    /// who signs in again gets their id back, and nothing else.
    pub async fn remove_user(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let removed: Option<(Option<String>,)> =
            query("DELETE FROM users WHERE tenant = $1 AND name = $2 RETURNING id")
                .bind(tenant)
                .bind(name)
                .fetch_optional(&mut tx)
                .await?;
        let Some((id,)) = removed else {
            return Ok(false);
        };
        let id = id.unwrap_or_default();
        query("UPDATE oauth_refresh SET revoked = 1 WHERE tenant = $1 AND user_id = $2")
            .bind(tenant)
            .bind(&id)
            .execute(&mut tx)
            .await?;
        query("DELETE FROM browser_sessions WHERE tenant = $1 AND user_id = $2")
            .bind(tenant)
            .bind(&id)
            .execute(&mut tx)
            .await?;
        query("DELETE FROM idp_sessions WHERE tenant = $1 AND user_id = $2")
            .bind(tenant)
            .bind(&id)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Gives agent `name` of `tenant` the key hashing to `key_hash`: the old key stops
    /// working at the next request. Returns whether the agent exists.
    pub async fn set_agent_key(
        &self,
        tenant: &str,
        name: &str,
        key_hash: &str,
    ) -> Result<bool, StoreError> {
        let r = query("UPDATE agents SET key_hash = $3 WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .bind(key_hash)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes an agent: its key stops working at the next request. Returns whether it
    /// existed.
    pub async fn remove_agent(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let r = query("DELETE FROM agents WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes expired pending authorizations, codes and refresh tokens; returns how many.
    pub async fn purge_expired_oauth(&self) -> Result<u64, StoreError> {
        let now = self.now_ms();
        let mut n = 0;
        for sql in [
            "DELETE FROM oauth_pending WHERE expires_at <= $1",
            "DELETE FROM oauth_codes WHERE expires_at <= $1",
            "DELETE FROM oauth_refresh WHERE expires_at <= $1",
            "DELETE FROM connect_requests WHERE expires_at <= $1",
            "DELETE FROM browser_sessions WHERE expires_at <= $1",
            "DELETE FROM spent_confirmations WHERE expires_at <= $1",
        ] {
            n += query(sql)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }

    /// Spends a stateless confirmation's id; `false` if it was spent before.
    pub async fn spend_confirmation(&self, id: &str, expires_at: i64) -> Result<bool, StoreError> {
        let r = query(
            "INSERT INTO spent_confirmations (id, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Revokes every refresh token of a family.
    pub async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        query("UPDATE oauth_refresh SET revoked = 1 WHERE family = $1")
            .bind(family)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use shared::clock::ManualClock;
    use shared::identity::TenantId;

    use super::*;

    const START: UnixMs = 1_000_000;

    async fn store() -> (tempfile::TempDir, Store, Arc<ManualClock>) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at(START));
        let s = crate::store::test_store(dir.path())
            .await
            .with_clock(clock.clone());
        s.create_tenant(&"acme".parse::<TenantId>().unwrap())
            .await
            .unwrap();
        (dir, s, clock)
    }

    fn pending(id: &str, expires_at: UnixMs) -> PendingRow {
        PendingRow {
            id: id.into(),
            client_id: "cl".into(),
            redirect_uri: "https://client.example/cb".into(),
            code_challenge: "ch".into(),
            state: None,
            resource: "https://rt.example/t/acme/g/eng/mcp".into(),
            tenant: "acme".into(),
            expires_at,
            nonce: None,
            idp_verifier: None,
            return_to: None,
            browser_hash: None,
            signed_in_user_id: None,
        }
    }

    async fn code(s: &Store, pending_id: &str, code_hash: &str, ttl_ms: i64) {
        let user = UserId::from_bytes(&[0; 16]);
        s.create_pending(&pending(pending_id, START + 600_000))
            .await
            .unwrap();
        assert!(
            s.complete_pending(pending_id, code_hash, &user, ttl_ms)
                .await
                .unwrap()
                .is_some()
        );
    }

    async fn redeem(s: &Store, code_hash: &str) -> Spend<CodeRow> {
        s.redeem_code(code_hash, "cl", "https://client.example/cb", "ch")
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_authorization_code_expires_by_the_store_clock() {
        let (_d, s, clock) = store().await;
        code(&s, "p1", "fresh", 60_000).await;
        code(&s, "p2", "stale", 60_000).await;
        clock.advance(Duration::from_millis(59_999));
        assert!(matches!(redeem(&s, "fresh").await, Spend::Ok(_)));
        clock.advance(Duration::from_millis(1));
        assert_eq!(redeem(&s, "stale").await, Spend::Expired);
    }

    #[tokio::test]
    async fn a_pending_sign_in_expires_by_the_store_clock() {
        let (_d, s, clock) = store().await;
        s.create_pending(&pending("p", START + 1_000))
            .await
            .unwrap();
        assert!(s.pending("p").await.unwrap().is_some());
        clock.advance(Duration::from_secs(1));
        assert_eq!(s.pending("p").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_refresh_token_expires_by_the_store_clock() {
        let (_d, s, clock) = store().await;
        let row = |family: &str| RefreshRow {
            family: family.into(),
            client_id: "cl".into(),
            resource: "https://rt.example/t/acme/g/eng/mcp".into(),
            tenant: "acme".into(),
            user_id: "u-1".into(),
            expires_at: START + 60_000,
        };
        s.create_refresh("a", &row("fa")).await.unwrap();
        s.create_refresh("b", &row("fb")).await.unwrap();
        clock.advance(Duration::from_millis(59_999));
        assert!(matches!(s.spend_refresh("a").await.unwrap(), Spend::Ok(_)));
        clock.advance(Duration::from_millis(1));
        assert_eq!(s.spend_refresh("b").await.unwrap(), Spend::Expired);
    }
}
