//! The token endpoint: authorization code + PKCE verifier for tokens, and refresh-token
//! rotation. A code or refresh token presented twice revokes everything issued from it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Form, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use shared::clock::now_ms;
use tracing::warn;

use super::recheck::{self, Verdict};
use super::signer::AccessClaims;
use super::{ACCESS_TTL_SECS, OAuth, REFRESH_TTL_MS, SCOPE, secret};
use crate::store::oauth::{RefreshRow, Spend};

/// The token request (form-encoded).
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    resource: Option<String>,
}

fn error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn invalid_grant(description: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// `POST /oauth/token`.
pub async fn token(State(o): State<Arc<OAuth>>, Form(req): Form<TokenRequest>) -> Response {
    let Some(client_id) = req.client_id.as_deref() else {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is required",
        );
    };
    match req.grant_type.as_str() {
        "authorization_code" => {
            let (Some(code), Some(verifier), Some(redirect_uri)) =
                (&req.code, &req.code_verifier, &req.redirect_uri)
            else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code, code_verifier and redirect_uri are required",
                );
            };
            let code_hash = secret::hash(code);
            let Some(challenge) = secret::pkce_s256_challenge(verifier) else {
                return invalid_grant("code_verifier is not a valid PKCE verifier");
            };
            let row = match o
                .store
                .redeem_code(&code_hash, client_id, redirect_uri, &challenge)
                .await
            {
                Ok(Spend::Ok(row)) => row,
                Ok(Spend::Replayed(family)) => {
                    warn!("authorization code replayed; revoking what it issued");
                    let _ = o.store.revoke_family(&family).await;
                    return invalid_grant("authorization code was already used");
                }
                Ok(Spend::Expired) => return invalid_grant("authorization code has expired"),
                Ok(Spend::Mismatch) => {
                    return invalid_grant(
                        "code was issued to another client or redirect URI, or code_verifier does not match the code_challenge",
                    );
                }
                Ok(Spend::Unknown) => return invalid_grant("unknown authorization code"),
                Err(_) => {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        "try again",
                    );
                }
            };
            if req.resource.as_deref().is_some_and(|r| r != row.resource) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_target",
                    "resource differs from the authorized one",
                );
            }
            let refresh = RefreshRow {
                family: code_hash,
                client_id: row.client_id,
                resource: row.resource,
                tenant: row.tenant,
                user_id: row.user_id,
                expires_at: now_ms() + REFRESH_TTL_MS,
            };
            issue(&o, &refresh).await
        }
        "refresh_token" => {
            let Some(token) = &req.refresh_token else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required",
                );
            };
            let token_hash = secret::hash(token);
            // A provider user's standing is checked before the token is spent, so that an
            // unreachable provider leaves the client a token to retry with.
            if let Ok(Some((tenant, user_id))) = o.store.refresh_owner(&token_hash).await
                && let Ok(Some(user)) = o.store.user(&tenant, &user_id).await
            {
                match recheck::at_refresh(&o, &tenant, &user).await {
                    Verdict::Continue => {}
                    Verdict::Ended => {
                        return invalid_grant(
                            "your identity provider no longer allows this sign-in; sign in again",
                        );
                    }
                    Verdict::Unavailable => {
                        return error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "temporarily_unavailable",
                            "the identity provider cannot be reached; try again",
                        );
                    }
                }
            }
            let row = match o.store.spend_refresh(&token_hash).await {
                Ok(Spend::Ok(row)) => row,
                Ok(Spend::Replayed(family)) => {
                    warn!("refresh token reused; revoking its family");
                    let _ = o.store.revoke_family(&family).await;
                    return invalid_grant("refresh token was already used; sign in again");
                }
                Ok(Spend::Expired) => {
                    return invalid_grant("refresh token has expired or was revoked");
                }
                Ok(Spend::Unknown | Spend::Mismatch) => {
                    return invalid_grant("unknown refresh token");
                }
                Err(_) => {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        "try again",
                    );
                }
            };
            if row.client_id != client_id {
                let _ = o.store.revoke_family(&row.family).await;
                return invalid_grant("refresh token was issued to another client");
            }
            if req.resource.as_deref().is_some_and(|r| r != row.resource) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_target",
                    "resource differs from the authorized one",
                );
            }
            // Rotation keeps the family's expiry: a grant lasts REFRESH_TTL_MS from sign-in,
            // however often it is refreshed, and then the user signs in again.
            issue(&o, &row).await
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "use authorization_code or refresh_token",
        ),
    }
}

async fn issue(o: &OAuth, grant: &RefreshRow) -> Response {
    // A client the tenant's administrators revoked gets nothing there; any other is noted
    // as used now (the admin console lists first and last use).
    match o
        .store
        .record_client_use(&grant.tenant, &grant.client_id)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return invalid_grant(
                "this client's access to the tenant was revoked by its administrators",
            );
        }
        Err(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again",
            );
        }
    }
    let user = match o.store.user(&grant.tenant, &grant.user_id).await {
        Ok(Some(user)) => user,
        // A removed user's grants end with them.
        Ok(None) => return invalid_grant("the user no longer exists; sign in again"),
        Err(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again",
            );
        }
    };
    let now = now_ms() / 1000;
    let claims = AccessClaims {
        iss: o.issuer.clone(),
        sub: user.id.to_string(),
        name: user.name,
        aud: grant.resource.clone(),
        exp: now + ACCESS_TTL_SECS,
        iat: now,
        jti: secret::generate(""),
        tenant: grant.tenant.clone(),
        client_id: grant.client_id.clone(),
        groups: user.groups,
        scope: SCOPE.to_owned(),
    };
    let Ok(access) = o.signer.get().sign(&claims) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "could not sign the token",
        );
    };
    let refresh = secret::generate("mcprt_");
    if o.store
        .create_refresh(&secret::hash(&refresh), grant)
        .await
        .is_err()
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "try again",
        );
    }
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL_SECS,
            "refresh_token": refresh,
            "scope": SCOPE,
        })),
    )
        .into_response()
}
