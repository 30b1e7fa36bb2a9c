//! The policy page: the file in force in an editor, then validate (errors at their line),
//! preview (the diff against the revision in force and a dry run of the decisions that
//! would turn) or apply; and the history of revisions, any of which can be put back in
//! force.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::Console;
use super::connectors::unavailable;
use super::layout::{self, Section, csrf_field};
use super::session::{self, ConsoleAdmin};
use crate::admin_api::policy::{FILE_NAME, preview_of, record, roll_back_as};
use crate::policy::apply::{self, ApplyError};
use crate::policy::file::MAX_POLICY_BYTES;
use crate::policy::preview;
use crate::store::policy::PolicyRevision;

/// What the form sends.
#[derive(Debug, Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    csrf: String,
    source: String,
    /// `validate`, `preview` or `apply`: the button pressed.
    action: String,
}

/// `GET /admin/t/{tenant}/policy`.
pub async fn show(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/admin/t/{tenant}/policy");
    let admin = match session::admin(&console, &headers, &tenant, &here).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let Ok(current) = console.api.store.policy(&tenant).await else {
        return unavailable(&admin);
    };
    let source = current
        .as_ref()
        .map(|c| c.source.clone())
        .unwrap_or_default();
    render(
        &console,
        &admin,
        current.as_ref(),
        &source,
        html! {},
        StatusCode::OK,
    )
    .await
}

