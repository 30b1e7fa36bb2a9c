//! A live view of the tenant's calls as they happen: a page, and a stream of server-sent
//! events carrying each call decision and outcome the audit index gains (it follows the
//! chain within 250 ms; the stream looks every [`POLL`]). Each event's id is its place in
//! the trail, so a browser that reconnects (`Last-Event-ID`) misses nothing.
//!
//! The page's one script comes from the binary and only this page's CSP allows it
//! (`script-src 'self'`); it adds rows with `textContent`, so no field of a record ever
//! becomes markup.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use maud::html;
use serde_json::json;

use super::Console;
use super::layout::{self, Section};
use super::session;
use crate::audit::chain::Parsed;
use crate::audit::search::{decode_cursor, encode_cursor};
use crate::store::audit_index::After;

/// How often a stream looks for new records.
pub const POLL: Duration = Duration::from_millis(500);
/// Streams open at once, across tenants: each polls the store.
pub const MAX_STREAMS: usize = 32;
/// A stream ends after this long; the browser reconnects where it left off.
const LIFETIME: Duration = Duration::from_secs(3600);
/// Records per look.
const BATCH: u32 = 200;

/// The page's script.
pub const SCRIPT: &str = include_str!("live.js");

/// `GET /admin/t/{tenant}/live`.
pub async fn page(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/admin/t/{tenant}/live");
    let admin = match session::admin(&console, &headers, &tenant, &here).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let body = html! {
        p { "Calls as they happen: each decision and outcome, newest first. "
            span.muted #live-state { "connecting (needs JavaScript)" } }
        div.table-wrap { table #live-calls data-events=(format!("/admin/t/{tenant}/live/events")) {
            tr { th { "Time" } th { "Kind" } th { "User" } th { "Agent" } th { "Tool" }
                 th { "Decision" } th { "Layer" } th { "Outcome" } }
        } }
        noscript { p.notice { "The live view needs JavaScript; the audit page shows the same records." } }
    };
    layout::page_with_script(
        StatusCode::OK,
        &admin,
        Section::Live,
        "Live calls",
        body,
        "/admin/static/live.js",
    )
}

/// `GET /admin/t/{tenant}/live/events`: the stream.
pub async fn events(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/admin/t/{tenant}/live");
    if let Err(resp) = session::admin(&console, &headers, &tenant, &here).await {
        return resp;
    }
    let Ok(permit) = console.live_streams.clone().try_acquire_owned() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "30")],
            "too many live views are open; retry shortly",
        )
            .into_response();
    };
    let store = console.api.store.clone();
    // Where the browser left off, or now.
    let start = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| decode_cursor(c).ok())
        .unwrap_or(After {
            at_ms: store.now_ms(),
            chain: String::new(),
            seq: 0,
        });
    let deadline = tokio::time::Instant::now() + LIFETIME;
    let stream = futures_util::stream::unfold((start, permit), move |(after, permit)| {
        let store = store.clone();
        let tenant = tenant.clone();
        async move {
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
            let found = store
                .audit_after(&tenant, &after, &["decision", "outcome"], BATCH)
                .await
                // A failed look is tried again at the next.
                .unwrap_or_default();
            let next = found.last().map_or(after, |r| After {
                at_ms: r.at_ms,
                chain: r.chain.clone(),
                seq: u64::try_from(r.seq).unwrap_or(0),
            });
            let events: Vec<Result<Event, std::convert::Infallible>> = found
                .iter()
                .filter_map(|r| {
                    let p: Parsed = serde_json::from_str(&r.line).ok()?;
                    let rec = p.record;
                    let data = json!({
                        "time": rec.time,
                        "kind": format!("{:?}", rec.kind).to_lowercase(),
                        "user": rec.user,
                        "agent": rec.agent,
                        "tool": rec.tool,
                        "decision": rec.decision.map(|d| format!("{d:?}").to_lowercase()),
                        "layer": rec.layer.map(|l| l.as_str()),
                        "outcome": rec.outcome,
                        "trace_id": rec.trace_id,
                    });
                    Some(Ok(Event::default()
                        .id(encode_cursor(r))
                        .data(data.to_string())))
                })
                .collect();
            Some((futures_util::stream::iter(events), (next, permit)))
        }
    })
    .flatten();
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}
