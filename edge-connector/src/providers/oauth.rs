//! Acting on behalf of users: each user connects their own upstream account once, with the
//! upstream's OAuth authorization code flow, and the connector keeps their tokens in the
//! vault and refreshes them.
//!
//! ```text
//! tool call, no token ─▶ state (+ PKCE verifier on GitLab), bound to the user, kept here
//!                     ─▶ AuthorizationRequired{authorize_url with state} to the runtime,
//!                        which asks the user (URL elicitation) and checks their browser
//! upstream consent page ─▶ runtime callback ─▶ tunnel ─▶ AuthorizeCallback{user, state, code}
//!                     ─▶ code exchanged here with the client secret (+ verifier) ─▶ vault
//! ```
//!
//! The client secret and the verifier never leave the connector; the runtime sees only the
//! consent URL and the code (which is useless without them). GitHub Apps issue 8-hour user
//! tokens with single-use refresh tokens; GitLab 2-hour tokens with rotating refresh tokens;
//! both are refreshed here, one refresh per user at a time. A refresh the upstream refuses
//! (grant revoked) forgets the tokens, so the next call asks the user again instead of
//! failing forever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use shared::call::CallFailure;
use shared::clock::now_ms;
use shared::wire::{self, ErrorCode};
use tokio::sync::Mutex as AsyncMutex;
use zeroize::Zeroizing;

use super::http::Upstream;
use crate::config::{GithubApp, OAuthConfig, ProviderKind};
use crate::vault::{Entry, EntryKind, EntryName, Vault};

/// How long a user has to finish connecting.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Most connections in progress at once.
const MAX_PENDING: usize = 1024;
/// Most connections in progress for one user (each retried call makes a new link; the
/// oldest give way, so one user's retry loop cannot lock everyone else out).
const MAX_PENDING_PER_USER: usize = 4;
/// Tokens this close to expiry are refreshed first.
const EXPIRY_MARGIN_MS: i64 = 60_000;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

struct Pending {
    user: String,
    verifier: Option<Zeroizing<String>>,
    created: Instant,
}

/// The OAuth client of one provider instance.
pub struct OAuthClient {
    provider: String,
    kind: ProviderKind,
    app: GithubApp,
    client_id: String,
    scopes: Vec<String>,
    authorize_url: url::Url,
    token_url: url::Url,
    redirect_uri: url::Url,
    pending: Mutex<HashMap<String, Pending>>,
    refreshing: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn failure(code: ErrorCode, msg: impl Into<String>) -> CallFailure {
    CallFailure::new(code, msg)
}

impl OAuthClient {
    /// The client of `provider` (a `kind` instance at `web`), redirecting users back to
    /// `redirect_uri`.
    pub fn new(
        provider: &str,
        kind: ProviderKind,
        web: &url::Url,
        config: &OAuthConfig,
        redirect_uri: url::Url,
    ) -> Result<Self, String> {
        let join = |p: &str| web.join(p).map_err(|e| format!("{p}: {e}"));
        let (authorize, token) = match kind {
            ProviderKind::Github => ("login/oauth/authorize", "login/oauth/access_token"),
            ProviderKind::Gitlab => ("oauth/authorize", "oauth/token"),
        };
        Ok(Self {
            provider: provider.to_owned(),
            kind,
            app: config.app,
            client_id: config.client_id.clone(),
            scopes: config.scopes.clone(),
            authorize_url: join(authorize)?,
            token_url: join(token)?,
            redirect_uri,
            pending: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(HashMap::new()),
        })
    }

    fn client(&self, secret: Option<&SecretString>) -> Client {
        let mut c = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(self.authorize_url.clone()))
            .set_token_uri(TokenUrl::from_url(self.token_url.clone()))
            .set_auth_type(AuthType::RequestBody);
        if let Some(s) = secret {
            c = c.set_client_secret(ClientSecret::new(s.expose_secret().to_owned()));
        }
        c.set_redirect_uri(RedirectUrl::from_url(self.redirect_uri.clone()))
    }

