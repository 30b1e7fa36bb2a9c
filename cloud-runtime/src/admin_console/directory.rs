//! Who and where: the tenant's users (with who administers it), agents (and their key
//! rotation), the OAuth clients its users signed in with (their revocation, and binding
//! one to an agent), and its gateways with the MCP URL a client connects to; adding and
//! removing users, agents and gateways. Each act is the admin API's function
//! ([`crate::admin_api::principals`]), so it is checked and audited the same way.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::Console;
use super::connectors::unavailable;
use super::layout::{self, Section, csrf_field};
use super::session::{self, CsrfForm};
use crate::admin_api::connections;
use crate::admin_api::principals::{self, NewAgent, NewGateway, NewUser, rotate_key};

/// What a user, agent or role name may be (the browser's hint; the server checks).
const NAME_PATTERN: &str = "[A-Za-z0-9._@\\-]{1,64}";

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
            tr { th { "Name" } th { "Id" } th { "Groups" } th { "Signs in at" } th {} }
            @for u in &users {
                tr data-user=(u.name) {
                    td { (u.name) @if u.groups.contains(&admin_group) { " (admin)" } }
                    td { code { (u.id.as_str()) } }
                    td { (u.groups.join(", ")) }
                    td { (if u.subject.is_some() { "identity provider" } else { "local secret" }) }
                    td {
                        form.remove-user.inline method="post" action=(format!("/admin/t/{tenant}/users/{}/remove", u.name)) {
                            (csrf_field(&admin))
                            button.remove-user.danger type="submit" { "Remove" }
                        }
                    }
                }
            }
        } }
        h3 { "Add a local user" }
        p.muted { "Users who sign in at the tenant's identity provider appear here at their first sign-in. A local user signs in with a secret, shown once on the next page." }
        form #add-user.filters method="post" action=(format!("/admin/t/{tenant}/users")) {
            (csrf_field(&admin))
            label { "Name" input name="name" required maxlength="64" pattern=(NAME_PATTERN); }
            label { "Groups (comma-separated)" input name="groups" maxlength="2048"; }
            label { "Administrator" input type="checkbox" name="admin" value="true"; }
            button #add-user-submit type="submit" { "Add user" }
        }
        p { a #connections-link href=(format!("/admin/t/{tenant}/connections")) { "Users' upstream connections" } " (asked of every online connector)" }
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
                        " "
                        form.remove-agent.inline method="post" action=(format!("/admin/t/{tenant}/agents/{}/remove", a.name)) {
                            (csrf_field(&admin))
                            button.remove-agent.danger type="submit" { "Remove" }
                        }
                    }
                }
            }
        } }
        h3 { "Register an agent" }
        p.muted { "The role names the tools the agent may call in the tenant's policy. Its key is shown once on the next page; bind an OAuth client to it from the OAuth clients page." }
        form #create-agent.filters method="post" action=(format!("/admin/t/{tenant}/agents")) {
            (csrf_field(&admin))
            label { "Name" input name="name" required maxlength="64" pattern=(NAME_PATTERN); }
            label { "Role" input name="role" required maxlength="64" pattern=(NAME_PATTERN); }
            button #create-agent-submit type="submit" { "Register agent" }
        }
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

/// The form that adds a local user.
#[derive(Debug, Deserialize)]
pub struct AddUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// Comma-separated.
    #[serde(default)]
    groups: String,
    #[serde(default)]
    admin: Option<String>,
}

