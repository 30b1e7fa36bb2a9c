//! What an operator sets up in a tenant besides its policy: local users, agents, gateways
//! and the identity provider. The command line parses names and prints; the rules (the
//! tenant must exist, secrets are made here and only their hashes stored, what a gateway's
//! tool pattern may be) are here.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shared::identity::{TenantId, UserId};

use crate::oauth::{idp, secret};
use crate::store::oauth::{AgentRow, IdpRow};
use crate::store::{Store, StoreError};

/// Why a tenant could not be changed as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenancyError {
    /// The tenant does not exist.
    #[error("no tenant named {0}")]
    NoTenant(TenantId),
    /// The tenant has no such user.
    #[error("tenant {tenant} has no user named {name}")]
    NoUser {
        /// Tenant.
        tenant: TenantId,
        /// User name.
        name: String,
    },
    /// The tenant has no such agent.
    #[error("tenant {tenant} has no agent named {name}")]
    NoAgent {
        /// Tenant.
        tenant: TenantId,
        /// Agent name.
        name: String,
    },
    /// A gateway tool pattern holds characters no tool name has.
    #[error(
        "--tools pattern {0:?} may contain only letters, digits, '_', '.', '-' and a trailing '*'"
    )]
    ToolPattern(String),
    /// A gateway would expose nothing.
    #[error("--tools must name at least one tool or pattern")]
    NoTools,
    /// No OAuth client registered with this id.
    #[error("no OAuth client {0} has registered")]
    NoClient(String),
    /// The identity provider's issuer is not acceptable.
    #[error("{0}")]
    Issuer(String),
    /// The identity provider's client secret file could not be read.
    #[error("reading {}", path.display())]
    ReadSecret {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The identity provider's client id or secret is empty.
    #[error("the client id and the client secret must not be empty")]
    EmptyClient,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A local user just added: their id and sign-in secret (shown once, stored hashed).
pub struct AddedUser {
    /// The user's stable id.
    pub id: UserId,
    /// The sign-in secret.
    pub secret: String,
}

impl fmt::Debug for AddedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddedUser")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// An agent's key, just made (shown once, stored hashed).
pub struct AgentKey(pub String);

impl fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgentKey(..)")
    }
}

async fn existing(store: &Store, tenant: &TenantId) -> Result<(), TenancyError> {
    if store.tenant_exists(tenant).await? {
        Ok(())
    } else {
        Err(TenancyError::NoTenant(tenant.clone()))
    }
}

/// Adds local user `name` with `groups` (their grants) to `tenant`, with a new sign-in
/// secret.
pub async fn add_user(
    store: &Store,
    tenant: &TenantId,
    name: &str,
    groups: &[String],
) -> Result<AddedUser, TenancyError> {
    existing(store, tenant).await?;
    let secret = secret::generate("mcpus_");
    let id = store
        .create_user(tenant.as_str(), name, groups, &secret::hash(&secret))
        .await?;
    Ok(AddedUser { id, secret })
}

/// Removes user `name` of `tenant`: their refresh tokens and browser sessions end now.
pub async fn remove_user(store: &Store, tenant: &TenantId, name: &str) -> Result<(), TenancyError> {
    if store.remove_user(tenant.as_str(), name).await? {
        Ok(())
    } else {
        Err(TenancyError::NoUser {
            tenant: tenant.clone(),
            name: name.to_owned(),
        })
    }
}

/// Registers agent `name` of `tenant` with `role` (and optionally an OAuth client id bound
/// to it), with a new key.
pub async fn create_agent(
    store: &Store,
    tenant: &TenantId,
    name: &str,
    role: &str,
    oauth_client_id: Option<String>,
) -> Result<AgentKey, TenancyError> {
    existing(store, tenant).await?;
    let key = secret::generate("mcpak_");
    store
        .create_agent(
            &AgentRow {
                tenant: tenant.to_string(),
                name: name.to_owned(),
                role: role.to_owned(),
                oauth_client_id,
            },
            &secret::hash(&key),
        )
        .await?;
    Ok(AgentKey(key))
}