    /// Starts connecting `user`: a fresh `state` (and PKCE verifier where the upstream
    /// supports it) bound to them, and the consent URL carrying it.
    pub fn start(
        &self,
        user: &str,
        display_name: &str,
    ) -> Result<wire::AuthorizationRequest, CallFailure> {
        let client = self.client(None);
        let mut request = client.authorize_url(CsrfToken::new_random);
        if self.kind == ProviderKind::Github && self.app == GithubApp::GithubApp {
            // GitHub Apps take their permissions from the app, not from scopes.
        } else {
            request = request.add_scopes(self.scopes.iter().cloned().map(Scope::new));
        }
        let verifier = if self.kind == ProviderKind::Gitlab {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            Some(Zeroizing::new(verifier.secret().clone()))
        } else {
            // GHES offers no PKCE: the state binding and the client secret, which never
            // leaves this machine, carry the weight.
            None
        };
        let (url, state) = request.url();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.created.elapsed() < PENDING_TTL);
        let mut own: Vec<(String, Instant)> = pending
            .iter()
            .filter(|(_, p)| p.user == user)
            .map(|(state, p)| (state.clone(), p.created))
            .collect();
        if own.len() >= MAX_PENDING_PER_USER {
            own.sort_by_key(|(_, created)| *created);
            for (state, _) in own.iter().take(own.len() + 1 - MAX_PENDING_PER_USER) {
                pending.remove(state);
            }
        }
        if pending.len() >= MAX_PENDING {
            return Err(failure(
                ErrorCode::Unavailable,
                "too many account connections are in progress; retry in a few minutes",
            )
            .retry_after(Duration::from_secs(60)));
        }
        pending.insert(
            state.secret().clone(),
            Pending {
                user: user.to_owned(),
                verifier,
                created: Instant::now(),
            },
        );
        Ok(wire::AuthorizationRequest {
            provider: self.provider.clone(),
            authorize_url: url.to_string(),
            state: state.secret().clone(),
            expires_in_ms: u64::try_from(PENDING_TTL.as_millis()).unwrap_or(u64::MAX),
            display_name: display_name.to_owned(),
        })
    }

    /// The failure that asks `user` to connect (with a fresh consent URL).
    pub fn required(&self, user: &str, display_name: &str) -> CallFailure {
        match self.start(user, display_name) {
            Ok(request) => {
                let mut f = failure(
                    ErrorCode::AuthorizationRequired,
                    format!(
                        "connect your {display_name} account first: open the link the client shows, sign in and allow access, then retry"
                    ),
                );
                f.authorization = Some(Box::new(request));
                f
            }
            Err(f) => f,
        }
    }

    /// Whether `state` is one of ours.
    pub fn owns(&self, state: &str) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(state)
    }

    /// Finishes connecting: checks the state belongs to `user`, exchanges the code, stores
    /// the tokens. Returns the entry stored.
    pub async fn finish(
        &self,
        http: &Upstream,
        vault: &Arc<Vault>,
        secret: &SecretString,
        user: &str,
        state: &str,
        code: &str,
    ) -> Result<Entry, CallFailure> {
        let pending = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            match p.remove(state) {
                Some(pe) if pe.created.elapsed() < PENDING_TTL && pe.user == user => pe,
                Some(pe) if pe.user != user => {
                    // Put it back: it may still be finished by its own user.
                    p.insert(state.to_owned(), pe);
                    return Err(failure(
                        ErrorCode::Denied,
                        "this authorization was started by another user",
                    ));
                }
                _ => {
                    return Err(failure(
                        ErrorCode::InvalidArguments,
                        "unknown or expired authorization; start again from the tool call",
                    ));
                }
            }
        };
        let client = self.client(Some(secret));
        let mut exchange = client.exchange_code(AuthorizationCode::new(code.to_owned()));
        if let Some(v) = &pending.verifier {
            exchange = exchange.set_pkce_verifier(PkceCodeVerifier::new(v.to_string()));
        }
        let token = exchange
            .request_async(&http.token_http())
            .await
            .map_err(|e| {
                tracing::warn!(provider = %self.provider, error = %describe(&e), "code exchange refused");
                failure(
                    ErrorCode::Forbidden,
                    format!("{} refused the authorization code; start again", self.provider),
                )
            })?;
        let entry = self.entry_of(&token, None);
        store(vault, &self.name(user)?, entry.clone()).await?;
        tracing::info!(provider = %self.provider, %user, "upstream account connected");
        Ok(entry)
    }

    fn name(&self, user: &str) -> Result<EntryName, CallFailure> {
        EntryName::user_token(&self.provider, user).map_err(|_| {
            failure(
                ErrorCode::InvalidArguments,
                "the user name cannot name a vault entry",
            )
        })
    }

    fn entry_of(&self, t: &oauth2::basic::BasicTokenResponse, old: Option<&Entry>) -> Entry {
        let now = now_ms();
        Entry {
            kind: EntryKind::UserToken,
            secret: SecretString::from(t.access_token().secret().clone()),
            // A refresh answer without a new refresh token keeps the old one (GitLab
            // always rotates; GitHub Apps always rotate; OAuth Apps have none).
            refresh: t
                .refresh_token()
                .map(|r| SecretString::from(r.secret().clone()))
                .or_else(|| old.and_then(|o| o.refresh.clone())),
            expires_at: t
                .expires_in()
                .map(|d| now + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)),
            refresh_expires_at: None,
            scope: t
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
            account: old.and_then(|o| o.account.clone()),
            created_at: old.map_or(now, |o| o.created_at),
            updated_at: now,
        }
    }

    fn lock_for(&self, user: &str) -> Arc<AsyncMutex<()>> {
        self.refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(user.to_owned())
            .or_default()
            .clone()
    }

    /// `user`'s usable access token: the stored one, refreshed first if it is about to
    /// expire or is the `rejected` one the upstream just refused. `Ok(None)` when the user
    /// has no usable token and must connect again; a transient failure (the token endpoint
    /// unreachable or erring, the client secret missing) is an error and keeps the tokens.
    pub async fn token(
        &self,
        http: &Upstream,
        vault: &Arc<Vault>,
        secret: Option<&SecretString>,
        user: &str,
        rejected: Option<&SecretString>,
    ) -> Result<Option<SecretString>, CallFailure> {
        let force = rejected.is_some();
        let name = self.name(user)?;
        let fresh = |e: &Entry| e.expires_at.is_none_or(|t| t - EXPIRY_MARGIN_MS > now_ms());
        let Some(seen) = load(vault, &name).await? else {
            return Ok(None);
        };
        if !force && fresh(&seen) {
            return Ok(Some(seen.secret));
        }
        // One refresh per user at a time: refresh tokens are single-use.
        let lock = self.lock_for(user);
        let _guard = lock.lock().await;
        let Some(entry) = load(vault, &name).await? else {
            return Ok(None);
        };
        // Another call may have refreshed it since the upstream refused ours: then the
        // stored token is new and its single-use refresh token must not be spent again.
        let replaced = rejected.is_some_and(|r| r.expose_secret() != entry.secret.expose_secret());
        if fresh(&entry) && (replaced || !force) {
            return Ok(Some(entry.secret));
        }
        let Some(refresh) = entry.refresh.as_ref() else {
            // Expired, or refused by the upstream, and nothing to renew it with.
            forget(vault, &name).await?;
            return Ok(None);
        };
        let Some(secret) = secret else {
            return Err(failure(
                ErrorCode::Internal,
                format!(
                    "the {} OAuth app's client secret is missing from the connector's vault, so tokens cannot be refreshed; its operator should store it with `edge-connector vault set`",
                    self.provider
                ),
            ));
        };
        let client = self.client(Some(secret));
        let answer = client
            .exchange_refresh_token(&RefreshToken::new(refresh.expose_secret().to_owned()))
            .request_async(&http.token_http())
            .await;
        match answer {
            Ok(t) => {
                let next = self.entry_of(&t, Some(&entry));
                let token = next.secret.clone();
                store(vault, &name, next).await?;
                tracing::info!(provider = %self.provider, %user, "token refreshed");
                Ok(Some(token))
            }
            Err(oauth2::RequestTokenError::ServerResponse(e)) if grant_is_dead(e.error()) => {
                tracing::info!(provider = %self.provider, %user, error = ?e.error(), "refresh refused; the user must connect again");
                forget(vault, &name).await?;
                Ok(None)
            }
            Err(e) => Err(failure(
                ErrorCode::Unavailable,
                format!(
                    "refreshing the {} token failed: {}",
                    self.provider,
                    describe(&e)
                ),
            )
            .retry_after(Duration::from_secs(5))),
        }
    }
}

