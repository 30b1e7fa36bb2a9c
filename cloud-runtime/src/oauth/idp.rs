//! Sign-in at the tenant's OpenID Connect identity provider.
//!
//! The runtime is an ordinary confidential OIDC client of the customer's provider: discovery,
//! authorization code flow with PKCE S256, `state` (the pending authorization's id) and a
//! `nonce`, then ID-token validation — signature against the provider's JWKS (fetched again
//! once when a token names an unknown key, so key rotation needs no restart), issuer,
//! audience, expiry and nonce. The user's group claim becomes their grants.
//!
//! The provider stays the authority on who the user is and which groups they are in: when
//! it gives the runtime a refresh token, the runtime uses it to ask again
//! ([`IdpClient::recheck`]) at the user's token refreshes, at most as often as the tenant
//! allows, and a user the provider no longer knows or allows loses the grant.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use url::Url;

use crate::store::oauth::IdpRow;

/// How long discovery documents and key sets are reused.
const CACHE_TTL: Duration = Duration::from_secs(600);

/// Why sign-in at the provider failed. Messages never carry tokens or secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdpError {
    /// The provider could not be reached or answered badly.
    #[error("identity provider request failed: {0}")]
    Http(String),
    /// The discovery document is unusable.
    #[error("identity provider discovery: {0}")]
    Discovery(String),
    /// The ID token failed validation.
    #[error("ID token refused: {0}")]
    IdToken(String),
    /// The provider refused the user's grant (`invalid_grant`): it no longer knows or
    /// allows them, or the sign-in was revoked there.
    #[error("the identity provider ended the user's sign-in")]
    GrantEnded,
}

/// A refresh token the provider gave the runtime; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderRefreshToken(String);

impl ProviderRefreshToken {
    /// The token, to send to the provider or to store.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ProviderRefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderRefreshToken(..)")
    }
}

/// What a re-check at the provider found for a user it still knows and allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rechecked {
    /// Groups from the configured claim, as the provider asserts them now.
    pub groups: Vec<String>,
    /// A new refresh token, if the provider rotated it.
    pub refresh_token: Option<ProviderRefreshToken>,
    /// The new ID token, the user's proof to connectors from now on.
    pub id_token: IdToken,
}

/// What the runtime takes from a validated ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// User name (`preferred_username`, else `sub`).
    pub user: String,
    /// The account behind the name: `issuer` and `sub`, which the provider never reuses.
    pub subject: String,
    /// Groups from the configured claim.
    pub groups: Vec<String>,
    /// The provider's refresh token, for later re-checks, if it gave one.
    pub refresh_token: Option<ProviderRefreshToken>,
    /// The validated ID token itself, which the user's calls carry to connectors as the
    /// provider's proof of who they are.
    pub id_token: IdToken,
}

/// An ID token the provider signed; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct IdToken(String);

impl IdToken {
    /// The token, to store or forward.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for IdToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdToken(..)")
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
}

