//! The identity provider's signing keys, fetched by the connector itself from inside the
//! customer network (OpenID discovery, then the JWKS), never taken from the runtime.

use std::path::Path;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;

use super::ProofError;

/// How long a fetched key set is used before it is fetched again.
const KEYS_TTL: Duration = Duration::from_secs(600);

/// The shortest time between two fetches caused by a token naming an unknown key, so that
/// a stream of forged tokens cannot make the connector hammer the provider.
const REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Time allowed for one request to the provider.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest discovery document or key set read.
const MAX_DOCUMENT: usize = 256 * 1024;

/// Why the provider's keys cannot be fetched at all (the connector refuses to start).
#[derive(Debug, thiserror::Error)]
#[error("identity provider {issuer}: {reason}")]
pub struct KeysError {
    issuer: String,
    reason: String,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Debug, Default)]
struct Cache {
    set: Option<(Instant, JwkSet)>,
    last_fetch: Option<Instant>,
}

/// The provider's published keys, cached.
#[derive(Debug)]
pub struct ProviderKeys {
    issuer: String,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<Cache>,
}

impl ProviderKeys {
    /// Keys of the provider at `issuer`, trusting `ca_bundle` (PEM) for its HTTPS
    /// certificates besides the system's roots.
    pub fn new(issuer: &str, ca_bundle: Option<&Path>) -> Result<Self, KeysError> {
        let err = |reason: String| KeysError {
            issuer: issuer.to_owned(),
            reason,
        };
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(path) = ca_bundle {
            let pem = std::fs::read(path)
                .map_err(|e| err(format!("ca_bundle {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| err(format!("ca_bundle {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(err(format!(
                    "ca_bundle {} holds no certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            http: builder.build().map_err(|e| err(e.to_string()))?,
            cache: tokio::sync::Mutex::new(Cache::default()),
        })
    }

    /// The key set to check a token signed with key `kid` against: the cached one, or a
    /// fresh one when it is stale or does not hold `kid` (the provider rotated its keys).
    pub async fn for_token(&self, kid: Option<&str>) -> Result<JwkSet, ProofError> {
        let mut cache = self.cache.lock().await;
        let holds = |set: &JwkSet| kid.is_none_or(|k| set.find(k).is_some());
        let refetch_allowed = cache
            .last_fetch
            .is_none_or(|t| t.elapsed() >= REFETCH_INTERVAL);
        match &cache.set {
            Some((at, set)) if at.elapsed() < KEYS_TTL && (holds(set) || !refetch_allowed) => {
                return Ok(set.clone());
            }
            _ => {}
        }
        cache.last_fetch = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                cache.set = Some((Instant::now(), set.clone()));
                Ok(set)
            }
            // A provider briefly away: the keys we had still verify what they verified.
            Err(e) => match &cache.set {
                Some((_, set)) if holds(set) => Ok(set.clone()),
                _ => Err(e),
            },
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, ProofError> {
        let fail = |why: String| ProofError::KeysUnavailable(format!("{url}: {why}"));
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| fail(e.to_string()))?;
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT as u64)
        {
            return Err(fail("document too large".into()));
        }
        let body = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
        if body.len() > MAX_DOCUMENT {
            return Err(fail("document too large".into()));
        }
        serde_json::from_slice(&body).map_err(|e| fail(e.to_string()))
    }

    async fn fetch(&self) -> Result<JwkSet, ProofError> {
        let issuer = self.issuer.trim_end_matches('/');
        let d: Discovery = self
            .get(&format!("{issuer}/.well-known/openid-configuration"))
            .await?;
        if d.issuer.trim_end_matches('/') != issuer {
            return Err(ProofError::KeysUnavailable(format!(
                "the discovery document names issuer {:?}, expected {issuer}",
                d.issuer
            )));
        }
        self.get(&d.jwks_uri).await
    }
}
