//! What the vault holds: named entries, each a secret with metadata. Secrets are
//! [`SecretString`]s, zeroed when dropped and printed as `[REDACTED]` by `Debug`; nothing
//! here implements `Display` for a secret.
//!
//! Names by convention:
//! - `provider/<name>/client_secret`: the OAuth client secret of a provider instance;
//! - `provider/<name>/proxy_password`: the password of its proxy's `proxy_user`;
//! - `user/<provider>/<user>`: a user's access token (and refresh token) there, written by
//!   the connector after the user connected, or by an admin (`vault set`) as a PAT;
//! - anything else an operator wants to keep (proxy credentials, ...).

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Longest entry name.
pub const MAX_NAME: usize = 200;
/// Largest secret accepted.
pub const MAX_SECRET: usize = 64 * 1024;

/// Why an entry name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "vault entry names are 1 to {MAX_NAME} of letters, digits and '_', '-', '.', '@', '/', without empty, '.' or '..' segments"
)]
pub struct BadName;

/// A checked entry name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntryName(String);

impl EntryName {
    /// Checks a name.
    pub fn parse(s: &str) -> Result<Self, BadName> {
        let ok = !s.is_empty()
            && s.len() <= MAX_NAME
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.@/".contains(&b))
            && s.split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadName)
        }
    }

    /// The OAuth client secret of provider instance `provider`.
    pub fn client_secret(provider: &str) -> Result<Self, BadName> {
        Self::parse(&format!("provider/{provider}/client_secret"))
    }

    /// The password of the proxy user of provider instance `provider` (its `proxy_user`).
    pub fn proxy_password(provider: &str) -> Result<Self, BadName> {
        Self::parse(&format!("provider/{provider}/proxy_password"))
    }

    /// `user`'s token at provider instance `provider`.
    pub fn user_token(provider: &str, user: &str) -> Result<Self, BadName> {
        Self::parse(&format!("user/{provider}/{user}"))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EntryName {
    type Error = BadName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EntryName> for String {
    fn from(n: EntryName) -> Self {
        n.0
    }
}

impl std::fmt::Display for EntryName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of secret an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Set by an operator with `vault set`.
    #[default]
    Generic,
    /// A user's OAuth tokens, written by the connector.
    UserToken,
}

/// One secret with its metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What it is.
    pub kind: EntryKind,
    /// The secret (an access token, a client secret, a password).
    pub secret: SecretString,
    /// A refresh token, for OAuth user tokens that have one.
    pub refresh: Option<SecretString>,
    /// When the secret expires, Unix ms.
    pub expires_at: Option<i64>,
    /// When the refresh token expires, Unix ms.
    pub refresh_expires_at: Option<i64>,
    /// Granted scopes, for OAuth tokens.
    pub scope: Option<String>,
    /// The upstream account the token belongs to (its login), once known.
    pub account: Option<String>,
    /// When it was first stored, Unix ms.
    pub created_at: i64,
    /// When it was last changed, Unix ms.
    pub updated_at: i64,
}

/// An entry's metadata, without its secret: what `vault list` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: EntryKind,
    /// Whether a refresh token is kept too.
    pub has_refresh: bool,
    /// Expiry, Unix ms.
    pub expires_at: Option<i64>,
    /// Upstream account.
    pub account: Option<String>,
    /// Created, Unix ms.
    pub created_at: i64,
    /// Updated, Unix ms.
    pub updated_at: i64,
}

impl Entry {
    /// A generic secret set now.
    pub fn generic(secret: SecretString, now: i64) -> Self {
        Self {
            kind: EntryKind::Generic,
            secret,
            refresh: None,
            expires_at: None,
            refresh_expires_at: None,
            scope: None,
            account: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The metadata of this entry under `name`.
    pub fn info(&self, name: &EntryName) -> EntryInfo {
        EntryInfo {
            name: name.0.clone(),
            kind: self.kind,
            has_refresh: self.refresh.is_some(),
            expires_at: self.expires_at,
            account: self.account.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The serialized form (inside the encryption only).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoredEntry {
    #[serde(default)]
    kind: EntryKind,
    secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl Drop for StoredEntry {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret.zeroize();
        if let Some(r) = &mut self.refresh {
            r.zeroize();
        }
    }
}

impl From<&Entry> for StoredEntry {
    fn from(e: &Entry) -> Self {
        Self {
            kind: e.kind,
            secret: e.secret.expose_secret().to_owned(),
            refresh: e.refresh.as_ref().map(|r| r.expose_secret().to_owned()),
            expires_at: e.expires_at,
            refresh_expires_at: e.refresh_expires_at,
            scope: e.scope.clone(),
            account: e.account.clone(),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

impl From<&StoredEntry> for Entry {
    fn from(s: &StoredEntry) -> Self {
        Self {
            kind: s.kind,
            secret: SecretString::from(s.secret.clone()),
            refresh: s.refresh.clone().map(SecretString::from),
            expires_at: s.expires_at,
            refresh_expires_at: s.refresh_expires_at,
            scope: s.scope.clone(),
            account: s.account.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(EntryName::parse("provider/ghes/client_secret").is_ok());
        assert!(EntryName::user_token("ghes", "alice@corp").is_ok());
        for bad in ["", "a//b", "../x", "a/./b", "a b", "x\n"] {
            assert!(EntryName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let e = Entry::generic(SecretString::from("hunter2-very-secret"), 1);
        let text = format!("{e:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
