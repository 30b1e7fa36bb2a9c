//! Keyed digests of call arguments.
//!
//! Audit records carry a digest of each call's arguments rather than the arguments. A plain
//! SHA-256 of short values (a repository name, an issue number) is recovered from an
//! export by hashing guesses, so the digest is an HMAC-SHA256 under a secret of the tenant,
//! made on first use and kept in the store: the tenant's operators can still check that a
//! record belongs to given arguments, and a reader of the export alone cannot.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::hmac;

use crate::store::{Store, StoreError};

/// One tenant's digest key.
#[derive(Clone)]
pub struct DigestKey(hmac::Key);

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

impl DigestKey {
    /// The key made of `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// HMAC-SHA256 of `bytes`, hex.
    pub fn digest(&self, bytes: &[u8]) -> String {
        hex::encode(hmac::sign(&self.0, bytes))
    }
}

/// The tenants' digest keys, read from the store once per tenant and process.
#[derive(Debug)]
pub struct DigestKeys {
    store: Store,
    cache: Mutex<HashMap<String, DigestKey>>,
}

impl DigestKeys {
    /// Keys kept in `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The key of `tenant`, made on first use.
    pub async fn key(&self, tenant: &str) -> Result<DigestKey, StoreError> {
        if let Some(k) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            return Ok(k.clone());
        }
        let secret = self
            .store
            .tenant_audit_key(tenant)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no tenant {tenant}")))?;
        let bytes = hex::decode(&secret)
            .map_err(|_| StoreError::Corrupt(format!("audit key of tenant {tenant}")))?;
        let key = DigestKey::new(&bytes);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), key.clone());
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_tenant_digests_under_its_own_lasting_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::test_store(dir.path()).await;
        for t in ["acme", "globex"] {
            store.create_tenant(&t.parse().unwrap()).await.unwrap();
        }
        let keys = DigestKeys::new(store.clone());
        let acme = keys
            .key("acme")
            .await
            .unwrap()
            .digest(b"{\"repo\":\"a/b\"}");
        let globex = keys
            .key("globex")
            .await
            .unwrap()
            .digest(b"{\"repo\":\"a/b\"}");
        assert_ne!(acme, globex, "a digest means nothing outside its tenant");
        let plain = hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            b"{\"repo\":\"a/b\"}",
        ));
        assert_ne!(acme, plain, "a guess hashed without the key does not match");
        let again = DigestKeys::new(store).key("acme").await.unwrap();
        assert_eq!(
            again.digest(b"{\"repo\":\"a/b\"}"),
            acme,
            "the key outlives the process"
        );
        assert!(keys.key("initech").await.is_err());
    }
}
