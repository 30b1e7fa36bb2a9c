//! Who and where: the tenant's users (with who administers it), agents (and their key
//! rotation), the OAuth clients its users signed in with (and their revocation), and its
//! gateways with the MCP URL a client connects to.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
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
        Err(problem) => layout::refused(&admin, Section::People, "Key not rotated", &problem),
    }
}

/// `GET /admin/t/{tenant}/clients`.
pub async fn clients(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/admin/t/{tenant}/clients");
    let admin = match session::admin(&console, &headers, &tenant, &here).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let Ok(clients) = console.api.store.client_grants(&tenant).await else {
        return unavailable(&admin);
    };
    let body = html! {
        p { "The MCP clients the tenant's users signed in with. A revoked client gets no token here again and its refresh tokens are spent; an access token it holds lasts out its ten minutes." }
        div.table-wrap { table #clients {
            tr { th { "Client" } th { "Name" } th { "Redirects to" } th { "First use" } th { "Last use" } th { "Agent" } th {} }
            @for c in &clients {
                tr data-client=(c.client_id) {
                    td { code { (c.client_id) } }
                    td { (c.client_name.as_deref().unwrap_or("-")) }
                    td { (c.redirect_hosts().join(", ")) }
                    td { (layout::time(c.first_used_at)) }
                    td { (layout::time(c.last_used_at)) }
                    td { (c.agent.as_deref().unwrap_or("-")) }
                    td {
                        @if let Some(at) = c.revoked_at {
                            span.status-revoked { "revoked " (layout::time(at)) }
                        } @else {
                            form.revoke-client.inline method="post" action=(format!("/admin/t/{tenant}/clients/{}/revoke", c.client_id)) {
                                (csrf_field(&admin))
                                button.revoke-client.danger type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            }
        } }
        @if clients.is_empty() { p.muted { "No client has signed anyone in yet." } }
    };
    layout::page(
        StatusCode::OK,
        &admin,
        Section::Clients,
        "OAuth clients",
        body,
    )
}

/// `POST /admin/t/{tenant}/clients/{id}/revoke`: then back to the list.
pub async fn revoke_client(
    State(console): State<Arc<Console>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    match crate::admin_api::clients::revoke_client(&console.api, &admin.admin, &id).await {
        Ok(_) => Redirect::to(&format!("/admin/t/{tenant}/clients")).into_response(),
        Err(problem) => layout::refused(&admin, Section::Clients, "Not revoked", &problem),
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
