//! Notes (comments) on issues and merge requests: `GET` (`sort`, `order_by`, paged) and
//! `POST` (`body`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::users::basic_by_login;
use super::{Params, Urls, error, find_project, iid};
use crate::model::{Comment, Repo, World};
use crate::state::Ctx;
use crate::time_fmt::Timestamp;

/// Which kind of object a note hangs on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum On {
    Issue,
    MergeRequest,
}

fn note_json(
    u: &Urls,
    w: &World,
    repo: &Repo,
    on: On,
    noteable_id: u64,
    number: u64,
    c: &Comment,
) -> Value {
    json!({
        "id": c.id,
        "type": null,
        "body": c.body,
        "author": basic_by_login(u, w, &c.author),
        "created_at": c.created_at.gitlab(),
        "updated_at": c.updated_at.gitlab(),
        "system": false,
        "noteable_id": noteable_id,
        "noteable_type": if on == On::Issue { "Issue" } else { "MergeRequest" },
        "project_id": repo.id,
        "attachment": null,
        "resolvable": false,
        "confidential": false,
        "internal": false,
        "imported": false,
        "imported_from": "none",
        "noteable_iid": number,
        "commands_changes": {},
    })
}

fn list(ctx: Ctx, id: &str, n: &str, on: On) -> Response {
    let what = if on == On::Issue {
        "Issue"
    } else {
        "Merge Request"
    };
    let n = match iid(n, what) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let found = match on {
        On::Issue => repo
            .issues
            .iter()
            .find(|i| i.number == n)
            .map(|i| (i.id, &i.comments)),
        On::MergeRequest => repo
            .pulls
            .iter()
            .find(|p| p.number == n)
            .map(|p| (p.id, &p.comments)),
    };
    let Some((noteable_id, comments)) = found else {
        return error::not_found(what);
    };
    let mut notes: Vec<&Comment> = comments.iter().collect();
    match ctx.query.get("order_by").unwrap_or("created_at") {
        "updated_at" => notes.sort_by_key(|c| (c.updated_at, c.id)),
        _ => notes.sort_by_key(|c| (c.created_at, c.id)),
    }
    if ctx.query.get("sort").unwrap_or("desc") != "asc" {
        notes.reverse();
    }
    let all = notes
        .into_iter()
        .map(|c| note_json(&u, &w, repo, on, noteable_id, n, c))
        .collect();
    drop(w);
    ctx.paged(all)
}

fn create(ctx: Ctx, id: &str, n: &str, on: On, headers: &HeaderMap, body: &Bytes) -> Response {
    let what = if on == On::Issue {
        "Issue"
    } else {
        "Merge Request"
    };
    let n = match iid(n, what) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let p = match Params::from(&ctx.query, headers, body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let Some(text) = p.str("body") else {
        return error::bad_param("body is missing");
    };
    if text.trim().is_empty() {
        return error::validation("note", &["can't be blank"]);
    }
    let mut w = ctx.app.world();
    let idx = match find_project(&w, &ctx.caller, id) {
        Ok((idx, _)) => idx,
        Err(e) => return e,
    };
    let cid = w.next_id();
    let now = Timestamp::now();
    let c = Comment {
        id: cid,
        author: ctx.caller.login.clone(),
        body: text,
        created_at: now,
        updated_at: now,
    };
    let repo = &mut w.repos[idx];
    let noteable_id = match on {
        On::Issue => repo.issues.iter_mut().find(|i| i.number == n).map(|i| {
            i.comments.push(c.clone());
            i.updated_at = now;
            i.id
        }),
        On::MergeRequest => repo.pulls.iter_mut().find(|p| p.number == n).map(|p| {
            p.comments.push(c.clone());
            p.updated_at = now;
            p.id
        }),
    };
    let Some(noteable_id) = noteable_id else {
        return error::not_found(what);
    };
    let v = note_json(
        &ctx.gitlab_urls(),
        &w,
        &w.repos[idx],
        on,
        noteable_id,
        n,
        &c,
    );
    (StatusCode::CREATED, Json(v)).into_response()
}

/// `GET /projects/:id/issues/:iid/notes`.
pub async fn list_issue(ctx: Ctx, Path((id, n)): Path<(String, String)>) -> Response {
    list(ctx, &id, &n, On::Issue)
}

/// `POST /projects/:id/issues/:iid/notes`.
pub async fn create_issue(
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(ctx, &id, &n, On::Issue, &headers, &body)
}

/// `GET /projects/:id/merge_requests/:iid/notes`.
pub async fn list_mr(ctx: Ctx, Path((id, n)): Path<(String, String)>) -> Response {
    list(ctx, &id, &n, On::MergeRequest)
}

/// `POST /projects/:id/merge_requests/:iid/notes`.
pub async fn create_mr(
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(ctx, &id, &n, On::MergeRequest, &headers, &body)
}