/// Whether a token endpoint's refusal means the grant itself is gone (revoked, expired,
/// already used), so the user must connect again. Anything else (a misconfigured app, a
/// server error) leaves the tokens in place.
fn grant_is_dead(error: &oauth2::basic::BasicErrorResponseType) -> bool {
    use oauth2::basic::BasicErrorResponseType as E;
    match error {
        E::InvalidGrant => true,
        // GitHub's name for a dead refresh token.
        E::Extension(e) => e == "bad_refresh_token",
        _ => false,
    }
}

/// A token-endpoint error in words, without the response body (which could echo secrets).
fn describe<E: std::error::Error>(
    e: &oauth2::RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> String {
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => format!("{:?}", r.error()),
        oauth2::RequestTokenError::Request(e) => e.to_string(),
        oauth2::RequestTokenError::Parse(e, _) => format!("unreadable answer: {e}"),
        oauth2::RequestTokenError::Other(s) => s.clone(),
    }
}

async fn load(vault: &Arc<Vault>, name: &EntryName) -> Result<Option<Entry>, CallFailure> {
    let (vault, name) = (vault.clone(), name.clone());
    tokio::task::spawn_blocking(move || vault.get(&name))
        .await
        .map_err(|e| failure(ErrorCode::Internal, e.to_string()))?
        .map_err(vault_failure)
}

