//! GitLab's error responses: `{"message": "404 Project Not Found"}`, `{"error": "title is
//! missing"}`, validation errors `{"message": {"field": ["..."]}}`, and the plain-text
//! 429 "Retry later" of its rate limiter.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::AuthError;
use crate::faults::{Action, Rule};
use crate::headers::{rate_headers, set};
use crate::ratelimit::Quota;

/// `{"message": message}` with `status`.
pub fn message(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

/// `404 <What> Not Found`.
pub fn not_found(what: &str) -> Response {
    message(StatusCode::NOT_FOUND, &format!("404 {what} Not Found"))
}

/// `403 Forbidden`.
pub fn forbidden() -> Response {
    message(StatusCode::FORBIDDEN, "403 Forbidden")
}

/// `401 Unauthorized` (also GitLab's answer to a disallowed approval or merge).
pub fn unauthorized_message() -> Response {
    message(StatusCode::UNAUTHORIZED, "401 Unauthorized")
}

/// 400 `{"error": "<param> is missing"}` and similar parameter errors.
pub fn bad_param(text: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": text }))).into_response()
}

/// 400 `{"message": {field: [messages]}}`.
pub fn validation(field: &str, messages: &[&str]) -> Response {
    let mut m = serde_json::Map::new();
    m.insert(field.to_owned(), json!(messages));
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "message": Value::Object(m) })),
    )
        .into_response()
}

/// 401 for missing, unknown, expired or revoked tokens (OAuth ones say which).
pub fn unauthorized(e: AuthError) -> Response {
    let mut r = match e {
        AuthError::Expired => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token", "error_description": "Token is expired. You can either do re-authorization or token refresh."})),
        )
            .into_response(),
        AuthError::Revoked => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token", "error_description": "Token was revoked. You have to re-authorize from the user."})),
        )
            .into_response(),
        _ => unauthorized_message(),
    };
    if matches!(e, AuthError::Expired | AuthError::Revoked) {
        let desc = if e == AuthError::Expired {
            "Token is expired."
        } else {
            "Token was revoked."
        };
        set(
            r.headers_mut(),
            "www-authenticate",
            &format!(
                "Bearer realm=\"Protected by OAuth 2.0\", error=\"invalid_token\", error_description=\"{desc}\""
            ),
        );
    }
    r
}

/// 429 "Retry later" with `Retry-After`.
pub fn rate_limited(q: &Quota) -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        [("content-type", "text/plain")],
        "Retry later\n",
    )
        .into_response();
    set(r.headers_mut(), "retry-after", &q.retry_after().to_string());
    r
}

/// The answer a fault rule forces.
pub fn fault(rule: &Rule) -> Response {
    let retry = rule.retry_after.unwrap_or(60);
    let status = rule.status.and_then(|s| StatusCode::from_u16(s).ok());
    match rule.action {
        Action::RateLimit | Action::SecondaryRateLimit => {
            let reset = crate::time_fmt::Timestamp::now().0.max(0) as u64 + retry;
            let q = Quota {
                limit: 2000,
                remaining: 0,
                used: 2000,
                reset,
                resource: crate::ratelimit::Resource::Core,
                exceeded: true,
            };
            let mut r = rate_limited(&q);
            if let Some(s) = status {
                *r.status_mut() = s;
            }
            set(r.headers_mut(), "retry-after", &retry.to_string());
            rate_headers(crate::Kind::Gitlab, r.headers_mut(), &q);
            r
        }
        _ => {
            let status = status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = match &rule.body {
                Some(b) => (status, b.clone()).into_response(),
                None if status.as_u16() >= 502 => (
                    status,
                    [("content-type", "text/html")],
                    format!("<!DOCTYPE html>\n<html><head><title>GitLab is not responding ({})</title></head><body><h1>{status}</h1></body></html>\n", status.as_u16()),
                )
                    .into_response(),
                None => message(status, &status.to_string()),
            };
            if let Some(ra) = rule.retry_after {
                set(r.headers_mut(), "retry-after", &ra.to_string());
            }
            r
        }
    }
}
