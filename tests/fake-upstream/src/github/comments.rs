//! Issue (and pull request conversation) comments: `GET`/`POST
//! /repos/{o}/{r}/issues/{n}/comments`.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::Response;
use serde_json::{Value, json};

use super::users::{association, simple_user_by_login};
use super::{Urls, created, error, find_repo, json_object, node_id, number, req_str};
use crate::model::{Comment, Repo, World};
use crate::state::Ctx;
use crate::time_fmt::Timestamp;

const DOC_LIST: &str = "/issues/comments#list-issue-comments";
const DOC_CREATE: &str = "/issues/comments#create-an-issue-comment";

/// An `issue-comment`.
pub fn comment_json(
    u: &Urls,
    w: &World,
    repo: &Repo,
    number: u64,
    is_pull: bool,
    c: &Comment,
) -> Value {
    let full = repo.full_name();
    let api = format!("{}/issues/comments/{}", u.repo_api(&full), c.id);
    let page = if is_pull { "pull" } else { "issues" };
    json!({
        "id": c.id,
        "node_id": node_id("012:IssueComment", c.id),
        "url": api,
        "html_url": format!("{}/{page}/{number}#issuecomment-{}", u.repo_web(&full), c.id),
        "body": c.body,
        "user": simple_user_by_login(u, w, &c.author),
        "created_at": c.created_at.github(),
        "updated_at": c.updated_at.github(),
        "issue_url": format!("{}/issues/{number}", u.repo_api(&full)),
        "author_association": association(w, repo, &c.author),
        "performed_via_github_app": null,
        "reactions": {
            "url": format!("{api}/reactions"),
            "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0,
            "confused": 0, "heart": 0, "rocket": 0, "eyes": 0,
        },
    })
}

/// `GET /repos/{o}/{r}/issues/{n}/comments` (`since`, paged, oldest first).
pub async fn list(ctx: Ctx, Path((o, r, n)): Path<(String, String, String)>) -> Response {
    let n = match number(&n, DOC_LIST) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let u = ctx.urls();
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_LIST) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(item) = repo.items().into_iter().find(|i| i.number() == n) else {
        return error::not_found(DOC_LIST);
    };
    let is_pull = matches!(item, crate::model::Item::Pull(_));
    let since = ctx
        .query
        .non_empty("since")
        .and_then(Timestamp::parse_filter);
    let all = item
        .comments()
        .iter()
        .filter(|c| since.is_none_or(|s| c.updated_at >= s))
        .map(|c| comment_json(&u, &w, repo, n, is_pull, c))
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `POST /repos/{o}/{r}/issues/{n}/comments` `{body}`: 201. Anyone who can read may comment.
pub async fn create(
    ctx: Ctx,
    Path((o, r, n)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let n = match number(&n, DOC_CREATE) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let text = match json_object(&body, DOC_CREATE)
        .and_then(|m| req_str(&m, "body", "IssueComment", DOC_CREATE))
    {
        Ok(t) => t,
        Err(e) => return e,
    };
    let mut w = ctx.app.world();
    let idx = match find_repo(&w, &ctx.caller, &o, &r, DOC_CREATE) {
        Ok((idx, _)) => idx,
        Err(e) => return e,
    };
    let id = w.next_id();
    let now = Timestamp::now();
    let comment = Comment {
        id,
        author: ctx.caller.login.clone(),
        body: text,
        created_at: now,
        updated_at: now,
    };
    let repo = &mut w.repos[idx];
    let is_pull = if let Some(i) = repo.issues.iter_mut().find(|i| i.number == n) {
        i.comments.push(comment.clone());
        i.updated_at = now;
        false
    } else if let Some(p) = repo.pulls.iter_mut().find(|p| p.number == n) {
        p.comments.push(comment.clone());
        p.updated_at = now;
        true
    } else {
        return error::not_found(DOC_CREATE);
    };
    let v = comment_json(&ctx.urls(), &w, &w.repos[idx], n, is_pull, &comment);
    let location = v["url"].as_str().unwrap_or_default().to_owned();
    created(&location, v)
}
