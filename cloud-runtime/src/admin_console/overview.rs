//! The overview: connectors online, calls and denials in the last hour, and certificates
//! that expire in the next two weeks.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::Console;
use super::layout::{self, Section};
use super::session;
use crate::store::ConnectorStatus;

/// Certificates expiring within this long are listed.
const EXPIRY_HORIZON_MS: i64 = 14 * 86_400_000;

/// `GET /admin/t/{tenant}/`.
pub async fn show(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/admin/t/{tenant}/");
    let admin = match session::admin(&console, &headers, &tenant, &here).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let store = &console.api.store;
    let now = store.now_ms();
    let (connectors, counts) = match (
        store.connectors().await,
        store.audit_decisions_since(&tenant, now - 3_600_000).await,
    ) {
        (Ok(c), Ok(n)) => (c, n),
        _ => return super::connectors::unavailable(&admin),
    };
    let ours: Vec<_> = connectors
        .into_iter()
        .filter(|c| c.tenant == tenant)
        .collect();
    let online = ours
        .iter()
        .filter(|c| c.status == ConnectorStatus::Online)
        .count();
    let expiring: Vec<_> = ours
        .iter()
        .filter(|c| {
            c.status != ConnectorStatus::Revoked && c.cert_not_after < now + EXPIRY_HORIZON_MS
        })
        .collect();
    let body = html! {
        div.cards {
            div.card { div.n #connectors-online { (online) } div.muted { "connectors online of " (ours.len()) } }
            div.card { div.n #calls-last-hour { (counts.0) } div.muted { "calls in the last hour" } }
            div.card { div.n #denials-last-hour { (counts.1) } div.muted { "denied in the last hour" } }
        }
        h2 { "Certificates expiring in the next 14 days" }
        @if expiring.is_empty() {
            p.muted #expiring { "None. Connectors renew their certificates by themselves; one listed here has not been online to do so." }
        } @else {
            div.table-wrap { table #expiring {
                tr { th { "Connector" } th { "Status" } th { "Expires" } }
                @for c in &expiring {
                    tr { td { code { (c.id) } } td { (format!("{:?}", c.status).to_lowercase()) } td { (layout::time(c.cert_not_after)) } }
                }
            } }
        }
    };
    layout::page(StatusCode::OK, &admin, Section::Overview, "Overview", body)
}
