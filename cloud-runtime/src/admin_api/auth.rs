//! Who is calling the admin API. The order of the checks decides what a caller can learn:
//! a request without a usable token learns nothing (401); a token of another tenant gets
//! the answer a tenant that does not exist gets (404); only then is the scope checked
//! (403), so a narrow token of tenant A cannot probe tenant B either.
//!
//! A request without `Authorization` may instead come from a browser signed in to the
//! console (the runtime's `__Host-` session cookie): the same order holds (no session 401,
//! a session of another tenant 404, a user outside the tenant's admin group 403), an admin
//! has every scope, and a request that changes something must carry the session's CSRF
//! token in [`CSRF_HEADER`] and must not say it came from another site ([`csrf_guard`]).

use axum::http::{HeaderMap, Method, header};
use shared::identity::TenantId;

use super::problem::Problem;
use super::tokens::{PREFIX, Scope};
use crate::oauth::{browser, secret};
use crate::store::Store;

/// An authenticated administrator of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// The tenant.
    pub tenant: TenantId,
    /// How the admin came in, as the audit trail's agent (`admin-token ID`, or
    /// `admin console` for a signed-in browser).
    pub via: String,
    /// The token's name, or the signed-in user's: the admin's name in the audit trail.
    pub name: String,
    /// What the token may do.
    pub scopes: Vec<Scope>,
}

/// The header a signed-in browser's state-changing request carries its CSRF token in (the
/// console's pages hold it; another site can neither read nor make it).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The `via` of a signed-in browser, in the audit trail.
pub const CONSOLE: &str = "admin console";

/// What a browser session is to a tenant's administration.
#[derive(Debug)]
pub enum Session {
    /// No session cookie, or one that is unknown or ended.
    None,
    /// Signed in to another tenant.
    Elsewhere,
    /// Signed in to this tenant as a user outside its admin group.
    NotAdmin,
    /// Signed in as one of the tenant's admins (every scope).
    Admin(Admin),
}

/// The request's browser session as `tenant`'s administration sees it.
pub async fn session(
    store: &Store,
    headers: &HeaderMap,
    tenant: &TenantId,
) -> Result<Session, crate::store::StoreError> {
    let Some((session_tenant, user_id)) = browser::signed_in(store, headers).await? else {
        return Ok(Session::None);
    };
    if session_tenant != tenant.as_str() {
        return Ok(Session::Elsewhere);
    }
    let admin_group = store.admin_group(tenant.as_str()).await?;
    Ok(match store.user(&session_tenant, &user_id).await? {
        Some(user) if user.groups.contains(&admin_group) => Session::Admin(Admin {
            tenant: tenant.clone(),
            via: CONSOLE.to_owned(),
            name: user.name,
            scopes: Scope::ALL.to_vec(),
        }),
        _ => Session::NotAdmin,
    })
}

/// Refuses (403) a request that changes something (any method but GET and HEAD) from a
/// signed-in browser without the session's CSRF token in [`CSRF_HEADER`], or whose browser
/// says it came from another site. Requests with `Authorization` are automation: a
/// bearer token is never sent by a browser on its own, so they need no CSRF token.
pub async fn csrf_guard(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let method = request.method();
    let headers = request.headers();
    let reads = method == Method::GET || method == Method::HEAD;
    // Without a session cookie the browser carries no authority to misuse: the request
    // is authenticated (or refused, 401) like any other.
    let session = browser::csrf_token(headers).is_some();
    if reads || !session || headers.contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site");
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if cross_site {
        return Problem::csrf("a request from another site may not change anything here")
            .into_response();
    }
    if !browser::csrf_matches(headers, presented) {
        return Problem::csrf(format!(
            "a signed-in browser's change must carry the session's CSRF token in {CSRF_HEADER}"
        ))
        .into_response();
    }
    next.run(request).await
}

/// Authenticates a request to `tenant`'s admin API that needs `scope`: by its admin token,
/// or, without `Authorization`, by its browser session (see [`csrf_guard`] for changes).
pub async fn admin(
    store: &Store,
    headers: &HeaderMap,
    tenant: &str,
    scope: Scope,
) -> Result<Admin, Problem> {
    if !headers.contains_key(header::AUTHORIZATION) {
        return by_session(store, headers, tenant).await;
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| t.starts_with(PREFIX) && t.len() < 256)
        .ok_or_else(|| {
            Problem::unauthorized("present an admin token: Authorization: Bearer crt_admin_...")
        })?;
    let row = store
        .admin_token_by_secret(&secret::hash(token))
        .await?
        .ok_or_else(|| Problem::unauthorized("unknown admin token"))?;
    if row.revoked_at.is_some() {
        return Err(Problem::unauthorized("this admin token was revoked"));
    }
    if row.expires_at <= store.now_ms() {
        return Err(Problem::unauthorized("this admin token has expired"));
    }
    if row.tenant != tenant {
        return Err(not_this_tenant(tenant));
    }
    let tenant = tenant
        .parse::<TenantId>()
        .map_err(|_| not_this_tenant(""))?;
    let scopes: Vec<Scope> = row
        .scopes
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    if !scopes.contains(&scope) {
        return Err(Problem::forbidden(format!(
            "this token lacks the scope {scope}"
        )));
    }
    Ok(Admin {
        tenant,
        via: format!("admin-token {}", row.id),
        name: row.name,
        scopes,
    })
}

