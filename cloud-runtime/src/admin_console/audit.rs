//! The audit page: the tenant's records newest first, filtered as the admin API's search
//! filters them ([`crate::audit::search`]); a record's trace link shows every record of
//! that call (its decision, upstream requests and outcome).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::Console;
use super::connectors::unavailable;
use super::layout::{self, Section};
use super::session;
use crate::audit::chain::Parsed;
use crate::audit::search;

/// The filters the page's form has (the rest of the search's are reached by link).
const FORM_FILTERS: [&str; 4] = ["user", "agent", "tool", "decision"];

/// `GET /admin/t/{tenant}/audit`.
pub async fn show(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    params: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    let here = format!("/admin/t/{tenant}/audit");
    let admin = match session::admin(&console, &headers, &tenant, &here).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    // An empty field of the form is no filter.
    let params: BTreeMap<String, String> = params
        .map(|Query(p)| p)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let store = &console.api.store;
    let (page, error) = match search::parse(&tenant, &params, store.now_ms()) {
        Ok(filter) => match search::search(store, &filter).await {
            Ok(page) => (Some(page), None),
            Err(_) => return unavailable(&admin),
        },
        Err(e) => (None, Some(e.to_string())),
    };
    let value = |k: &str| params.get(k).cloned().unwrap_or_default();
    let next = page.as_ref().and_then(|p| p.next_cursor.as_ref()).map(|c| {
        let mut q: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| *k != "cursor")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        q.push(("cursor".into(), c.clone()));
        format!("{here}?{}", encode(&q))
    });
    let body = html! {
        form #audit-filter.filters method="get" action=(here) {
            @for f in FORM_FILTERS.iter().filter(|f| **f != "decision") {
                label { (f) input name=(f) value=(value(f)) size="14"; }
            }
            label { "decision"
                select name="decision" {
                    @for d in ["", "allow", "deny"] {
                        option value=(d) selected[value("decision") == d] { (if d.is_empty() { "any" } else { d }) }
                    }
                }
            }
            label { "from (RFC 3339)" input name="from" value=(value("from")) placeholder="2026-12-07T00:00:00Z" size="22"; }
            label { "to" input name="to" value=(value("to")) placeholder="now" size="22"; }
            @for (k, v) in params.iter().filter(|(k, _)| !FORM_FILTERS.contains(&k.as_str()) && !["from", "to", "cursor"].contains(&k.as_str())) {
                input type="hidden" name=(k) value=(v);
            }
            button #search type="submit" { "Search" }
        }
        @if let Some(e) = &error { p.error #audit-error { (e) } }
        @if let Some(page) = &page {
            div.table-wrap { table #audit-records {
                tr { th { "Time" } th.wide-only { "Kind" } th { "User" } th { "Agent" } th { "Tool" }
                     th.wide-only { "Target" } th { "Decision" } th { "Layer" } th.wide-only { "Outcome" }
                     th { "Trace" } }
                @for r in &page.records {
                    @if let Ok(p) = serde_json::from_str::<Parsed>(&r.line) {
                        @let rec = &p.record;
                        @let decision = rec.decision.map(|d| format!("{d:?}").to_lowercase()).unwrap_or_default();
                        tr.record {
                            td.time { (rec.time) }
                            td.kind.wide-only { (format!("{:?}", rec.kind).to_lowercase()) }
                            td.user { (rec.user) }
                            td.agent { (rec.agent) }
                            td.tool { code { (rec.tool) } }
                            td.target.wide-only { (rec.target.as_deref().unwrap_or("")) }
                            td.decision class=[(decision == "deny").then_some("deny")] { (decision) }
                            td.layer { (rec.layer.map(|l| l.as_str()).unwrap_or("")) }
                            td.outcome.wide-only {
                                (rec.outcome.as_deref().unwrap_or(""))
                                @if let Some(u) = &rec.upstream { (u.method) " " (u.route) " → " (u.status) }
                            }
                            td.trace { a href=(format!("{here}?{}", encode(&[("trace_id".into(), rec.trace_id.clone())]))) { code { (rec.trace_id.get(..8).unwrap_or(&rec.trace_id)) } } }
                        }
                    }
                }
            } }
            @if page.records.is_empty() { p.muted #audit-empty { "No record matches." } }
            @if let Some(n) = &next { p { a #next-page href=(n) { "Older records →" } } }
        }
    };
    layout::page(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &admin,
        Section::Audit,
        "Audit",
        body,
    )
}

/// `pairs` as a query string.
fn encode(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}
