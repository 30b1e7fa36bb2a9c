//! Credentials: resolving a request's token to a user, and the OAuth grant logic both
//! kinds share (authorization codes, access and refresh tokens, PKCE). The kinds differ in
//! token shapes and error bodies, which `github::oauth` and `gitlab::oauth` add.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::model::{AccessToken, AuthCode, ClientKind, OAuthClient, RefreshToken, World};
use crate::time_fmt::Timestamp;

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Login.
    pub login: String,
    /// Numeric id.
    pub user_id: u64,
    /// The token's scopes.
    pub scopes: Vec<String>,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials.
    Missing,
    /// Unknown token.
    Bad,
    /// An OAuth token past its expiry.
    Expired,
    /// A revoked token.
    Revoked,
}

/// The token a request carries: `Authorization: Bearer T` or `token T`, or GitLab's
/// `PRIVATE-TOKEN: T`.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("private-token").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    let (scheme, rest) = auth.split_once(' ')?;
    matches!(scheme.to_ascii_lowercase().as_str(), "bearer" | "token")
        .then(|| rest.trim().to_owned())
}

/// Resolves the request's token to its user.
pub fn authenticate(w: &World, headers: &HeaderMap) -> Result<Caller, AuthError> {
    let token = presented_token(headers).ok_or(AuthError::Missing)?;
    let t = w.tokens.get(&token).ok_or(AuthError::Bad)?;
    if t.revoked {
        return Err(AuthError::Revoked);
    }
    if t.expires_at.is_some_and(|e| e <= Timestamp::now().0) {
        return Err(AuthError::Expired);
    }
    let user = w.user(&t.user).ok_or(AuthError::Bad)?;
    Ok(Caller {
        login: user.login.clone(),
        user_id: user.id,
        scopes: t.scopes.clone(),
    })
}

/// Random printable text for token values.
pub fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| {
            let i = rand::random_range(0..ALPHABET.len());
            char::from(ALPHABET.get(i).copied().unwrap_or(b'a'))
        })
        .collect()
}

/// Random hex text (GitLab's OAuth tokens are 64 hex digits).
pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Authorization codes live ten minutes, as on both hosts.
const CODE_TTL: i64 = 600;

/// What a token request may carry (form or JSON, both kinds).
#[derive(Debug, Default, serde::Deserialize)]
pub struct TokenRequest {
    /// `authorization_code` (default on GitHub) or `refresh_token`.
    pub grant_type: Option<String>,
    /// Client id (may also come as HTTP Basic).
    pub client_id: Option<String>,
    /// Client secret (may also come as HTTP Basic).
    pub client_secret: Option<String>,
    /// The code.
    pub code: Option<String>,
    /// Must repeat the authorization request's.
    pub redirect_uri: Option<String>,
    /// PKCE verifier.
    pub code_verifier: Option<String>,
    /// For `refresh_token` grants.
    pub refresh_token: Option<String>,
}

impl TokenRequest {
    /// Fills client credentials from an `Authorization: Basic` header when the body has none.
    pub fn with_basic_auth(mut self, headers: &HeaderMap) -> TokenRequest {
        let basic = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok());
        if let Some((id, secret)) = basic.as_deref().and_then(|b| b.split_once(':')) {
            self.client_id.get_or_insert_with(|| id.to_owned());
            self.client_secret.get_or_insert_with(|| secret.to_owned());
        }
        self
    }
}

/// Why a token request failed; each kind maps these to its own error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    /// Unknown client or wrong secret.
    InvalidClient,
    /// A required parameter is missing.
    MissingParameter(&'static str),
    /// Unknown, expired or spent code, or one issued to another client.
    BadCode,
    /// `redirect_uri` differs from the authorization request's.
    RedirectMismatch,
    /// PKCE verifier missing or wrong.
    BadVerifier,
    /// Unknown, spent or expired refresh token.
    BadRefreshToken,
    /// A grant type this server does not do.
    UnsupportedGrantType,
}

/// A freshly issued grant.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The access token.
    pub access_token: String,
    /// The refresh token, for clients that get one.
    pub refresh_token: Option<String>,
    /// Access token lifetime in seconds, for expiring tokens.
    pub expires_in: Option<i64>,
    /// Refresh token lifetime in seconds (GitHub Apps).
    pub refresh_token_expires_in: Option<i64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Issue time.
    pub created_at: Timestamp,
}

/// The client `client_id`, if registered.
pub fn client<'a>(w: &'a World, client_id: &str) -> Option<&'a OAuthClient> {
    w.clients.iter().find(|c| c.client_id == client_id)
}

/// Issues an authorization code for `user`.
pub fn issue_code(
    w: &mut World,
    client_id: &str,
    user: &str,
    redirect_uri: &str,
    scopes: Vec<String>,
    code_challenge: Option<String>,
    kind: ClientKind,
) -> String {
    let code = match kind {
        ClientKind::GitLab => random_hex(32),
        _ => random_hex(10),
    };
    w.codes.insert(
        code.clone(),
        AuthCode {
            user: user.to_owned(),
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            code_challenge,
            expires_at: Timestamp::now().0 + CODE_TTL,
        },
    );
    code
}

