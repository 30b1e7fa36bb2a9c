//! The connectors page: each connector's state, enrollment (a join token and the exact
//! commands that install and enroll a connector with it), and revocation.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::Console;
use super::layout::{self, Section, csrf_field};
use super::session::{self, ConsoleAdmin, CsrfForm};
use crate::admin_api::connectors::{install_commands, revoke_connector};
use crate::join_token;
use crate::store::ConnectorStatus;

/// How long a join token made here may be used.
const JOIN_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The page for a failed store.
pub fn unavailable(admin: &ConsoleAdmin) -> Response {
    layout::page(
        StatusCode::SERVICE_UNAVAILABLE,
        admin,
        Section::Overview,
        "Unavailable",
        html! { p.error { "The store is unavailable; try again shortly." } },
    )
}

/// `GET /admin/t/{tenant}/connectors`.
pub async fn show(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/admin/t/{tenant}/connectors");
    let admin = match session::admin(&console, &headers, &tenant, &here).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let Ok(all) = console.api.store.connectors().await else {
        return unavailable(&admin);
    };
    let connectors: Vec<_> = all.into_iter().filter(|c| c.tenant == tenant).collect();
    let body = html! {
        div.table-wrap { table #connectors {
            tr { th { "Connector" } th { "Status" } th { "Version" } th { "Transport" }
                 th { "Last seen" } th { "Certificate expires" } th { "Warnings" } th {} }
            @for c in &connectors {
                @let status = format!("{:?}", c.status).to_lowercase();
                tr data-connector=(c.id) {
                    td { code { (c.id) } }
                    td class=(format!("status status-{status}")) { (status) }
                    td { (c.version.as_deref().unwrap_or("-")) }
                    td { (c.transport.as_deref().unwrap_or("-")) }
                    td { (c.last_seen.map(layout::time).unwrap_or_else(|| "never".into())) }
                    td { (layout::time(c.cert_not_after)) }
                    td { @for w in &c.warnings { div { (w) } } }
                    td {
                        @if c.status != ConnectorStatus::Revoked {
                            form.revoke.inline method="post" action=(format!("/admin/t/{tenant}/connectors/{}/revoke", c.id)) {
                                (csrf_field(&admin))
                                button.revoke.danger type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            }
        } }
        @if connectors.is_empty() { p.muted { "No connector has enrolled yet." } }
        h2 { "Enroll a connector" }
        p { "A join token enrolls one connector, once, within an hour. The next page shows the commands to run on the connector's host." }
        form #join-token-form method="post" action=(format!("/admin/t/{tenant}/join-tokens")) {
            (csrf_field(&admin))
            button #create-join-token type="submit" { "Create a join token" }
        }
    };
    layout::page(
        StatusCode::OK,
        &admin,
        Section::Connectors,
        "Connectors",
        body,
    )
}

/// `POST /admin/t/{tenant}/join-tokens`: a join token and its install-and-enroll commands.
pub async fn create_join_token(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let api = &console.api;
    let Ok(issued) = join_token::issue(&api.store, &admin.admin.tenant, JOIN_TOKEN_TTL).await
    else {
        return unavailable(&admin);
    };
    let connector = issued.connector.to_string();
    // Made already: a failure to record it is logged, and the page still shown.
    let _ = crate::admin_api::record_act(
        api,
        &admin.admin,
        "admin.join_token.create",
        crate::admin_api::Acted::Connector(&connector),
    )
    .await;
    let commands = install_commands(api, &issued.token.text);
    let body = html! {
        p.notice { "This token is shown once. It enrolls connector " code #connector-id { (connector) }
                   " until " (layout::time(issued.expires_at)) "." }
        h2 { "Join token" }
        pre { code #join-token { (issued.token.text) } }
        h2 { "On a Debian or Ubuntu host" }
        pre { code #deb-command { (commands.deb) } }
        h2 { "On a RHEL or Fedora host" }
        pre { code #rpm-command { (commands.rpm) } }
        p { "The connector's host pins this runtime's CA by its fingerprint, "
            code { (api.ca_fingerprint) } ", and dials out only: no inbound port." }
        p { a href=(format!("/admin/t/{tenant}/connectors")) { "Back to the connectors" } }
    };
    layout::page(
        StatusCode::CREATED,
        &admin,
        Section::Connectors,
        "Join token",
        body,
    )
}

/// `POST /admin/t/{tenant}/connectors/{id}/revoke`: then back to the list.
pub async fn revoke(
    State(console): State<Arc<Console>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    match revoke_connector(&console.api, &admin.admin, &id).await {
        Ok(_) => Redirect::to(&format!("/admin/t/{tenant}/connectors")).into_response(),
        Err(problem) => layout::refused(&admin, Section::Connectors, "Not revoked", &problem),
    }
}
