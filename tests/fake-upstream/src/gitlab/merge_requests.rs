//! Merge requests: list, get (with `head_pipeline`, `diff_refs`, `changes_count`), diffs,
//! create (409 when one is open for the source branch), approve (401 when already
//! approved, as GitLab answers), merge (405 not mergeable, 409 sha mismatch, 401 without
//! permission).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::issues::tasks;
use super::pipelines::{pipeline_basic, pipeline_full};
use super::users::basic_by_login;
use super::{Params, Urls, error, find_project, iid};
use crate::diff::diff;
use crate::model::{Pull, Repo, Review, Role, State, World, changes, head_sha, range};
use crate::state::Ctx;
use crate::time_fmt::Timestamp;

const MR: &str = "Merge Request";

fn state_name(p: &Pull) -> &'static str {
    match p.state {
        State::Open => "opened",
        State::Closed => "closed",
        State::Merged => "merged",
    }
}

fn detailed_status(p: &Pull) -> &'static str {
    match () {
        _ if p.state != State::Open => "not_open",
        _ if p.draft => "draft_status",
        _ if !p.mergeable => "conflict",
        _ => "mergeable",
    }
}

/// A merge request; `full` adds the single-MR fields.
pub fn mr_json(u: &Urls, w: &World, repo: &Repo, p: &Pull, full: bool) -> Value {
    let name = repo.full_name();
    let assignees: Vec<Value> = p
        .assignees
        .iter()
        .map(|a| basic_by_login(u, w, a))
        .collect();
    let (count, done) = tasks(&p.body);
    let head = head_sha(repo, p);
    let mut v = json!({
        "id": p.id,
        "iid": p.number,
        "project_id": repo.id,
        "title": p.title,
        "description": p.body,
        "state": state_name(p),
        "created_at": p.created_at.gitlab(),
        "updated_at": p.updated_at.gitlab(),
        "merged_by": p.merged_by.as_deref().map(|m| basic_by_login(u, w, m)),
        "merge_user": p.merged_by.as_deref().map(|m| basic_by_login(u, w, m)),
        "merged_at": p.merged_at.map(|t| t.gitlab()),
        "merge_after": null,
        "closed_by": null,
        "closed_at": if p.state == State::Closed { json!(p.closed_at.map(|t| t.gitlab())) } else { Value::Null },
        "target_branch": p.base,
        "source_branch": p.head,
        "user_notes_count": p.comments.len(),
        "upvotes": 0,
        "downvotes": 0,
        "author": basic_by_login(u, w, &p.author),
        "assignees": assignees,
        "assignee": assignees.first().cloned().unwrap_or(Value::Null),
        "reviewers": p.reviewers.iter().map(|r| basic_by_login(u, w, r)).collect::<Vec<_>>(),
        "source_project_id": repo.id,
        "target_project_id": repo.id,
        "labels": p.labels,
        "draft": p.draft,
        "imported": false,
        "imported_from": "none",
        "work_in_progress": p.draft,
        "milestone": null,
        "merge_when_pipeline_succeeds": false,
        "merge_status": if p.mergeable { "can_be_merged" } else { "cannot_be_merged" },
        "detailed_merge_status": detailed_status(p),
        "sha": head,
        "merge_commit_sha": p.merge_commit_sha,
        "squash_commit_sha": null,
        "discussion_locked": null,
        "should_remove_source_branch": null,
        "force_remove_source_branch": true,
        "prepared_at": p.created_at.gitlab(),
        "reference": format!("!{}", p.number),
        "references": {"short": format!("!{}", p.number), "relative": format!("!{}", p.number), "full": format!("{name}!{}", p.number)},
        "web_url": format!("{}/{name}/-/merge_requests/{}", u.web, p.number),
        "time_stats": {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": null, "human_total_time_spent": null},
        "squash": false,
        "squash_on_merge": false,
        "task_completion_status": {"count": count, "completed_count": done},
        "has_conflicts": !p.mergeable,
        "blocking_discussions_resolved": true,
    });
    if full && let Some(o) = v.as_object_mut() {
        let pipeline = repo
            .pipelines
            .iter()
            .filter(|pl| pl.sha == head)
            .max_by_key(|pl| pl.id);
        let (base, _) = range(repo, p);
        let files = changes(repo, p).len();
        let start = repo
            .git
            .branches
            .get(&p.base)
            .cloned()
            .unwrap_or_else(|| base.clone());
        let role = w.member_role(&p.author, repo);
        for (k, val) in [
            ("subscribed", json!(true)),
            ("changes_count", json!(files.to_string())),
            (
                "latest_build_started_at",
                json!(
                    pipeline
                        .and_then(|pl| pl.jobs.iter().filter_map(|j| j.started_at).min())
                        .map(|t| t.gitlab())
                ),
            ),
            (
                "latest_build_finished_at",
                json!(
                    pipeline
                        .and_then(|pl| pl.jobs.iter().filter_map(|j| j.finished_at).max())
                        .map(|t| t.gitlab())
                ),
            ),
            ("first_deployed_to_production_at", Value::Null),
            (
                "pipeline",
                pipeline.map_or(Value::Null, |pl| pipeline_basic(u, repo, pl)),
            ),
            (
                "head_pipeline",
                pipeline.map_or(Value::Null, |pl| pipeline_full(u, w, repo, pl)),
            ),
            (
                "diff_refs",
                json!({"base_sha": base, "head_sha": head, "start_sha": start}),
            ),
            ("merge_error", Value::Null),
            ("first_contribution", json!(false)),
            (
                "user",
                json!({"can_merge": role.is_some_and(|r| r >= Role::Write)}),
            ),
            ("approvals_before_merge", Value::Null),
            ("diverged_commits_count", json!(0)),
            ("rebase_in_progress", json!(false)),
        ] {
            o.insert(k.to_owned(), val);
        }
    }
    v
}

/// `GET /projects/:id/merge_requests` (`state` (default all), `source_branch`,
/// `target_branch`, `labels`, `author_username`, `search`, `order_by`, `sort`).
pub async fn list(ctx: Ctx, Path(id): Path<String>) -> Response {
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let q = &ctx.query;
    let mut mrs: Vec<&Pull> = repo
        .pulls
        .iter()
        .filter(|p| match q.get("state").unwrap_or("all") {
            "all" => true,
            s => state_name(p) == s,
        })
        .filter(|p| q.non_empty("source_branch").is_none_or(|b| p.head == b))
        .filter(|p| q.non_empty("target_branch").is_none_or(|b| p.base == b))
        .filter(|p| q.non_empty("author_username").is_none_or(|a| p.author == a))
        .filter(|p| {
            q.non_empty("labels").is_none_or(|ls| {
                ls.split(',')
                    .all(|l| p.labels.iter().any(|x| x == l.trim()))
            })
        })
        .filter(|p| {
            q.non_empty("search")
                .is_none_or(|s| p.title.to_lowercase().contains(&s.to_lowercase()))
        })
        .collect();
    match q.get("order_by").unwrap_or("created_at") {
        "updated_at" => mrs.sort_by_key(|p| (p.updated_at, p.id)),
        _ => mrs.sort_by_key(|p| (p.created_at, p.id)),
    }
    if q.get("sort").unwrap_or("desc") != "asc" {
        mrs.reverse();
    }
    let all = mrs
        .into_iter()
        .map(|p| mr_json(&u, &w, repo, p, false))
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `GET /projects/:id/merge_requests/:iid`.
pub async fn get(ctx: Ctx, Path((id, n)): Path<(String, String)>) -> Response {
    let n = match iid(&n, MR) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    match repo.pulls.iter().find(|p| p.number == n) {
        Some(p) => Json(mr_json(&ctx.gitlab_urls(), &w, repo, p, true)).into_response(),
        None => error::not_found(MR),
    }
}

/// GitLab's default `diff_max_patch_bytes` (200 KiB): a file's diff past it is not sent.
const DIFF_MAX_PATCH_BYTES: usize = 200 * 1024;

/// `GET /projects/:id/merge_requests/:iid/diffs` (paged; a file's diff over
/// `DIFF_MAX_PATCH_BYTES` comes back empty with `too_large`).
pub async fn diffs(ctx: Ctx, Path((id, n)): Path<(String, String)>) -> Response {
    let n = match iid(&n, MR) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(p) = repo.pulls.iter().find(|p| p.number == n) else {
        return error::not_found(MR);
    };
    let all = changes(repo, p)
        .into_iter()
        .map(|f| {
            let d = diff(
                f.old.as_deref().unwrap_or(""),
                f.new.as_deref().unwrap_or(""),
            );
            // Over the limit GitLab empties `diff` and says `too_large`, with no line count.
            let too_large = d.hunks.len() > DIFF_MAX_PATCH_BYTES;
            json!({
                "old_path": f.path,
                "new_path": f.path,
                "a_mode": if f.old.is_some() { "100644" } else { "0" },
                "b_mode": if f.new.is_some() { "100644" } else { "0" },
                "diff": if too_large { "" } else { d.hunks.as_str() },
                "collapsed": false,
                "too_large": too_large,
                "new_file": f.old.is_none(),
                "renamed_file": false,
                "deleted_file": f.new.is_none(),
                "generated_file": false,
            })
        })
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `POST /projects/:id/merge_requests` (`source_branch`, `target_branch`, `title`,
/// `description`, `labels`, `assignee_ids`): 201; 409 if one is open for the branch.
pub async fn create(ctx: Ctx, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let p = match Params::from(&ctx.query, &headers, &body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let missing: Vec<String> = ["source_branch", "target_branch", "title"]
        .iter()
        .filter(|f| p.str(f).is_none())
        .map(|f| format!("{f} is missing"))
        .collect();
    let (Some(source), Some(target), Some(title)) = (
        p.str("source_branch"),
        p.str("target_branch"),
        p.str("title"),
    ) else {
        return error::bad_param(&missing.join(", "));
    };
    let mut w = ctx.app.world();
    let (idx, role) = match find_project(&w, &ctx.caller, &id) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if role < Role::Write {
        return error::forbidden();
    }
    let repo = &w.repos[idx];
    if source == target {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": ["You can't use same project/branch for source and target"]})),
        )
            .into_response();
    }
    let (Some(head_sha), Some(base_head)) = (
        repo.git.branches.get(&source).cloned(),
        repo.git.branches.get(&target).cloned(),
    ) else {
        let field = if repo.git.branches.contains_key(&source) {
            "target_branch"
        } else {
            "source_branch"
        };
        return error::validation(field, &["is invalid"]);
    };
    if let Some(existing) = repo
        .pulls
        .iter()
        .find(|x| x.state == State::Open && x.head == source)
    {
        let msg = format!(
            "Another open merge request already exists for this source branch: !{}",
            existing.number
        );
        return (StatusCode::CONFLICT, Json(json!({"message": [msg]}))).into_response();
    }
    let base_sha = repo
        .git
        .merge_base(&base_head, &head_sha)
        .unwrap_or(base_head);
    let pid = w.next_id();
    let now = Timestamp::now();
    let repo = &mut w.repos[idx];
    let number = repo.next_number;
    repo.next_number += 1;
    let draft = title.starts_with("Draft:") || title.starts_with("[Draft]");
    repo.pulls.push(Pull {
        id: pid,
        number,
        title,
        body: p.str("description").unwrap_or_default(),
        state: State::Open,
        draft,
        author: ctx.caller.login.clone(),
        head: source,
        base: target,
        head_sha,
        base_sha,
        assignees: vec![],
        reviewers: vec![],
        labels: p.list("labels").unwrap_or_default(),
        mergeable: true,
        comments: vec![],
        reviews: vec![],
        created_at: now,
        updated_at: now,
        closed_at: None,
        merged_at: None,
        merged_by: None,
        merge_commit_sha: None,
    });
    let repo = &w.repos[idx];
    let Some(mr) = repo.pulls.last() else {
        return error::not_found(MR);
    };
    (
        StatusCode::CREATED,
        Json(mr_json(&ctx.gitlab_urls(), &w, repo, mr, true)),
    )
        .into_response()
}

/// `POST /projects/:id/merge_requests/:iid/approve`: 201 with the approval state; 304 Not
/// Modified when the caller already approved (`not_modified!` in GitLab's
/// `lib/api/merge_request_approvals.rb`; versions before it answered 401); 401 when the
/// caller is the author or may not approve (below developer).
pub async fn approve(
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = match iid(&n, MR) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let params = match Params::from(&ctx.query, &headers, &body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut w = ctx.app.world();
    let (idx, role) = match find_project(&w, &ctx.caller, &id) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let me = ctx.caller.login.clone();
    let rid = w.next_id();
    let repo = &mut w.repos[idx];
    let Some(head) = repo
        .pulls
        .iter()
        .find(|p| p.number == n)
        .map(|p| head_sha(repo, p))
    else {
        return error::not_found(MR);
    };
    let Some(p) = repo.pulls.iter_mut().find(|p| p.number == n) else {
        return error::not_found(MR);
    };
    let already = p
        .reviews
        .iter()
        .any(|r| r.author == me && r.state == "APPROVED");
    if already {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    if p.author == me || role < Role::Write || p.state != State::Open {
        return error::unauthorized_message();
    }
    if let Some(sha) = params.str("sha")
        && sha != head
    {
        return error::message(
            StatusCode::CONFLICT,
            "SHA does not match HEAD of source branch",
        );
    }
    p.reviews.push(Review {
        id: rid,
        author: me.clone(),
        state: "APPROVED".into(),
        body: String::new(),
        commit_id: head,
        comments: vec![],
        submitted_at: Timestamp::now(),
    });
    let u = ctx.gitlab_urls();
    let repo = &w.repos[idx];
    let Some(p) = repo.pulls.iter().find(|p| p.number == n) else {
        return error::not_found(MR);
    };
    let v = approval_state(&u, &w, repo, p, &me, role);
    (StatusCode::CREATED, Json(v)).into_response()
}

/// The approval state of a merge request as `me` sees it (`approve` and `GET approvals`).
fn approval_state(u: &Urls, w: &World, repo: &Repo, p: &Pull, me: &str, role: Role) -> Value {
    let has_approved = p
        .reviews
        .iter()
        .any(|r| r.author == me && r.state == "APPROVED");
    let approved_by: Vec<Value> = p
        .reviews
        .iter()
        .filter(|r| r.state == "APPROVED")
        .map(|r| json!({"user": basic_by_login(u, w, &r.author), "approved_at": r.submitted_at.gitlab()}))
        .collect();
    json!({
        "id": p.id,
        "iid": p.number,
        "project_id": repo.id,
        "title": p.title,
        "description": p.body,
        "state": state_name(p),
        "created_at": p.created_at.gitlab(),
        "updated_at": p.updated_at.gitlab(),
        "merge_status": if p.mergeable { "can_be_merged" } else { "cannot_be_merged" },
        "approved": !approved_by.is_empty(),
        "approvals_required": 0,
        "approvals_left": 0,
        "require_password_to_approve": false,
        "approved_by": approved_by,
        "suggested_approvers": [],
        "approvers": [],
        "approver_groups": [],
        "user_has_approved": has_approved,
        "user_can_approve": !has_approved && p.author != me && role >= Role::Write,
        "approval_rules_left": [],
        "has_approval_rules": false,
        "merge_request_approvers_available": false,
        "multiple_approval_rules_available": false,
        "invalid_approvers_rules": [],
    })
}

/// `GET /projects/:id/merge_requests/:iid/approvals`: who approved, and whether the caller
/// has approved (`user_has_approved`) or may (`user_can_approve`).
pub async fn approvals(ctx: Ctx, Path((id, n)): Path<(String, String)>) -> Response {
    let n = match iid(&n, MR) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let w = ctx.app.world();
    let (idx, role) = match find_project(&w, &ctx.caller, &id) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let repo = &w.repos[idx];
    let Some(p) = repo.pulls.iter().find(|p| p.number == n) else {
        return error::not_found(MR);
    };
    let u = ctx.gitlab_urls();
    Json(approval_state(&u, &w, repo, p, &ctx.caller.login, role)).into_response()
}

/// `PUT /projects/:id/merge_requests/:iid/merge` (`sha`, `merge_commit_message`, `squash`,
/// `should_remove_source_branch`).
pub async fn merge(
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = match iid(&n, MR) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let params = match Params::from(&ctx.query, &headers, &body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut w = ctx.app.world();
    let (idx, role) = match find_project(&w, &ctx.caller, &id) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let repo = &w.repos[idx];
    let Some(p) = repo.pulls.iter().find(|p| p.number == n) else {
        return error::not_found(MR);
    };
    if role < Role::Write {
        return error::unauthorized_message();
    }
    if p.state != State::Open || p.draft || !p.mergeable {
        return error::message(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
    }
    let head = head_sha(repo, p);
    if let Some(sha) = params.str("sha")
        && sha != head
    {
        return error::message(
            StatusCode::CONFLICT,
            &format!("SHA does not match HEAD of source branch: {head}"),
        );
    }
    let Some(base_head) = repo.git.branches.get(&p.base).cloned() else {
        return error::message(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
    };
    let base_sha = repo
        .git
        .merge_base(&base_head, &head)
        .unwrap_or(base_head.clone());
    let files: BTreeMap<String, Option<String>> = repo
        .git
        .changes_between(&base_sha, &head)
        .into_iter()
        .map(|c| (c.path, c.new))
        .collect();
    let squash = params.flag("squash");
    let message = params.str("merge_commit_message").unwrap_or_else(|| {
        format!(
            "Merge branch '{}' into '{}'\n\n{}\n\nSee merge request {}!{n}",
            p.head,
            p.base,
            p.title,
            repo.full_name()
        )
    });
    let parents = if squash {
        vec![base_head]
    } else {
        vec![base_head, head.clone()]
    };
    let (source, target) = (p.head.clone(), p.base.clone());
    let remove_source = params.flag("should_remove_source_branch");
    let me = ctx.caller.login.clone();
    let now = Timestamp::now();
    let repo = &mut w.repos[idx];
    let sha = repo.git.commit(parents, &message, &me, now, files);
    repo.git.branches.insert(target, sha.clone());
    if remove_source {
        repo.git.branches.remove(&source);
    }
    if let Some(p) = repo.pulls.iter_mut().find(|p| p.number == n) {
        p.state = State::Merged;
        p.head_sha = head;
        p.base_sha = base_sha;
        p.merged_at = Some(now);
        p.closed_at = Some(now);
        p.merged_by = Some(me);
        p.merge_commit_sha = Some(sha);
        p.updated_at = now;
    }
    let repo = &w.repos[idx];
    let Some(p) = repo.pulls.iter().find(|p| p.number == n) else {
        return error::not_found(MR);
    };
    Json(mr_json(&ctx.gitlab_urls(), &w, repo, p, true)).into_response()
}