/// Gives agent `name` of `tenant` a new key (returned, to be shown once): the old one is
/// refused from the next request on, whatever holds it.
pub async fn rotate_agent_key(
    store: &Store,
    tenant: &TenantId,
    name: &str,
) -> Result<AgentKey, TenancyError> {
    let key = secret::generate("mcpak_");
    if store
        .set_agent_key(tenant.as_str(), name, &secret::hash(&key))
        .await?
    {
        Ok(AgentKey(key))
    } else {
        Err(TenancyError::NoAgent {
            tenant: tenant.clone(),
            name: name.to_owned(),
        })
    }
}

/// Removes agent `name` of `tenant`: its key is refused from the next request on.
pub async fn remove_agent(
    store: &Store,
    tenant: &TenantId,
    name: &str,
) -> Result<(), TenancyError> {
    if store.remove_agent(tenant.as_str(), name).await? {
        Ok(())
    } else {
        Err(TenancyError::NoAgent {
            tenant: tenant.clone(),
            name: name.to_owned(),
        })
    }
}

/// A user as administrators see them: never their secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserView {
    /// Stable id.
    pub id: String,
    /// Current name.
    pub name: String,
    /// Groups (their grants).
    pub groups: Vec<String>,
}

/// Every user of `tenant`, by name.
pub async fn users(store: &Store, tenant: &TenantId) -> Result<Vec<UserView>, TenancyError> {
    Ok(store
        .users(tenant.as_str())
        .await?
        .into_iter()
        .map(|u| UserView {
            id: u.id.to_string(),
            name: u.name,
            groups: u.groups,
        })
        .collect())
}

/// Binds `tenant`'s agent `name` to the registered OAuth client `client_id`, for a client
/// that cannot send an agent key: its users' tokens then act as that agent.
pub async fn bind_agent_client(
    store: &Store,
    tenant: &TenantId,
    name: &str,
    client_id: &str,
) -> Result<(), TenancyError> {
    if store.client(client_id).await?.is_none() {
        return Err(TenancyError::NoClient(
            client_id.chars().take(128).collect(),
        ));
    }
    if store
        .bind_agent_client(tenant.as_str(), name, client_id)
        .await?
    {
        Ok(())
    } else {
        Err(TenancyError::NoAgent {
            tenant: tenant.clone(),
            name: name.to_owned(),
        })
    }
}

/// A gateway's tool patterns, trimmed, empty ones dropped: each names tools by letters,
/// digits, `_`, `.` and `-`, with an optional trailing `*` matching any suffix.
pub fn tool_patterns(raw: Vec<String>) -> Result<Vec<String>, TenancyError> {
    let tools: Vec<String> = raw
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if let Some(bad) = tools.iter().find(|t| {
        !t.trim_end_matches('*')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    }) {
        return Err(TenancyError::ToolPattern(bad.clone()));
    }
    if tools.is_empty() {
        return Err(TenancyError::NoTools);
    }
    Ok(tools)
}

/// A tenant's identity provider, checked, before it is stored.
#[derive(Clone)]
pub struct IdpSettings {
    issuer: String,
    client_id: String,
    client_secret: String,
    groups_claim: String,
    recheck: Duration,
}

impl fmt::Debug for IdpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdpSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("groups_claim", &self.groups_claim)
            .field("recheck", &self.recheck)
            .finish_non_exhaustive()
    }
}

impl IdpSettings {
    /// Checks the issuer (https, or http on a loopback host) and reads the client secret
    /// from `client_secret_file` (never from the command line); neither client id nor
    /// secret may be empty. `recheck`: how often a user's groups are asked again.
    pub fn new(
        issuer: String,
        client_id: String,
        client_secret_file: &Path,
        groups_claim: String,
        recheck: Duration,
    ) -> Result<Self, TenancyError> {
        idp::check_issuer(&issuer).map_err(TenancyError::Issuer)?;
        let client_secret = std::fs::read_to_string(client_secret_file)
            .map_err(|source| TenancyError::ReadSecret {
                path: client_secret_file.to_owned(),
                source,
            })?
            .trim()
            .to_owned();
        if client_secret.is_empty() || client_id.is_empty() {
            return Err(TenancyError::EmptyClient);
        }
        Ok(Self {
            issuer,
            client_id,
            client_secret,
            groups_claim,
            recheck,
        })
    }
}

