//! Checks a POSTed body before the MCP transport sees it, so that malformed input gets the
//! JSON-RPC answer the specification asks for: a parse error (-32700) for bytes that are not
//! JSON, an invalid request (-32600) for a batch (removed in 2025-06-18) or a non-object,
//! 413 past the size limit, and 408 for a body that trickles in too slowly.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits the guard applies.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body.
    pub max_body_bytes: usize,
}

fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}})
            .to_string(),
    )
        .into_response()
}

/// Middleware: validates POST bodies, passes everything else through.
pub async fn guard(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds {} bytes", limits.max_body_bytes),
        )
            .into_response();
    }
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(
        BODY_TIMEOUT,
        axum::body::to_bytes(body, limits.max_body_bytes),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds {} bytes", limits.max_body_bytes),
            )
                .into_response();
        }
        Err(_) => return (StatusCode::REQUEST_TIMEOUT, "request body too slow").into_response(),
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                -32700,
                &format!("Parse error: {e}"),
            );
        }
        Ok(Value::Array(_)) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                -32600,
                "Invalid Request: JSON-RPC batches are not supported",
            );
        }
        Ok(Value::Object(_)) => {}
        Ok(_) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                -32600,
                "Invalid Request: expected a JSON-RPC object",
            );
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