/// `POST /admin/t/{tenant}/users`: the new user's sign-in secret, shown once.
pub async fn add_user(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<AddUserForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let user = NewUser {
        name: form.name.trim().to_owned(),
        groups: comma_list(&form.groups),
        admin: form.admin.is_some(),
    };
    let name = user.name.clone();
    match principals::add_user(&console.api, &admin.admin, user).await {
        Ok((added, groups)) => layout::page(
            StatusCode::CREATED,
            &admin,
            Section::People,
            "User added",
            html! {
                p.notice { "User " b { (name) } " (" code { (added.id.as_str()) } ") is in groups " (groups.join(", ")) ". Their sign-in secret is shown once:" }
                pre { code #user-secret { (added.secret) } }
                p { a href=(format!("/admin/t/{tenant}/people")) { "Back to users & agents" } }
            },
        ),
        Err(problem) => layout::refused(&admin, Section::People, "User not added", &problem),
    }
}

/// `POST /admin/t/{tenant}/users/{name}/remove`: then back to the list.
pub async fn remove_user(
    State(console): State<Arc<Console>>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    match principals::remove_user(&console.api, &admin.admin, &name).await {
        Ok(()) => Redirect::to(&format!("/admin/t/{tenant}/people")).into_response(),
        Err(problem) => layout::refused(&admin, Section::People, "User not removed", &problem),
    }
}

/// The form that registers an agent.
#[derive(Debug, Deserialize)]
pub struct CreateAgentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// `POST /admin/t/{tenant}/agents`: the new agent's key, shown once.
pub async fn create_agent(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CreateAgentForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let agent = NewAgent {
        name: form.name.trim().to_owned(),
        role: form.role.trim().to_owned(),
        oauth_client_id: None,
    };
    let name = agent.name.clone();
    match principals::create_agent(&console.api, &admin.admin, agent).await {
        Ok(key) => layout::page(
            StatusCode::CREATED,
            &admin,
            Section::People,
            "Agent registered",
            html! {
                p.notice { "Agent " b { (name) } " is registered. Its key is shown once:" }
                pre { code #agent-key { (key) } }
                p { "The agent sends it as " code { "X-MCP-Agent-Key" } "." }
                p { a href=(format!("/admin/t/{tenant}/people")) { "Back to users & agents" } }
            },
        ),
        Err(problem) => layout::refused(&admin, Section::People, "Agent not registered", &problem),
    }
}

/// `POST /admin/t/{tenant}/agents/{name}/remove`: then back to the list.
pub async fn remove_agent(
    State(console): State<Arc<Console>>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    match principals::remove_agent(&console.api, &admin.admin, &name).await {
        Ok(()) => Redirect::to(&format!("/admin/t/{tenant}/people")).into_response(),
        Err(problem) => layout::refused(&admin, Section::People, "Agent not removed", &problem),
    }
}

/// Comma-separated items, trimmed, empty ones dropped.
fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
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
    let (Ok(clients), Ok(agents)) = (
        console.api.store.client_grants(&tenant).await,
        console.api.store.agents(&tenant).await,
    ) else {
        return unavailable(&admin);
    };
    let body = html! {
        p { "The MCP clients the tenant's users signed in with. A revoked client gets no token here again, its refresh tokens are spent, and the access tokens it holds are refused within a second." }
        div.table-wrap { table #clients {
            tr { th { "Client" } th { "Name" } th { "Redirects to" } th { "First use" } th { "Last use" } th { "Agent" } th {} }
            @for c in &clients {
                tr data-client=(c.client_id) {
                    td { code { (c.client_id) } }
                    td { (c.client_name.as_deref().unwrap_or("-")) }
                    td { (c.redirect_hosts().join(", ")) }
                    td { (layout::time(c.first_used_at)) }
                    td { (layout::time(c.last_used_at)) }
                    td {
                        (c.agent.as_deref().unwrap_or("-"))
                        @if c.revoked_at.is_none() && !agents.is_empty() {
                            form.bind-client method="post" action=(format!("/admin/t/{tenant}/clients/{}/bind", c.client_id)) {
                                (csrf_field(&admin))
                                select name="agent" aria-label="Agent" {
                                    @for a in &agents { option value=(a.name) selected[c.agent.as_deref() == Some(a.name.as_str())] { (a.name) } }
                                }
                                " "
                                button.bind-client.secondary type="submit" { "Bind" }
                            }
                        }
                    }
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
        p.muted { "Binding a client to an agent makes the tokens it gets for this tenant's users act as that agent (for clients that cannot send an agent key)." }
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

/// The form that binds a client to an agent.
#[derive(Debug, Deserialize)]
pub struct BindForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    agent: String,
}

/// `POST /admin/t/{tenant}/clients/{id}/bind`: then back to the list.
pub async fn bind_client(
    State(console): State<Arc<Console>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<BindForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    match principals::bind_client(&console.api, &admin.admin, &form.agent, &id).await {
        Ok(()) => Redirect::to(&format!("/admin/t/{tenant}/clients")).into_response(),
        Err(problem) => layout::refused(&admin, Section::Clients, "Not bound", &problem),
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
            tr { th { "Gateway" } th { "MCP URL" } th { "Tools" } th { "Instructions" } th {} }
            @for g in &gateways {
                tr data-gateway=(g.name) {
                    td { (g.name) }
                    td { code.mcp-url { (format!("{base}/t/{}/g/{}/mcp", g.tenant, g.name)) } }
                    td { @if g.tools.is_empty() { "all" } @else { (g.tools.join(", ")) } }
                    td { (g.instructions.as_deref().unwrap_or("")) }
                    td {
                        form.remove-gateway.inline method="post" action=(format!("/admin/t/{tenant}/gateways/{}/remove", g.name)) {
                            (csrf_field(&admin))
                            button.remove-gateway.danger type="submit" { "Remove" }
                        }
                    }
                }
            }
        } }
        h3 { "Create a gateway" }
        form #create-gateway.filters method="post" action=(format!("/admin/t/{tenant}/gateways")) {
            (csrf_field(&admin))
            label { "Name" input name="name" required maxlength="63" pattern="[a-z0-9][a-z0-9\\-]{0,62}"; }
            label { "Tools (comma-separated patterns, e.g. github_*)" input name="tools" required maxlength="2048"; }
            label { "Instructions" input name="instructions" maxlength="4096"; }
            button #create-gateway-submit type="submit" { "Create gateway" }
        }
    };
    layout::page(StatusCode::OK, &admin, Section::Gateways, "Gateways", body)
}

/// The form that creates a gateway.
#[derive(Debug, Deserialize)]
pub struct GatewayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// Comma-separated patterns.
    #[serde(default)]
    tools: String,
    #[serde(default)]
    instructions: String,
}

/// `POST /admin/t/{tenant}/gateways`: then back to the list.
pub async fn create_gateway(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<GatewayForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let gateway = NewGateway {
        name: form.name.trim().to_owned(),
        tools: comma_list(&form.tools),
        instructions: Some(form.instructions),
    };
    match principals::create_gateway(&console.api, &admin.admin, gateway).await {
        Ok(_) => Redirect::to(&format!("/admin/t/{tenant}/gateways")).into_response(),
        Err(problem) => layout::refused(&admin, Section::Gateways, "Gateway not created", &problem),
    }
}

/// `POST /admin/t/{tenant}/gateways/{name}/remove`: then back to the list.
pub async fn remove_gateway(
    State(console): State<Arc<Console>>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    match principals::remove_gateway(&console.api, &admin.admin, &name).await {
        Ok(()) => Redirect::to(&format!("/admin/t/{tenant}/gateways")).into_response(),
        Err(problem) => layout::refused(&admin, Section::Gateways, "Gateway not removed", &problem),
    }
}

/// `GET /admin/t/{tenant}/connections`: who connected which provider, at which connector.
pub async fn connections(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/admin/t/{tenant}/connections");
    let admin = match session::admin(&console, &headers, &tenant, &here).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let (found, unreachable) = match connections::connections(&console.api, &admin.admin).await {
        Ok(answer) => answer,
        Err(problem) => {
            return layout::refused(&admin, Section::People, "Upstream connections", &problem);
        }
    };
    let body = html! {
        p { "Each user's tokens at an upstream live in the vault of the connector they connected through; each online connector was asked. Revoking one makes the connector forget its tokens: the user's next call asks them to connect again." }
        div.table-wrap { table #connections {
            tr { th { "User" } th { "Provider" } th { "Account" } th { "Connector" } th { "Source" } th { "Connected" } th {} }
            @for c in &found {
                tr data-user=(c.connection.user) data-provider=(c.connection.provider) {
                    td { (c.user_name.as_deref().unwrap_or("")) " " code { (c.connection.user) } }
                    td { (c.connection.provider) }
                    td { (c.connection.account.as_deref().unwrap_or("-")) }
                    td { code { (c.connector) } }
                    td { (c.connection.source) }
                    td { (layout::time(c.connection.connected_at_ms)) }
                    td {
                        form.revoke-connection.inline method="post" action=(format!("/admin/t/{tenant}/connectors/{}/connections/revoke", c.connector)) {
                            (csrf_field(&admin))
                            input type="hidden" name="provider" value=(c.connection.provider);
                            input type="hidden" name="user" value=(c.connection.user);
                            button.revoke-connection.danger type="submit" { "Revoke" }
                        }
                    }
                }
            }
        } }
        @if found.is_empty() { p.muted { "No user has connected an upstream account through an online connector." } }
        @for u in &unreachable {
            p.error { "Connector " code { (u.connector) } " did not answer: " (u.message) }
        }
    };
    layout::page(
        StatusCode::OK,
        &admin,
        Section::People,
        "Upstream connections",
        body,
    )
}

/// The form that revokes a connection.
#[derive(Debug, Deserialize)]
pub struct RevokeConnectionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    user: String,
}

/// `POST /admin/t/{tenant}/connectors/{id}/connections/revoke`: then back to the list.
pub async fn revoke_connection(
    State(console): State<Arc<Console>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<RevokeConnectionForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    match connections::revoke(&console.api, &admin.admin, &id, &form.provider, &form.user).await {
        Ok(_) => Redirect::to(&format!("/admin/t/{tenant}/connections")).into_response(),
        Err(problem) => layout::refused(&admin, Section::People, "Not revoked", &problem),
    }
}