/// Users of `tenant` sign in at the provider of `settings` from now on.
pub async fn set_idp(
    store: &Store,
    tenant: &TenantId,
    settings: IdpSettings,
) -> Result<(), TenancyError> {
    existing(store, tenant).await?;
    store
        .set_idp(&IdpRow {
            tenant: tenant.to_string(),
            issuer: settings.issuer.trim_end_matches('/').to_owned(),
            client_id: settings.client_id,
            client_secret: settings.client_secret,
            groups_claim: settings.groups_claim,
            recheck_secs: i64::try_from(settings.recheck.as_secs()).unwrap_or(i64::MAX),
        })
        .await?;
    Ok(())
}

/// The identity provider of `tenant`, if it has one.
pub async fn idp(store: &Store, tenant: &TenantId) -> Result<Option<IdpRow>, TenancyError> {
    existing(store, tenant).await?;
    Ok(store.idp(tenant.as_str()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store, TenantId) {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::test_store(dir.path()).await;
        let t: TenantId = "acme".parse().unwrap();
        s.create_tenant(&t).await.unwrap();
        (dir, s, t)
    }

    #[test]
    fn tool_patterns_are_trimmed_and_checked() {
        let raw = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            tool_patterns(raw(&[" github_* ", "", "diag.ping"])).unwrap(),
            raw(&["github_*", "diag.ping"])
        );
        assert!(matches!(
            tool_patterns(raw(&["git*hub"])),
            Err(TenancyError::ToolPattern(p)) if p == "git*hub"
        ));
        assert!(matches!(
            tool_patterns(raw(&[" ", ""])),
            Err(TenancyError::NoTools)
        ));
    }

    #[tokio::test]
    async fn users_and_agents_need_an_existing_tenant_and_keep_only_secret_hashes() {
        let (_d, s, t) = store().await;
        let other: TenantId = "globex".parse().unwrap();
        assert!(matches!(
            add_user(&s, &other, "alice", &[]).await,
            Err(TenancyError::NoTenant(_))
        ));
        let added = add_user(&s, &t, "alice", &["eng".to_owned()])
            .await
            .unwrap();
        assert!(added.secret.starts_with("mcpus_"));
        assert!(!format!("{added:?}").contains(&added.secret));
        let user = s
            .check_user("acme", "alice", &secret::hash(&added.secret))
            .await
            .unwrap();
        assert!(user.is_some());
        let key = create_agent(&s, &t, "bot", "triage", None).await.unwrap();
        assert!(!format!("{key:?}").contains(&key.0));
        assert!(
            s.agent_by_key(&secret::hash(&key.0))
                .await
                .unwrap()
                .is_some()
        );
        remove_agent(&s, &t, "bot").await.unwrap();
        assert!(matches!(
            remove_agent(&s, &t, "bot").await,
            Err(TenancyError::NoAgent { .. })
        ));
        remove_user(&s, &t, "alice").await.unwrap();
        assert!(matches!(
            remove_user(&s, &t, "alice").await,
            Err(TenancyError::NoUser { .. })
        ));
    }

    #[tokio::test]
    async fn an_identity_provider_needs_a_client_secret_and_keeps_it_out_of_debug() {
        let (d, s, t) = store().await;
        let file = d.path().join("secret");
        std::fs::write(&file, "  \n").unwrap();
        let settings = |file: &Path| {
            IdpSettings::new(
                "https://idp.example/".into(),
                "rt".into(),
                file,
                "groups".into(),
                Duration::from_secs(3600),
            )
        };
        assert!(matches!(settings(&file), Err(TenancyError::EmptyClient)));
        std::fs::write(&file, "s3cret\n").unwrap();
        let ok = settings(&file).unwrap();
        assert!(!format!("{ok:?}").contains("s3cret"));
        set_idp(&s, &t, ok).await.unwrap();
        let row = idp(&s, &t).await.unwrap().unwrap();
        assert_eq!(row.issuer, "https://idp.example");
        assert_eq!(row.client_secret, "s3cret");
        assert_eq!(row.recheck_secs, 3600);
    }
}