/// The groups a validated ID token asserts in `claim`.
fn groups_of(claims: &serde_json::Map<String, serde_json::Value>, claim: &str) -> Vec<String> {
    claims
        .get(claim)
        .and_then(|g| g.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks an issuer URL for `idp set`: https, or http on a loopback host (development).
pub fn check_issuer(issuer: &str) -> Result<(), String> {
    let url = Url::parse(issuer).map_err(|e| format!("issuer is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("issuer must be https (http only on a loopback host)".to_owned()),
    }
}

/// A client of identity providers, with discovery and key caches.
#[derive(Debug)]
pub struct IdpClient {
    http: reqwest::Client,
    discovery: Mutex<HashMap<String, (Instant, Discovery)>>,
    keys: Mutex<HashMap<String, (Instant, JwkSet)>>,
}

impl IdpClient {
    /// A client with a bounded request timeout and no redirects.
    pub fn new() -> Result<Self, IdpError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| IdpError::Http(e.to_string()))?;
        Ok(Self {
            http,
            discovery: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, IdpError> {
        self.http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| IdpError::Http(e.to_string()))?
            .json()
            .await
            .map_err(|e| IdpError::Discovery(format!("{what}: {e}")))
    }

    async fn discover(&self, issuer: &str) -> Result<Discovery, IdpError> {
        if let Some((at, d)) = self
            .discovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(issuer)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let d: Discovery = self.get_json(&url, "discovery document").await?;
        if d.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(IdpError::Discovery(format!(
                "document names issuer {}, expected {issuer}",
                d.issuer
            )));
        }
        self.discovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(issuer.to_owned(), (Instant::now(), d.clone()));
        Ok(d)
    }

    async fn jwks(&self, uri: &str, refresh: bool) -> Result<JwkSet, IdpError> {
        if !refresh
            && let Some((at, set)) = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get(uri)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(set.clone());
        }
        let set: JwkSet = self.get_json(uri, "JWKS").await?;
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uri.to_owned(), (Instant::now(), set.clone()));
        Ok(set)
    }

    /// The provider's authorization URL for a pending sign-in.
    pub async fn authorization_url(
        &self,
        idp: &IdpRow,
        state: &str,
        nonce: &str,
        challenge: &str,
        redirect_uri: &str,
        fresh: bool,
    ) -> Result<String, IdpError> {
        let d = self.discover(&idp.issuer).await?;
        let mut url = Url::parse(&d.authorization_endpoint)
            .map_err(|e| IdpError::Discovery(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &idp.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid profile")
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if fresh {
            // The user must really sign in now (an approval), not ride an earlier session;
            // `max_age=0` also makes the provider state `auth_time`.
            url.query_pairs_mut()
                .append_pair("prompt", "login")
                .append_pair("max_age", "0");
        }
        Ok(url.into())
    }

    /// Exchanges the provider's code and validates the ID token.
    pub async fn finish(
        &self,
        idp: &IdpRow,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> Result<SignedIn, IdpError> {
        let d = self.discover(&idp.issuer).await?;
        let resp: TokenResponse = self
            .http
            .post(&d.token_endpoint)
            .basic_auth(&idp.client_id, Some(&idp.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| IdpError::Http(e.to_string()))?
            .json()
            .await
            .map_err(|e| IdpError::Http(format!("token response: {e}")))?;
        let id_token = resp
            .id_token
            .ok_or_else(|| IdpError::IdToken("no id_token in the token response".into()))?;
        let claims = self.validate(idp, &d, &id_token).await?;
        if claims.get("nonce").and_then(|n| n.as_str()) != Some(nonce) {
            return Err(IdpError::IdToken(
                "nonce does not match the sign-in request".into(),
            ));
        }
        let sub = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| IdpError::IdToken("no subject".into()))?;
        let user = claims
            .get("preferred_username")
            .and_then(|v| v.as_str())
            .unwrap_or(sub)
            .to_owned();
        let subject = format!("{} {sub}", idp.issuer);
        Ok(SignedIn {
            user,
            subject,
            groups: groups_of(&claims, &idp.groups_claim),
            refresh_token: resp.refresh_token.map(ProviderRefreshToken),
            id_token: IdToken(id_token),
        })
    }

    /// Asks the provider again about the user of `subject` (`issuer sub`), with the refresh
    /// token it gave at their sign-in: their groups now, or [`IdpError::GrantEnded`] if it
    /// no longer knows or allows them. The new ID token is validated like the first one and
    /// must name the same account.
    pub async fn recheck(
        &self,
        idp: &IdpRow,
        refresh_token: &str,
        subject: &str,
    ) -> Result<Rechecked, IdpError> {
        let d = self.discover(&idp.issuer).await?;
        let resp = self
            .http
            .post(&d.token_endpoint)
            .basic_auth(&idp.client_id, Some(&idp.client_secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .map_err(|e| IdpError::Http(e.to_string()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::BAD_REQUEST || status == reqwest::StatusCode::UNAUTHORIZED
        {
            // RFC 6749 5.2: invalid_grant is the provider's "no"; anything else (a
            // misconfigured client, say) is its failure, not the user's.
            let error: Option<TokenError> = resp.json().await.ok();
            return Err(match error {
                Some(e) if e.error == "invalid_grant" => IdpError::GrantEnded,
                Some(e) => {
                    IdpError::Http(format!("token endpoint refused the refresh: {}", e.error))
                }
                None => IdpError::Http(format!("token endpoint answered {status}")),
            });
        }
        let resp: TokenResponse = resp
            .error_for_status()
            .map_err(|e| IdpError::Http(e.to_string()))?
            .json()
            .await
            .map_err(|e| IdpError::Http(format!("token response: {e}")))?;
        // Without a new ID token nothing says who the user is now: they sign in again.
        let id_token = resp.id_token.ok_or(IdpError::GrantEnded)?;
        let claims = self.validate(idp, &d, &id_token).await?;
        let sub = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if format!("{} {sub}", idp.issuer) != subject {
            return Err(IdpError::IdToken(
                "the refreshed ID token names another account".into(),
            ));
        }
        Ok(Rechecked {
            groups: groups_of(&claims, &idp.groups_claim),
            refresh_token: resp.refresh_token.map(ProviderRefreshToken),
            id_token: IdToken(id_token),
        })
    }

    async fn validate(
        &self,
        idp: &IdpRow,
        d: &Discovery,
        token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, IdpError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| IdpError::IdToken(e.to_string()))?;
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::PS256
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(IdpError::IdToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let find = |set: &JwkSet| match &header.kid {
            Some(kid) => set.find(kid).cloned(),
            None => set.keys.first().cloned(),
        };
        let jwk = match find(&self.jwks(&d.jwks_uri, false).await?) {
            Some(k) => k,
            // A key we have not seen: the provider may have rotated; look once more.
            None => find(&self.jwks(&d.jwks_uri, true).await?)
                .ok_or_else(|| IdpError::IdToken("signed with an unknown key".into()))?,
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| IdpError::IdToken(e.to_string()))?;
        let mut v = Validation::new(header.alg);
        v.set_audience(&[&idp.client_id]);
        v.set_issuer(&[&d.issuer]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 60;
        jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &v)
            .map(|t| t.claims)
            .map_err(|e| IdpError::IdToken(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_must_be_https_or_loopback_http() {
        assert!(check_issuer("https://login.example.com/realms/acme").is_ok());
        assert!(check_issuer("http://127.0.0.1:9000").is_ok());
        assert!(check_issuer("http://idp.example.com").is_err());
        assert!(check_issuer("not a url").is_err());
    }
}
