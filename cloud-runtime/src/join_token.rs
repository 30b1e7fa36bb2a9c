//! One-time join tokens.
//!
//! A token reads `mcpjt_<tenant>_<connector id>_<secret>`: the readable part lets an operator
//! see at a glance what it is for, and lets the connector know the identity to put in its CSR
//! before it has talked to anyone. The secret is 32 random bytes; the runtime stores only
//! SHA-256 of the whole token, so a leaked database grants nothing, and changing the readable
//! part changes the hash.

use std::time::Duration;

use aws_lc_rs::digest;
use shared::enroll::JOIN_TOKEN_PREFIX as PREFIX;
use shared::identity::{ConnectorId, TenantId};

use crate::store::{Store, StoreError, UnixMs};

/// The shortest lifetime of a join token.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// The longest lifetime of a join token: a token is a credential, short-lived by design.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a join token was not issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The lifetime is outside [`MIN_TTL`]..=[`MAX_TTL`].
    #[error("--ttl must be between 1s and 7d")]
    Ttl,
    /// The tenant does not exist.
    #[error("no tenant named {0} (create it with `cloud-runtime tenant create {0}`)")]
    NoTenant(TenantId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A join token issued and stored, as the operator is shown it.
#[derive(Debug)]
pub struct Issued {
    /// The token (its text is shown once).
    pub token: JoinToken,
    /// The connector it enrolls.
    pub connector: ConnectorId,
    /// When it stops being accepted, by the store's clock.
    pub expires_at: UnixMs,
}

/// A freshly minted token (shown once, never stored).
pub struct JoinToken {
    /// The full token text.
    pub text: String,
    /// SHA-256 of the text, hex; what the store keeps.
    pub hash: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Hashes token text for lookup.
pub fn hash(text: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, text.as_bytes()))
}

/// Mints a token for a new connector of `tenant`.
pub fn mint(tenant: &TenantId) -> (JoinToken, ConnectorId) {
    let id_bytes: [u8; 6] = rand::random();
    let secret: [u8; 32] = rand::random();
    let connector: ConnectorId = format!("c-{}", hex::encode(id_bytes))
        .parse()
        .unwrap_or_else(|_| unreachable!("hex is a valid connector id"));
    let text = format!("{PREFIX}_{tenant}_{connector}_{}", hex::encode(secret));
    let hash = hash(&text);
    (JoinToken { text, hash }, connector)
}

/// Checks a join token's lifetime.
pub fn check_ttl(ttl: Duration) -> Result<(), IssueError> {
    if (MIN_TTL..=MAX_TTL).contains(&ttl) {
        Ok(())
    } else {
        Err(IssueError::Ttl)
    }
}

/// Mints a join token for a new connector of `tenant`, valid for `ttl` from now by the
/// store's clock, and stores its hash.
pub async fn issue(store: &Store, tenant: &TenantId, ttl: Duration) -> Result<Issued, IssueError> {
    check_ttl(ttl)?;
    if !store.tenant_exists(tenant).await? {
        return Err(IssueError::NoTenant(tenant.clone()));
    }
    let (token, connector) = mint(tenant);
    let expires_at = store
        .now_ms()
        .saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    store
        .create_join_token(&token.hash, tenant, &connector, expires_at)
        .await?;
    Ok(Issued {
        token,
        connector,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shared::clock::ManualClock;

    use super::*;

    #[test]
    fn minted_tokens_parse_and_hash_stably() {
        let t: TenantId = "acme".parse().unwrap();
        let (tok, id) = mint(&t);
        let claims = shared::enroll::TokenClaims::parse(&tok.text).unwrap();
        assert_eq!(claims.tenant, t);
        assert_eq!(claims.connector, id);
        assert_eq!(hash(&tok.text), tok.hash);
        assert!(!format!("{tok:?}").contains(&tok.text));
    }

    #[test]
    fn lifetimes_outside_one_second_to_seven_days_are_refused() {
        for ttl in [
            Duration::ZERO,
            Duration::from_millis(999),
            MAX_TTL + Duration::from_secs(1),
        ] {
            assert!(matches!(check_ttl(ttl), Err(IssueError::Ttl)), "{ttl:?}");
        }
        for ttl in [MIN_TTL, Duration::from_secs(900), MAX_TTL] {
            assert!(check_ttl(ttl).is_ok(), "{ttl:?}");
        }
    }

    #[tokio::test]
    async fn an_issued_token_expires_after_its_ttl_by_the_store_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at(5_000_000));
        let store = crate::store::test_store(dir.path())
            .await
            .with_clock(clock.clone());
        let t: TenantId = "acme".parse().unwrap();
        assert!(matches!(
            issue(&store, &t, Duration::from_secs(60)).await,
            Err(IssueError::NoTenant(_))
        ));
        store.create_tenant(&t).await.unwrap();
        let issued = issue(&store, &t, Duration::from_secs(60)).await.unwrap();
        assert_eq!(issued.expires_at, 5_060_000);
        let row = store.join_token(&issued.token.hash).await.unwrap().unwrap();
        assert_eq!(row.connector_id, issued.connector);
        clock.advance(Duration::from_secs(60));
        assert!(matches!(
            store
                .complete_enrollment(&issued.token.hash, &t, &issued.connector, "01", 0)
                .await,
            Err(StoreError::TokenAlreadyUsed)
        ));
    }
}
