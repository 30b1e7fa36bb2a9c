//! Signed-in browsers. When a user signs in (to authorize an MCP client, or on a connect
//! page), their browser gets a session cookie; the connect page reads it to make sure the
//! browser that opened a link belongs to the user the link was made for, so a link
//! forwarded to someone else cannot connect their account to the user's calls.
//!
//! Before that, a sign-in binding cookie ties each pending sign-in to the browser that
//! started it: the sign-in form, the identity provider's callback and the consent form are
//! refused in any other browser, so nobody can start a sign-in and have someone else's
//! browser finish it (login CSRF), ending up signed in as the attacker on a connect page.
//!
//! Both cookies are `__Host-` (HTTPS only, this host only, every path), `HttpOnly`, and
//! `SameSite=Lax` (sent when the user follows a link from their MCP client or comes back
//! from the identity provider, not with cross-site POSTs); the store keeps SHA-256 only.

use axum::http::{HeaderMap, HeaderValue, header};

use shared::clock::now_ms;
use shared::identity::UserId;

use super::secret;
use crate::store::{Store, StoreError};

/// The cookie's name.
pub const COOKIE: &str = "__Host-mcp-edge-session";
/// How long a browser stays signed in.
pub const SESSION_TTL_MS: i64 = 8 * 3600 * 1000;

/// Starts a session for the user `user` (their id) of `tenant`: the `Set-Cookie` value to
/// send.
pub async fn start(store: &Store, tenant: &str, user: &UserId) -> Result<HeaderValue, StoreError> {
    let token = secret::generate("mcpbs_");
    store
        .create_browser_session(
            &secret::hash(&token),
            tenant,
            user.as_str(),
            now_ms() + SESSION_TTL_MS,
        )
        .await?;
    let cookie = format!(
        "{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        SESSION_TTL_MS / 1000
    );
    HeaderValue::from_str(&cookie).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The sign-in binding cookie's name.
pub const BINDING_COOKIE: &str = "__Host-mcp-edge-signin";
/// How long a browser keeps its sign-in binding.
const BINDING_TTL_SECS: i64 = 24 * 3600;
/// Prefix of binding values.
const BINDING_PREFIX: &str = "mcpsb_";

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// This browser's sign-in binding: the hash to store with a new pending sign-in, and the
/// `Set-Cookie` value to send with the page that starts it (the browser's existing binding
/// if it has one, so sign-ins in several tabs all stay valid).
pub fn binding(headers: &HeaderMap) -> Result<(String, HeaderValue), StoreError> {
    let token = cookie(headers, BINDING_COOKIE)
        .filter(|v| {
            v.strip_prefix(BINDING_PREFIX)
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .unwrap_or_else(|| secret::generate(BINDING_PREFIX));
    let set = format!(
        "{BINDING_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={BINDING_TTL_SECS}"
    );
    let set = HeaderValue::from_str(&set).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((secret::hash(&token), set))
}

/// Whether this request comes from the browser whose binding hashes to `hash`.
pub fn is_bound(headers: &HeaderMap, hash: Option<&str>) -> bool {
    match (cookie(headers, BINDING_COOKIE), hash) {
        (Some(token), Some(hash)) => aws_lc_rs::constant_time::verify_slices_are_equal(
            secret::hash(&token).as_bytes(),
            hash.as_bytes(),
        )
        .is_ok(),
        _ => false,
    }
}

/// The (tenant, user id) the request's session cookie names, if it names a live session.
pub async fn signed_in(
    store: &Store,
    headers: &HeaderMap,
) -> Result<Option<(String, String)>, StoreError> {
    match cookie(headers, COOKIE) {
        Some(t) => store.browser_session(&secret::hash(&t)).await,
        None => Ok(None),
    }
}

/// The CSRF token of the request's browser session: a digest of its session cookie, which
/// another site can neither read nor make, so a form that carries it came from a page
/// this runtime served to that browser. `None` without a session cookie.
pub fn csrf_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE).map(|t| secret::hash(&format!("csrf\0{t}")))
}

/// Whether `presented` is the request's CSRF token (compared in constant time).
pub fn csrf_matches(headers: &HeaderMap, presented: &str) -> bool {
    csrf_token(headers).is_some_and(|want| {
        aws_lc_rs::constant_time::verify_slices_are_equal(want.as_bytes(), presented.as_bytes())
            .is_ok()
    })
}

/// Ends the request's browser session, if it has one; returns the `Set-Cookie` value
/// that clears the cookie.
pub async fn sign_out(store: &Store, headers: &HeaderMap) -> Result<HeaderValue, StoreError> {
    if let Some(t) = cookie(headers, COOKIE) {
        store.end_browser_session(&secret::hash(&t)).await?;
    }
    Ok(HeaderValue::from_static(
        "__Host-mcp-edge-session=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
    ))
}
