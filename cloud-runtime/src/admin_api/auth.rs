//! Who is calling the admin API. The order of the checks decides what a caller can learn:
//! a request without a usable token learns nothing (401); a token of another tenant gets
//! the answer a tenant that does not exist gets (404); only then is the scope checked
//! (403), so a narrow token of tenant A cannot probe tenant B either.

use axum::http::{HeaderMap, header};
use shared::identity::TenantId;

use super::problem::Problem;
use super::tokens::{PREFIX, Scope};
use crate::oauth::secret;
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

/// Authenticates a request to `tenant`'s admin API that needs `scope`.
pub async fn admin(
    store: &Store,
    headers: &HeaderMap,
    tenant: &str,
    scope: Scope,
) -> Result<Admin, Problem> {
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
