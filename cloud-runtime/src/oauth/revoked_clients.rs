//! Which OAuth clients an administrator revoked in which tenant, as the bearer check asks
//! on every MCP request. An access token is verified by its signature alone, so without
//! this a revoked client's token would work until it expires; with it, a revocation at any
//! replica holds everywhere within [`FRESH`], and a request costs a map lookup, the store
//! being read at most once per [`FRESH`] for each tenant and client.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{Store, StoreError};

/// How long an answer from the store is used before it is read again.
pub const FRESH: Duration = Duration::from_secs(1);
/// Most (tenant, client) answers kept; past it they are all dropped and read again.
const MAX_ENTRIES: usize = 65_536;

/// The revoked-client answers, by tenant and client id.
#[derive(Debug, Default)]
pub struct RevokedClients {
    entries: Mutex<HashMap<(String, String), (bool, Instant)>>,
}

impl RevokedClients {
    /// Whether `client_id` is revoked in `tenant`, at most [`FRESH`] old.
    pub async fn is_revoked(
        &self,
        store: &Store,
        tenant: &str,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        let key = (tenant.to_owned(), client_id.to_owned());
        if let Some(&(revoked, at)) = self.lock().get(&key)
            && at.elapsed() < FRESH
        {
            return Ok(revoked);
        }
        let revoked = store.client_revoked(tenant, client_id).await?;
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (revoked, Instant::now()));
        Ok(revoked)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (bool, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_revocation_is_seen_within_a_second_and_only_in_its_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::test_store(dir.path()).await;
        for t in ["acme", "globex"] {
            store.create_tenant(&t.parse().unwrap()).await.unwrap();
            assert!(store.record_client_use(t, "c1").await.unwrap());
        }
        let revoked = RevokedClients::default();
        assert!(!revoked.is_revoked(&store, "acme", "c1").await.unwrap());
        assert_eq!(
            store.revoke_client_grant("acme", "c1").await.unwrap(),
            Some(true)
        );
        let deadline = Instant::now() + FRESH + Duration::from_secs(2);
        while !revoked.is_revoked(&store, "acme", "c1").await.unwrap() {
            assert!(Instant::now() < deadline, "the revocation is seen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!revoked.is_revoked(&store, "globex", "c1").await.unwrap());
        assert!(
            !revoked
                .is_revoked(&store, "acme", "never-used")
                .await
                .unwrap()
        );
    }
}