fn authenticate_client<'a>(
    w: &'a World,
    req: &TokenRequest,
) -> Result<&'a OAuthClient, GrantError> {
    let id = req.client_id.as_deref().ok_or(GrantError::InvalidClient)?;
    let c = client(w, id).ok_or(GrantError::InvalidClient)?;
    if req.client_secret.as_deref() != Some(c.client_secret.as_str()) {
        return Err(GrantError::InvalidClient);
    }
    Ok(c)
}

/// Base64url (no padding) SHA-256 of the verifier: PKCE's S256 transform.
pub fn s256(verifier: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// Redeems an authorization code (single use: a second try fails).
pub fn exchange_code(w: &mut World, req: &TokenRequest) -> Result<Grant, GrantError> {
    let client = authenticate_client(w, req)?.clone();
    let code = req
        .code
        .as_deref()
        .ok_or(GrantError::MissingParameter("code"))?;
    let pending = w.codes.remove(code).ok_or(GrantError::BadCode)?;
    if pending.client_id != client.client_id || pending.expires_at <= Timestamp::now().0 {
        return Err(GrantError::BadCode);
    }
    match (&req.redirect_uri, client.kind) {
        (Some(r), _) if *r != pending.redirect_uri => return Err(GrantError::RedirectMismatch),
        // GitLab (Doorkeeper) requires the redirect URI again; GitHub makes it optional.
        (None, ClientKind::GitLab) => return Err(GrantError::MissingParameter("redirect_uri")),
        _ => {}
    }
    if let Some(challenge) = &pending.code_challenge {
        let verifier = req
            .code_verifier
            .as_deref()
            .ok_or(GrantError::BadVerifier)?;
        if s256(verifier) != *challenge {
            return Err(GrantError::BadVerifier);
        }
    }
    Ok(mint(w, &client, &pending.user, pending.scopes))
}

/// Redeems a refresh token for a new grant; the old refresh token is spent (rotation).
pub fn refresh(w: &mut World, req: &TokenRequest) -> Result<Grant, GrantError> {
    let client = authenticate_client(w, req)?.clone();
    let value = req
        .refresh_token
        .as_deref()
        .ok_or(GrantError::MissingParameter("refresh_token"))?;
    let rt = w
        .refresh_tokens
        .get_mut(value)
        .ok_or(GrantError::BadRefreshToken)?;
    if rt.spent || rt.client_id != client.client_id || rt.expires_at <= Timestamp::now().0 {
        return Err(GrantError::BadRefreshToken);
    }
    rt.spent = true;
    let (user, scopes) = (rt.user.clone(), rt.scopes.clone());
    Ok(mint(w, &client, &user, scopes))
}

fn mint(w: &mut World, client: &OAuthClient, user: &str, scopes: Vec<String>) -> Grant {
    let now = Timestamp::now();
    let (access, refresh, expires_in, refresh_in) = match client.kind {
        ClientKind::OAuthApp => (format!("gho_{}", random_alnum(36)), None, None, None),
        ClientKind::GitHubApp => (
            format!("ghu_{}", random_alnum(36)),
            Some(format!("ghr_{}", random_alnum(76))),
            Some(28_800),
            Some(15_897_600),
        ),
        // GitLab refresh tokens do not expire; a long horizon stands in for never.
        ClientKind::GitLab => (
            random_hex(32),
            Some(random_hex(32)),
            Some(7200),
            Some(10 * 365 * 86_400),
        ),
    };
    w.tokens.insert(
        access.clone(),
        AccessToken {
            user: user.to_owned(),
            client_id: Some(client.client_id.clone()),
            scopes: scopes.clone(),
            expires_at: expires_in.map(|e| now.0 + e),
            revoked: false,
        },
    );
    if let (Some(r), Some(ttl)) = (&refresh, refresh_in) {
        w.refresh_tokens.insert(
            r.clone(),
            RefreshToken {
                user: user.to_owned(),
                client_id: client.client_id.clone(),
                scopes: scopes.clone(),
                expires_at: now.0 + ttl,
                spent: false,
            },
        );
    }
    Grant {
        access_token: access,
        refresh_token: refresh,
        expires_in,
        refresh_token_expires_in: if client.kind == ClientKind::GitHubApp {
            refresh_in
        } else {
            None
        },
        scopes,
        created_at: now,
    }
}

/// Makes `user`'s OAuth access tokens (and, with `include_personal`, personal access
/// tokens) expired now; returns how many changed.
pub fn expire_tokens(w: &mut World, user: &str, include_personal: bool) -> usize {
    let past = Timestamp::now().0 - 1;
    let mut n = 0;
    for t in w.tokens.values_mut() {
        if t.user == user && (t.client_id.is_some() || include_personal) {
            t.expires_at = Some(past);
            n += 1;
        }
    }
    n
}

/// Revokes `user`'s OAuth access and refresh tokens (of one client, or all); returns how
/// many changed.
pub fn revoke_grants(w: &mut World, user: &str, client_id: Option<&str>) -> usize {
    let of = |c: Option<&str>| c.is_some() && (client_id.is_none() || client_id == c);
    let mut n = 0;
    for t in w.tokens.values_mut() {
        if t.user == user && of(t.client_id.as_deref()) && !t.revoked {
            t.revoked = true;
            n += 1;
        }
    }
    for r in w.refresh_tokens.values_mut() {
        if r.user == user && of(Some(&r.client_id)) && !r.spent {
            r.spent = true;
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_example() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
