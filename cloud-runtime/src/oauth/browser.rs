//! Signed-in browsers. When a user signs in (to authorize an MCP client, or on a connect
//! page), their browser gets a session cookie; the connect page reads it to make sure the
//! browser that opened a link belongs to the user the link was made for, so a link
//! forwarded to someone else cannot connect their account to the user's calls.
//!
//! The cookie is `__Host-` (HTTPS only, this host only, every path), `HttpOnly`, and
//! `SameSite=Lax` (sent when the user follows a link from their MCP client, not with
//! cross-site requests); the store keeps its SHA-256 only.

use axum::http::{HeaderMap, HeaderValue, header};

use super::secret;
use crate::store::{Store, StoreError, now_ms};

/// The cookie's name.
pub const COOKIE: &str = "__Host-mcp-edge-session";
/// How long a browser stays signed in.
pub const SESSION_TTL_MS: i64 = 8 * 3600 * 1000;

/// Starts a session for `user` of `tenant`: the `Set-Cookie` value to send.
pub async fn start(store: &Store, tenant: &str, user: &str) -> Result<HeaderValue, StoreError> {
    let token = secret::generate("mcpbs_");
    store
        .create_browser_session(
            &secret::hash(&token),
            tenant,
            user,
            now_ms() + SESSION_TTL_MS,
        )
        .await?;
    let cookie = format!(
        "{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        SESSION_TTL_MS / 1000
    );
    HeaderValue::from_str(&cookie).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The (tenant, user) the request's session cookie names, if it names a live session.
pub async fn signed_in(
    store: &Store,
    headers: &HeaderMap,
) -> Result<Option<(String, String)>, StoreError> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned());
    match token {
        Some(t) if !t.is_empty() && t.len() <= 128 => {
            store.browser_session(&secret::hash(&t)).await
        }
        _ => Ok(None),
    }
}