async fn store(vault: &Arc<Vault>, name: &EntryName, entry: Entry) -> Result<(), CallFailure> {
    let (vault, name) = (vault.clone(), name.clone());
    tokio::task::spawn_blocking(move || vault.update(&name, |_| Some(entry)).map(|_| ()))
        .await
        .map_err(|e| failure(ErrorCode::Internal, e.to_string()))?
        .map_err(vault_failure)
}

async fn forget(vault: &Arc<Vault>, name: &EntryName) -> Result<(), CallFailure> {
    let (vault, name) = (vault.clone(), name.clone());
    tokio::task::spawn_blocking(move || vault.remove(&name).map(|_| ()))
        .await
        .map_err(|e| failure(ErrorCode::Internal, e.to_string()))?
        .map_err(vault_failure)
}

/// A vault problem as a call failure (its text names files, never secrets).
pub fn vault_failure(e: crate::vault::VaultError) -> CallFailure {
    tracing::error!(error = %e, "vault unavailable");
    failure(
        ErrorCode::Internal,
        "the connector's vault is unavailable; its operator should run `edge-connector doctor`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> OAuthClient {
        let web = url::Url::parse("https://gitlab.example/").unwrap();
        let config = OAuthConfig {
            client_id: "app".into(),
            app: GithubApp::default(),
            scopes: vec!["api".into()],
            redirect_uri: None,
        };
        let redirect = url::Url::parse("https://rt.example/connect/callback").unwrap();
        OAuthClient::new("gl", ProviderKind::Gitlab, &web, &config, redirect).unwrap()
    }

    #[test]
    fn a_users_retries_replace_their_oldest_links_and_leave_others_alone() {
        let c = client();
        let states: Vec<String> = (0..6)
            .map(|_| c.start("alice", "GitLab").unwrap().state)
            .collect();
        let live: Vec<bool> = states.iter().map(|s| c.owns(s)).collect();
        assert_eq!(live, [false, false, true, true, true, true]);
        let bob = c.start("bob", "GitLab").unwrap();
        assert!(c.owns(&bob.state));
        assert!(bob.authorize_url.contains("code_challenge_method=S256"));
    }

    #[test]
    fn only_dead_grants_make_the_user_connect_again() {
        use oauth2::basic::BasicErrorResponseType as E;
        assert!(grant_is_dead(&E::InvalidGrant));
        assert!(grant_is_dead(&E::Extension("bad_refresh_token".into())));
        assert!(!grant_is_dead(&E::InvalidClient));
        assert!(!grant_is_dead(&E::Extension(
            "temporarily_unavailable".into()
        )));
    }
}
