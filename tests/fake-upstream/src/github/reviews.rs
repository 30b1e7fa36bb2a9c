//! Pull request reviews: `GET /repos/{o}/{r}/pulls/{n}/reviews` lists them (oldest first,
//! paged); `POST` with `{body, event, comments}` submits one, and GitHub refuses approving
//! or requesting changes on your own pull request (422).

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Urls;
use super::users::{association, simple_user_by_login};
use super::{error, find_repo, json_object, node_id, number, opt_str};
use crate::model::{Repo, Review, State, World, changes, head_sha};
use crate::state::Ctx;
use crate::time_fmt::Timestamp;

const DOC: &str = "/pulls/reviews#create-a-review-for-a-pull-request";
const DOC_LIST: &str = "/pulls/reviews#list-reviews-for-a-pull-request";

/// A `pull-request-review`.
fn review_json(u: &Urls, w: &World, repo: &Repo, n: u64, review: &Review) -> Value {
    let full = repo.full_name();
    let html = format!(
        "{}/pull/{n}#pullrequestreview-{}",
        u.repo_web(&full),
        review.id
    );
    let pr_url = format!("{}/pulls/{n}", u.repo_api(&full));
    let mut v = json!({
        "id": review.id,
        "node_id": node_id("017:PullRequestReview", review.id),
        "user": simple_user_by_login(u, w, &review.author),
        "body": review.body,
        "state": review.state,
        "html_url": html,
        "pull_request_url": pr_url,
        "_links": {"html": {"href": html}, "pull_request": {"href": pr_url}},
        "commit_id": review.commit_id,
        "author_association": association(w, repo, &review.author),
    });
    if review.state != "PENDING"
        && let Some(o) = v.as_object_mut()
    {
        o.insert("submitted_at".into(), json!(review.submitted_at.github()));
    }
    v
}

/// `GET /repos/{o}/{r}/pulls/{n}/reviews`: submitted reviews, oldest first, paged (a
/// pending review shows only to its author, as on GitHub).
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
    let Some(p) = repo.pulls.iter().find(|p| p.number == n) else {
        return error::not_found(DOC_LIST);
    };
    let all = p
        .reviews
        .iter()
        .filter(|rv| rv.state != "PENDING" || rv.author == ctx.caller.login)
        .map(|rv| review_json(&u, &w, repo, n, rv))
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `POST /repos/{o}/{r}/pulls/{n}/reviews`.
pub async fn create(
    ctx: Ctx,
    Path((o, r, n)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let n = match number(&n, DOC) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let m = match json_object(&body, DOC) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let (text, event, commit_id) = match (
        opt_str(&m, "body", DOC),
        opt_str(&m, "event", DOC),
        opt_str(&m, "commit_id", DOC),
    ) {
        (Ok(b), Ok(e), Ok(c)) => (b.unwrap_or_default(), e, c),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return e,
    };
    let state = match event.as_deref() {
        None => "PENDING",
        Some("APPROVE") => "APPROVED",
        Some("REQUEST_CHANGES") => "CHANGES_REQUESTED",
        Some("COMMENT") => "COMMENTED",
        Some(_) => {
            return error::validation(
                vec![json!({"resource": "PullRequestReview", "code": "invalid", "field": "event"})],
                DOC,
            );
        }
    };
    let mut line_comments = Vec::new();
    if let Some(list) = m.get("comments") {
        let Some(items) = list.as_array() else {
            return error::invalid_field("comments", list, "an array", DOC);
        };
        for c in items {
            let path = c.get("path").and_then(Value::as_str);
            let line = c
                .get("line")
                .or_else(|| c.get("position"))
                .and_then(Value::as_u64);
            let body = c.get("body").and_then(Value::as_str);
            match (path, line, body) {
                (Some(p), Some(l), Some(b)) => line_comments.push((p.to_owned(), l, b.to_owned())),
                _ => {
                    return error::invalid_field(
                        "comments/items",
                        c,
                        "a valid review comment",
                        DOC,
                    );
                }
            }
        }
    }
    if matches!(state, "CHANGES_REQUESTED" | "COMMENTED")
        && text.is_empty()
        && line_comments.is_empty()
    {
        return error::unprocessable_list(&["Review body is required for this event"], DOC);
    }
    let mut w = ctx.app.world();
    let idx = match find_repo(&w, &ctx.caller, &o, &r, DOC) {
        Ok((idx, _)) => idx,
        Err(e) => return e,
    };
    let me = ctx.caller.login.clone();
    let repo = &w.repos[idx];
    let Some(p) = repo.pulls.iter().find(|p| p.number == n) else {
        return error::not_found(DOC);
    };
    if p.author == me && state == "APPROVED" {
        return error::unprocessable_list(&["Can not approve your own pull request"], DOC);
    }
    if p.author == me && state == "CHANGES_REQUESTED" {
        return error::unprocessable_list(
            &["Can not request changes on your own pull request"],
            DOC,
        );
    }
    if p.state == State::Merged && state != "COMMENTED" {
        return error::unprocessable_list(&["Pull request is merged"], DOC);
    }
    let paths: Vec<String> = changes(repo, p).into_iter().map(|c| c.path).collect();
    if let Some((bad, _, _)) = line_comments
        .iter()
        .find(|(path, _, _)| !paths.contains(path))
    {
        let msg = format!("Path could not be resolved: {bad}");
        return error::unprocessable_list(&[msg.as_str()], DOC);
    }
    let head = head_sha(repo, p);
    let id = w.next_id();
    let now = Timestamp::now();
    let review = Review {
        id,
        author: me,
        state: state.to_owned(),
        body: text,
        commit_id: commit_id.unwrap_or(head),
        comments: line_comments,
        submitted_at: now,
    };
    let repo = &mut w.repos[idx];
    if let Some(p) = repo.pulls.iter_mut().find(|p| p.number == n) {
        p.reviews.push(review.clone());
        p.updated_at = now;
    }
    let repo = &w.repos[idx];
    Json(review_json(&ctx.urls(), &w, repo, n, &review)).into_response()
}
