//! Who and where: the tenant's users (with who administers it) and agents (and their key
//! rotation), and its gateways with the MCP URL a client connects to.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::Console;
use super::connectors::unavailable;
use super::layout::{self, Section, csrf_field};
use super::session::{self, CsrfForm};
use crate::admin_api::principals::rotate_key;

/// `GET /admin/t/{tenant}/people`.
pub async fn people(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/admin/t/{tenant}/people");
    let admin = match session::admin(&console, &headers, &tenant, &here).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let store = &console.api.store;
    let (Ok(users), Ok(agents), Ok(admin_group)) = (
        store.users(&tenant).await,
        store.agents(&tenant).await,
        store.admin_group(&tenant).await,
    ) else {
        return unavailable(&admin);
    };
    let body = html! {
        h2 { "Users" }
        p.muted { "Members of group " code { (admin_group) } " administer this tenant here." }
        div.table-wrap { table #users {
            tr { th { "Name" } th { "Id" } th { "Groups" } th { "Signs in at" } }
            @for u in &users {
                tr {
                    td { (u.name) @if u.groups.contains(&admin_group) { " (admin)" } }
                    td { code { (u.id.as_str()) } }
                    td { (u.groups.join(", ")) }
                    td { (if u.subject.is_some() { "identity provider" } else { "local secret" }) }
                }
            }
        } }
        h2 { "Agents" }
        div.table-wrap { table #agents {
            tr { th { "Name" } th { "Role" } th { "OAuth client" } th {} }
            @for a in &agents {
                tr data-agent=(a.name) {
                    td { (a.name) } td { (a.role) } td { code { (a.oauth_client_id.as_deref().unwrap_or("-")) } }
                    td {
                        form.rotate-key.inline method="post" action=(format!("/admin/t/{tenant}/agents/{}/rotate-key", a.name)) {
                            (csrf_field(&admin))
                            button.rotate-key.danger type="submit" { "Rotate key" }
                        }
                    }
                }
            }
        } }
    };
    layout::page(
        StatusCode::OK,
        &admin,
        Section::People,
        "Users & agents",
        body,
    )
}

/// `POST /admin/t/{tenant}/agents/{name}/rotate-key`: the new key, shown once.
pub async fn rotate_agent_key(
    State(console): State<Arc<Console>>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    match rotate_key(&console.api, &admin.admin, &name).await {
        Ok(key) => layout::page(
            StatusCode::OK,
            &admin,
            Section::People,
            "New agent key",
            html! {
                p.notice { "Agent " b { (name) } " has a new key, shown once. Its old key is refused from the next request on." }
                pre { code #agent-key { (key) } }
                p { "The agent sends it as " code { "X-MCP-Agent-Key" } "." }
                p { a href=(format!("/admin/t/{tenant}/people")) { "Back to users & agents" } }
            },
        ),
        Err(problem) => layout::page(
            problem.status,
            &admin,
            Section::People,
            "Key not rotated",
            html! { p.error { (problem.message) } },
        ),
    }
}

/// `GET /admin/t/{tenant}/gateways`.
pub async fn gateways(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/admin/t/{tenant}/gateways");
    let admin = match session::admin(&console, &headers, &tenant, &here).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let Ok(gateways) = console.api.store.gateways(Some(&tenant)).await else {
        return unavailable(&admin);
    };
    let base = &console.api.public_url;
    let body = html! {
        p { "An MCP client connects to a gateway's URL; it sees the tools the gateway exposes, as far as the policy allows its agent and user." }
        div.table-wrap { table #gateways {
            tr { th { "Gateway" } th { "MCP URL" } th { "Tools" } th { "Instructions" } }
            @for g in &gateways {
                tr {
                    td { (g.name) }
                    td { code.mcp-url { (format!("{base}/t/{}/g/{}/mcp", g.tenant, g.name)) } }
                    td { @if g.tools.is_empty() { "all" } @else { (g.tools.join(", ")) } }
                    td { (g.instructions.as_deref().unwrap_or("")) }
                }
            }
        } }
    };
    layout::page(StatusCode::OK, &admin, Section::Gateways, "Gateways", body)
}
