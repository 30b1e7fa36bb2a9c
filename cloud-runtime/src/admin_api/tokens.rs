//! Admin API tokens: for automation acting on one tenant's administration. A token is
//! made on the runtime's host, shown once, and kept only as a hash; it carries the
//! [`Scope`]s it was made with and stops working at its expiry or its revocation.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use shared::identity::TenantId;

use crate::oauth::secret;
use crate::store::admin_tokens::AdminTokenRow;
use crate::store::{Store, StoreError};

/// The prefix of every admin token, so that one pasted in the wrong place is recognised.
pub const PREFIX: &str = "crt_admin_";

/// The shortest and longest lifetime a token may be given.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// See [`MIN_TTL`].
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read the connectors and their state.
    ConnectorsRead,
    /// Create join tokens and revoke connectors.
    ConnectorsWrite,
    /// Read the policy and its revisions, and validate a proposed one.
    PolicyRead,
    /// Apply a policy.
    PolicyWrite,
    /// Read the tenant's users (never their secrets).
    UsersRead,
    /// Add and remove local users.
    UsersWrite,
    /// Read the tenant's agents (never their keys).
    AgentsRead,
    /// Create and remove agents, rotate their keys, bind them to OAuth clients.
    AgentsWrite,
    /// Read the tenant's gateways and their MCP URLs.
    GatewaysRead,
    /// Create and remove gateways.
    GatewaysWrite,
    /// Search, export and verify the tenant's audit trail.
    AuditRead,
    /// Read the OAuth clients that act in the tenant.
    ClientsRead,
    /// Revoke an OAuth client in the tenant.
    ClientsWrite,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 13] = [
        Scope::ConnectorsRead,
        Scope::ConnectorsWrite,
        Scope::PolicyRead,
        Scope::PolicyWrite,
        Scope::UsersRead,
        Scope::UsersWrite,
        Scope::AgentsRead,
        Scope::AgentsWrite,
        Scope::GatewaysRead,
        Scope::GatewaysWrite,
        Scope::AuditRead,
        Scope::ClientsRead,
        Scope::ClientsWrite,
    ];

    /// Its name, as tokens and the OpenAPI document spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ConnectorsRead => "connectors:read",
            Scope::ConnectorsWrite => "connectors:write",
            Scope::PolicyRead => "policy:read",
            Scope::PolicyWrite => "policy:write",
            Scope::UsersRead => "users:read",
            Scope::UsersWrite => "users:write",
            Scope::AgentsRead => "agents:read",
            Scope::AgentsWrite => "agents:write",
            Scope::GatewaysRead => "gateways:read",
            Scope::GatewaysWrite => "gateways:write",
            Scope::AuditRead => "audit:read",
            Scope::ClientsRead => "clients:read",
            Scope::ClientsWrite => "clients:write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| TokenError::UnknownScope(s.chars().take(64).collect()))
    }
}

/// Parses `connectors:read,connectors:write`: at least one scope, each known.
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, TokenError> {
    let mut scopes = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Scope::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(TokenError::NoScope);
    }
    Ok(scopes)
}

/// Why a token could not be made or revoked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The tenant does not exist.
    #[error("no tenant named {0}")]
    NoTenant(TenantId),
    /// A scope no endpoint knows.
    #[error(
        "unknown scope {0:?}; the scopes are {all}",
        all = Scope::ALL.map(Scope::as_str).join(", ")
    )]
    UnknownScope(String),
    /// No scope given.
    #[error("a token needs at least one scope")]
    NoScope,
    /// The name is not 1 to 64 of the allowed characters.
    #[error("token name {0:?} must be 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    Name(String),
    /// The lifetime is out of range.
    #[error("--ttl must be between 1 minute and 366 days")]
    Ttl,
    /// No such token of this tenant.
    #[error("tenant {tenant} has no admin token {id}")]
    NoToken {
        /// Tenant.
        tenant: TenantId,
        /// The id asked for.
        id: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token just made: the secret (shown once) and what the store keeps.
#[derive(Debug)]
pub struct Issued {
    /// The token to hand over.
    pub token: String,
    /// Its row.
    pub row: AdminTokenRow,
}

/// Makes a token for `tenant`, named `name`, with `scopes`, valid for `ttl`.
pub async fn issue(
    store: &Store,
    tenant: &TenantId,
    name: &str,
    scopes: &[Scope],
    ttl: Duration,
) -> Result<Issued, TokenError> {
    if !crate::identity::valid_name(name) {
        return Err(TokenError::Name(name.chars().take(80).collect()));
    }
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(TokenError::Ttl);
    }
    if scopes.is_empty() {
        return Err(TokenError::NoScope);
    }
    if !store.tenant_exists(tenant).await? {
        return Err(TokenError::NoTenant(tenant.clone()));
    }
    let token = secret::generate(PREFIX);
    let now = store.now_ms();
    let row = AdminTokenRow {
        id: format!("adm-{}", hex::encode(rand::random::<[u8; 8]>())),
        tenant: tenant.to_string(),
        name: name.to_owned(),
        scopes: scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
        created_at: now,
        expires_at: now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
        revoked_at: None,
        last_used: None,
    };
    store
        .create_admin_token(&row, &secret::hash(&token))
        .await?;
    Ok(Issued { token, row })
}

/// Revokes `tenant`'s token `id`; `Ok(false)` if it was revoked already.
pub async fn revoke(store: &Store, tenant: &TenantId, id: &str) -> Result<bool, TokenError> {
    let ours = store
        .admin_tokens(tenant.as_str())
        .await?
        .into_iter()
        .find(|t| t.id == id);
    match ours {
        None => Err(TokenError::NoToken {
            tenant: tenant.clone(),
            id: id.chars().take(80).collect(),
        }),
        Some(t) if t.revoked_at.is_some() => Ok(false),
        Some(_) => Ok(store.revoke_admin_token(id).await?),
    }
}
