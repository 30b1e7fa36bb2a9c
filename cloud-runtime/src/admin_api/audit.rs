//! The tenant's audit trail: a search a page at a time ([`crate::audit::search`]), an
//! NDJSON export of the records' lines exactly as chained (each still checkable against
//! its hash), and a verification of the chains. Only the tenant's own records are ever
//! read; a verification says whether the chains hold, never what other tenants did.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AdminApi;
use super::auth;
use super::problem::Problem;
use super::tokens::Scope;
use crate::audit::search::{self, MAX_LIMIT, SearchError};
use crate::audit::verify;
use crate::store::audit_index::{AuditFilter, FoundRecord};

type Params = Result<Query<BTreeMap<String, String>>, QueryRejection>;

/// The search the query string asks for, or a 400 that says what is wrong with it.
fn filter(api: &AdminApi, tenant: &str, params: Params) -> Result<AuditFilter, Problem> {
    let Query(params) =
        params.map_err(|e| Problem::bad_request(format!("malformed query string: {e}")))?;
    search::parse(tenant, &params, api.store.now_ms())
        .map_err(|e: SearchError| Problem::bad_request(e.to_string()))
}

fn view(r: &FoundRecord) -> Value {
    json!({
        "chain": r.chain,
        "seq": r.seq,
        "at_ms": r.at_ms,
        // The line as chained, hash and all: a reader can check it.
        "record": serde_json::from_str::<Value>(&r.line).unwrap_or(Value::Null),
    })
}

/// `GET /admin/api/v1/t/{tenant}/audit`: one page of the tenant's records, newest first.
pub async fn search(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::AuditRead).await?;
    let filter = filter(&api, admin.tenant.as_str(), params)?;
    let page = search::search(&api.store, &filter).await?;
    Ok(Json(json!({
        "records": page.records.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

/// `GET /admin/api/v1/t/{tenant}/audit/export`: every record the search matches, to the
/// end of its range, one chained line per line (`application/x-ndjson`), streamed a page
/// at a time. The export is itself written to the audit trail first.
pub async fn export(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::AuditRead).await?;
    let mut filter = filter(&api, admin.tenant.as_str(), params)?;
    filter.limit = MAX_LIMIT;
    super::record_act(&api, &admin, "admin.audit.export", super::Acted::Nothing).await?;
    let store = api.store.clone();
    let pages = futures_util::stream::unfold(Some(filter), move |state| {
        let store = store.clone();
        async move {
            let mut filter = state?;
            match search::search(&store, &filter).await {
                Ok(page) => {
                    let mut chunk = Vec::new();
                    for r in &page.records {
                        chunk.extend_from_slice(r.line.as_bytes());
                        chunk.push(b'\n');
                    }
                    let next = page.next_cursor.and_then(|c| {
                        filter.after = search::decode_cursor(&c).ok();
                        filter.after.is_some().then_some(filter)
                    });
                    Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), next))
                }
                // The status is sent already: cutting the stream short is how the client
                // learns the export is incomplete.
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let mut resp = Body::from_stream(pages).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

/// `GET /admin/api/v1/t/{tenant}/audit/verify`: whether every chain still holds (each
/// record unchanged, none removed or reordered, none cut from the end), and how many of
/// the tenant's records the search index holds. One verification runs at a time.
pub async fn verify(
    State(api): State<Arc<AdminApi>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let admin = auth::admin(&api.store, &headers, &tenant, Scope::AuditRead).await?;
    let Ok(_running) = api.verifying.try_acquire() else {
        return Err(Problem::busy(
            "a verification is running; retry when it ends",
        ));
    };
    let chains = verify::chains(&api.store, &api.audit_file)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "admin API: reading the audit chains");
            Problem::unavailable("the audit chains cannot be read; retry shortly")
        })?;
    let checked = tokio::task::spawn_blocking(move || {
        chains
            .iter()
            .map(|c| (c.name.clone(), verify::verify(c)))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|_| Problem::unavailable("the verification stopped; retry"))?;
    let mut intact = true;
    let mut reports = Vec::new();
    for (name, result) in checked {
        let problems = match result {
            Ok(Ok(_)) => Vec::new(),
            Ok(Err(problems)) => problems.iter().map(ToString::to_string).collect(),
            Err(e) => vec![format!("unreadable: {e}")],
        };
        intact &= problems.is_empty();
        reports.push(json!({
            "chain": name,
            "intact": problems.is_empty(),
            "problems": problems.len(),
            "first_problem": problems.first(),
        }));
    }
    Ok(Json(json!({
        "intact": intact,
        "chains": reports,
        "tenant_records_indexed": api.store.audit_index_count(admin.tenant.as_str()).await?,
    })))
}