/// The admin a request without `Authorization` is by its browser session.
async fn by_session(store: &Store, headers: &HeaderMap, tenant: &str) -> Result<Admin, Problem> {
    let found = match tenant.parse::<TenantId>() {
        Ok(t) => session(store, headers, &t).await?,
        // No tenant has that name: a session is of another tenant.
        Err(_) => match browser::signed_in(store, headers).await? {
            Some(_) => Session::Elsewhere,
            None => Session::None,
        },
    };
    match found {
        Session::None => Err(Problem::unauthorized(
            "present an admin token (Authorization: Bearer crt_admin_...) or sign in to the console",
        )),
        // Another tenant's session learns what a token of another tenant learns.
        Session::Elsewhere => Err(not_this_tenant(tenant)),
        Session::NotAdmin => Err(Problem::not_admin(
            "you are signed in, but not in this tenant's admin group",
        )),
        Session::Admin(admin) => Ok(admin),
    }
}

/// The answer for a tenant the caller does not administer, whether it exists or not.
pub fn not_this_tenant(tenant: &str) -> Problem {
    let shown: String = tenant.chars().take(64).collect();
    Problem::not_found(format!("no tenant {shown:?} administered by this token"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

    use super::*;
    use crate::admin_api::tokens;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn a_token_works_for_its_tenant_and_scope_until_it_expires_or_is_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(shared::clock::ManualClock::at(1_000_000));
        let store = crate::store::test_store(dir.path())
            .await
            .with_clock(clock.clone());
        for t in ["acme", "globex"] {
            store.create_tenant(&t.parse().unwrap()).await.unwrap();
        }
        let acme = "acme".parse().unwrap();
        let issued = tokens::issue(
            &store,
            &acme,
            "ci",
            &[Scope::ConnectorsRead],
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        let h = bearer(&issued.token);
        let status =
            |r: Result<Admin, Problem>| r.map(|_| StatusCode::OK).unwrap_or_else(|p| p.status);

        let ok = admin(&store, &h, "acme", Scope::ConnectorsRead)
            .await
            .unwrap();
        assert_eq!((ok.name.as_str(), ok.tenant.as_str()), ("ci", "acme"));
        assert_eq!(
            status(admin(&store, &h, "globex", Scope::ConnectorsRead).await),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(admin(&store, &h, "acme", Scope::ConnectorsWrite).await),
            StatusCode::FORBIDDEN
        );
        // Another tenant is 404 even for a scope the token lacks: the scope says nothing.
        assert_eq!(
            status(admin(&store, &h, "globex", Scope::ConnectorsWrite).await),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(admin(&store, &HeaderMap::new(), "acme", Scope::ConnectorsRead).await),
            StatusCode::UNAUTHORIZED
        );
        let tampered = format!("{}0", issued.token);
        assert_eq!(
            status(admin(&store, &bearer(&tampered), "acme", Scope::ConnectorsRead).await),
            StatusCode::UNAUTHORIZED
        );

        clock.advance(Duration::from_secs(600));
        let expired = admin(&store, &h, "acme", Scope::ConnectorsRead)
            .await
            .unwrap_err();
        assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
        assert!(expired.message.contains("expired"), "{}", expired.message);

        clock.set(1_000_000);
        assert!(tokens::revoke(&store, &acme, &issued.row.id).await.unwrap());
        assert!(!tokens::revoke(&store, &acme, &issued.row.id).await.unwrap());
        let revoked = admin(&store, &h, "acme", Scope::ConnectorsRead)
            .await
            .unwrap_err();
        assert!(revoked.message.contains("revoked"), "{}", revoked.message);
        // A token id of another tenant is not this tenant's to revoke.
        assert!(
            tokens::revoke(&store, &"globex".parse().unwrap(), &issued.row.id)
                .await
                .is_err()
        );
    }

    #[test]
    fn scopes_parse_strictly() {
        assert_eq!(
            tokens::parse_scopes("connectors:write, connectors:read,connectors:read").unwrap(),
            [Scope::ConnectorsRead, Scope::ConnectorsWrite]
        );
        assert!(tokens::parse_scopes("").is_err());
        assert!(tokens::parse_scopes("connectors:*").is_err());
    }
}