/// `POST /admin/t/{tenant}/policy`: validate, preview or apply the edited file.
pub async fn submit(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<PolicyForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let store = &console.api.store;
    let Ok(current) = store.policy(&tenant).await else {
        return unavailable(&admin);
    };
    let text = form.source.replace("\r\n", "\n");
    if text.len() > MAX_POLICY_BYTES {
        let note = html! { p.error { "A policy file is at most " (MAX_POLICY_BYTES) " bytes." } };
        return render(
            &console,
            &admin,
            current.as_ref(),
            "",
            note,
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    }
    let proposed = match apply::validate(FILE_NAME, &text) {
        Ok((policy, _)) => policy,
        Err(e) => {
            let note = html! {
                ul.error #policy-errors {
                    li { "line " (e.line) ", column " (e.column) " (" (e.field) "): " (e.message) }
                }
                p { "Nothing was applied." }
            };
            return render(
                &console,
                &admin,
                current.as_ref(),
                &text,
                note,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let note = match form.action.as_str() {
        "validate" => {
            html! { p.notice #policy-valid { "The file is valid. Nothing was applied." } }
        }
        "preview" => match preview_of(&console.api, &admin.admin.tenant, &proposed, &text).await {
            Ok(found) => preview_markup(&found.diff, &found.run, found.tools),
            Err(_) => return unavailable(&admin),
        },
        "apply" => match apply::apply_text(store, &admin.admin.tenant, FILE_NAME, &text).await {
            Ok(applied) => {
                record(
                    &console.api,
                    &admin.admin,
                    "admin.policy.apply",
                    format!("policy revision {}", applied.revision),
                    &applied.sha256,
                )
                .await;
                let Ok(now) = store.policy(&tenant).await else {
                    return unavailable(&admin);
                };
                let note = html! {
                    p.notice #policy-applied { "Applied as revision " (applied.revision)
                        ". Sessions see their new tools within a second." }
                };
                return render(&console, &admin, now.as_ref(), &text, note, StatusCode::OK).await;
            }
            Err(ApplyError::Invalid(e)) => {
                html! { ul.error #policy-errors { li { "line " (e.line) ": " (e.message) } } }
            }
            Err(e) => html! { p.error { (e.to_string()) } },
        },
        _ => html! { p.error { "Unknown action." } },
    };
    render(
        &console,
        &admin,
        current.as_ref(),
        &text,
        note,
        StatusCode::OK,
    )
    .await
}

/// What the rollback form sends.
#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    #[serde(default)]
    csrf: String,
    revision: i64,
}

/// `POST /admin/t/{tenant}/policy/rollback`: an earlier revision's file in force again, as
/// the next revision.
pub async fn roll_back(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<RollbackForm>,
) -> Response {
    let admin = match session::admin_for_change(&console, &headers, &tenant, &form.csrf).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let (note, status) = match roll_back_as(&console.api, &admin.admin, form.revision).await {
        Ok(applied) => (
            html! {
                p.notice #policy-applied { "Revision " (form.revision) " is in force again, as revision "
                    (applied.revision) ". Sessions see their new tools within a second." }
            },
            StatusCode::OK,
        ),
        Err(ApplyError::NoRevision { .. }) => (
            html! { p.error { "This tenant has no such revision." } },
            StatusCode::NOT_FOUND,
        ),
        Err(ApplyError::Invalid(e)) => (
            html! { ul.error #policy-errors { li { "line " (e.line) ": " (e.message) } } },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(e) => (
            html! { p.error { (e.to_string()) } },
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    };
    let Ok(now) = console.api.store.policy(&tenant).await else {
        return unavailable(&admin);
    };
    let source = now.as_ref().map(|c| c.source.clone()).unwrap_or_default();
    render(&console, &admin, now.as_ref(), &source, note, status).await
}

fn preview_markup(diff: &str, run: &preview::DryRun, tools: usize) -> Markup {
    html! {
        h2 { "Changes to the file" }
        @if diff.is_empty() {
            p.muted { "The file is the one in force." }
        }
        pre #policy-diff {
            @for line in diff.lines() {
                @if line.starts_with('+') && !line.starts_with("+++") {
                    span.add { (line) } "\n"
                } @else if line.starts_with('-') && !line.starts_with("---") {
                    span.del { (line) } "\n"
                } @else {
                    (line) "\n"
                }
            }
        }
        h2 { "Decisions that would change" }
        p.muted { (run.checked) " (agent, user, tool) decisions checked over " (tools)
            " tools the tenant's connectors offer now"
            @if run.truncated { "; stopped at " (preview::MAX_CHECKS) } "." }
        div.table-wrap { table #policy-dry-run {
            tr { th { "Agent" } th { "User" } th { "Tool" } th { "Now" } th { "After" } }
            @for c in &run.changes {
                tr.change { td { (c.agent) } td { (c.user) } td { code { (c.tool) } } td { (c.before) } td { (c.after) } }
            }
        } }
        @if run.changes.is_empty() { p.muted { "No decision changes." } }
    }
}

async fn render(
    console: &Console,
    admin: &ConsoleAdmin,
    current: Option<&PolicyRevision>,
    source: &str,
    note: Markup,
    status: StatusCode,
) -> Response {
    let tenant = admin.admin.tenant.as_str();
    let Ok(history) = console.api.store.policy_history(tenant).await else {
        return unavailable(admin);
    };
    let body = html! {
        (note)
        p.muted {
            @match current {
                Some(c) => { "In force: revision " (c.revision) ", applied " (layout::time(c.applied_at)) "." }
                None => { "No policy applied yet: every call is denied." }
            }
        }
        form #policy-form method="post" action=(format!("/admin/t/{tenant}/policy")) {
            (csrf_field(admin))
            textarea #policy-source name="source" spellcheck="false" { (source) }
            p {
                button #validate.secondary type="submit" name="action" value="validate" { "Validate" } " "
                button #preview.secondary type="submit" name="action" value="preview" { "Preview changes" } " "
                button #apply type="submit" name="action" value="apply" { "Apply" }
            }
        }
        h2 { "History" }
        div.table-wrap { table #policy-history {
            tr { th { "Revision" } th { "Applied" } th { "File" } th { "SHA-256" } th {} }
            @for r in &history {
                tr data-revision=(r.revision) {
                    td { (r.revision) } td { (layout::time(r.applied_at)) } td { (r.file_name) } td { code { (r.sha256) } }
                    td {
                        @if current.is_some_and(|c| c.revision != r.revision) {
                            form.rollback.inline method="post" action=(format!("/admin/t/{tenant}/policy/rollback")) {
                                (csrf_field(admin))
                                input type="hidden" name="revision" value=(r.revision);
                                button.rollback.secondary type="submit" { "Put back in force" }
                            }
                        }
                    }
                }
            }
        } }
    };
    layout::page(status, admin, Section::Policy, "Policy", body)
}
