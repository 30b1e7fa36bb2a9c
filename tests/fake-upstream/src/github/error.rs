//! GitHub's error responses: `{"message", "documentation_url", "status"}`, 422 validation
//! failures with an `errors` array, and the rate-limit and fault answers.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::AuthError;
use crate::faults::{Action, Rule};
use crate::headers::set;
use crate::ratelimit::Quota;

/// Where GHES 3.19's REST documentation lives; `documentation_url`s start here.
pub const DOCS: &str = "https://docs.github.com/enterprise-server@3.19/rest";

/// A GitHub error body with `status`.
pub fn error(status: StatusCode, message: &str, doc: &str) -> Response {
    let body = json!({
        "message": message,
        "documentation_url": format!("{DOCS}{doc}"),
        "status": status.as_u16().to_string(),
    });
    (status, Json(body)).into_response()
}

/// 404 Not Found.
pub fn not_found(doc: &str) -> Response {
    error(StatusCode::NOT_FOUND, "Not Found", doc)
}

/// 403 with GitHub's message for a missing permission.
pub fn forbidden(message: &str, doc: &str) -> Response {
    error(StatusCode::FORBIDDEN, message, doc)
}

/// 422 Validation Failed with `errors` entries (`resource`, `field`, `code`...).
pub fn validation(errors: Vec<Value>, doc: &str) -> Response {
    let body = json!({
        "message": "Validation Failed",
        "errors": errors,
        "documentation_url": format!("{DOCS}{doc}"),
        "status": "422",
    });
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

/// 422 with a plain message (e.g. "Reference already exists").
pub fn unprocessable(message: &str, doc: &str) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, message, doc)
}

/// 422 "Unprocessable Entity" with string `errors`, as reviews answer.
pub fn unprocessable_list(errors: &[&str], doc: &str) -> Response {
    let body = json!({
        "message": "Unprocessable Entity",
        "errors": errors,
        "documentation_url": format!("{DOCS}{doc}"),
        "status": "422",
    });
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

/// 400 for a body that is not JSON.
pub fn bad_json(doc: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "Problems parsing JSON", doc)
}

/// 422 for a field of the wrong type, worded like GitHub's schema validator.
pub fn invalid_field(field: &str, value: &Value, expected: &str, doc: &str) -> Response {
    // GitHub's validator is Ruby: a JSON null reads `nil`.
    let shown = match value {
        Value::Null => "nil".to_owned(),
        v => v.to_string(),
    };
    let msg = format!("Invalid request.\n\nFor 'properties/{field}', {shown} is not {expected}.");
    error(StatusCode::UNPROCESSABLE_ENTITY, &msg, doc)
}

/// 401 for a request without valid credentials.
pub fn unauthorized(e: AuthError) -> Response {
    let message = match e {
        AuthError::Missing => "Requires authentication",
        _ => "Bad credentials",
    };
    error(StatusCode::UNAUTHORIZED, message, "")
}

const RATE_DOC: &str = "/overview/rate-limits-for-the-rest-api";

/// 403 for an exhausted primary rate limit (headers are added by the gate).
pub fn rate_limited(user_id: u64, q: &Quota) -> Response {
    let message = format!(
        "API rate limit exceeded for user ID {user_id}. If you reach out to GitHub Support for help, please include the request ID FAKE and timestamp {}.",
        q.reset
    );
    error(StatusCode::FORBIDDEN, &message, RATE_DOC)
}

/// The answer a fault rule forces.
pub fn fault(rule: &Rule) -> Response {
    let retry = rule.retry_after.unwrap_or(60);
    let mut resp = match rule.action {
        Action::RateLimit => {
            let status = status_or(rule, StatusCode::FORBIDDEN);
            let mut r = error(status, "API rate limit exceeded for user ID 1.", RATE_DOC);
            let reset = crate::time_fmt::Timestamp::now().0 + retry as i64;
            set(r.headers_mut(), "x-ratelimit-remaining", "0");
            set(r.headers_mut(), "x-ratelimit-reset", &reset.to_string());
            r
        }
        Action::SecondaryRateLimit => {
            let status = status_or(rule, StatusCode::FORBIDDEN);
            let mut r = error(
                status,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID FAKE.",
                &format!("{RATE_DOC}#about-secondary-rate-limits"),
            );
            set(r.headers_mut(), "retry-after", &retry.to_string());
            r
        }
        _ => {
            let status = status_or(rule, StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = match &rule.body {
                Some(b) => (status, b.clone()).into_response(),
                None if status.as_u16() >= 502 => (
                    status,
                    [("content-type", "text/html")],
                    format!(
                        "<html>\r\n<head><title>{s}</title></head>\r\n<body>\r\n<center><h1>{s}</h1></center>\r\n</body>\r\n</html>\r\n",
                        s = status
                    ),
                )
                    .into_response(),
                None => error(status, status.canonical_reason().unwrap_or("Error"), ""),
            };
            if let Some(ra) = rule.retry_after {
                set(r.headers_mut(), "retry-after", &ra.to_string());
            }
            r
        }
    };
    set(resp.headers_mut(), "x-github-request-id", "FAKE:FAULT");
    resp
}

fn status_or(rule: &Rule, default: StatusCode) -> StatusCode {
    rule.status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(default)
}
