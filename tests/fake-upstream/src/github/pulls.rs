//! Pull requests: list, get (JSON, or the unified diff with `Accept:
//! application/vnd.github.diff`), create, files (diff entries with `patch`), merge.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::issues::label_json;
use super::repos::repo_json;
use super::users::{association, owner, simple_user_by_login};
use super::{Urls, accepts, created, error, find_repo, json_object, node_id, number, opt_str};
use crate::diff::diff;
use crate::git::blob_sha;
use crate::model::{CiStatus, Pull, Repo, Role, State, World, changes, head_sha, range};
use crate::state::Ctx;
use crate::time_fmt::Timestamp;

const DOC_LIST: &str = "/pulls/pulls#list-pull-requests";
const DOC_GET: &str = "/pulls/pulls#get-a-pull-request";
const DOC_CREATE: &str = "/pulls/pulls#create-a-pull-request";
const DOC_FILES: &str = "/pulls/pulls#list-pull-requests-files";
const DOC_MERGE: &str = "/pulls/pulls#merge-a-pull-request";

fn branch_json(u: &Urls, w: &World, repo: &Repo, branch: &str, sha: &str) -> Value {
    json!({
        "label": format!("{}:{branch}", repo.owner()),
        "ref": branch,
        "sha": sha,
        "user": owner(u, w, repo),
        "repo": repo_json(u, w, repo, None),
    })
}

/// A `pull-request-simple` (`full` false) or `pull-request` (`full` true).
pub fn pull_json(u: &Urls, w: &World, repo: &Repo, p: &Pull, full: bool) -> Value {
    let name = repo.full_name();
    let api = format!("{}/pulls/{}", u.repo_api(&name), p.number);
    let issue = format!("{}/issues/{}", u.repo_api(&name), p.number);
    let html = format!("{}/pull/{}", u.repo_web(&name), p.number);
    let (base_sha, head) = range(repo, p);
    let base_head = match p.state {
        State::Open => repo.git.branches.get(&p.base).cloned().unwrap_or(base_sha),
        _ => p.base_sha.clone(),
    };
    let statuses = format!("{}/statuses/{head}", u.repo_api(&name));
    let assignees: Vec<Value> = p
        .assignees
        .iter()
        .map(|a| simple_user_by_login(u, w, a))
        .collect();
    let labels: Vec<Value> = p
        .labels
        .iter()
        .filter_map(|n| repo.labels.iter().find(|l| &l.name == n))
        .map(|l| label_json(u, repo, l))
        .collect();
    let mut v = json!({
        "url": api,
        "id": p.id,
        "node_id": node_id("011:PullRequest", p.id),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": issue,
        "commits_url": format!("{api}/commits"),
        "review_comments_url": format!("{api}/comments"),
        "review_comment_url": format!("{}/pulls/comments{{/number}}", u.repo_api(&name)),
        "comments_url": format!("{issue}/comments"),
        "statuses_url": statuses,
        "number": p.number,
        "state": if p.state == State::Open { "open" } else { "closed" },
        "locked": false,
        "title": p.title,
        "user": simple_user_by_login(u, w, &p.author),
        "body": p.body,
        "labels": labels,
        "milestone": null,
        "active_lock_reason": null,
        "created_at": p.created_at.github(),
        "updated_at": p.updated_at.github(),
        "closed_at": p.closed_at.map(|t| t.github()),
        "merged_at": p.merged_at.map(|t| t.github()),
        "merge_commit_sha": p.merge_commit_sha,
        "assignee": assignees.first().cloned().unwrap_or(Value::Null),
        "assignees": assignees,
        "requested_reviewers": p.reviewers.iter().map(|r| simple_user_by_login(u, w, r)).collect::<Vec<_>>(),
        "requested_teams": [],
        "head": branch_json(u, w, repo, &p.head, &head),
        "base": branch_json(u, w, repo, &p.base, &base_head),
        "_links": {
            "self": {"href": api},
            "html": {"href": html},
            "issue": {"href": issue},
            "comments": {"href": format!("{issue}/comments")},
            "review_comments": {"href": format!("{api}/comments")},
            "review_comment": {"href": format!("{}/pulls/comments{{/number}}", u.repo_api(&name))},
            "commits": {"href": format!("{api}/commits")},
            "statuses": {"href": statuses},
        },
        "author_association": association(w, repo, &p.author),
        "auto_merge": null,
        "draft": p.draft,
    });
    if full && let Some(o) = v.as_object_mut() {
        let files = changes(repo, p);
        let (mut additions, mut deletions) = (0, 0);
        for f in &files {
            let d = diff(
                f.old.as_deref().unwrap_or(""),
                f.new.as_deref().unwrap_or(""),
            );
            additions += d.additions;
            deletions += d.deletions;
        }
        let (b, h) = range(repo, p);
        let commits = repo.git.commits_between(&b, &h).len();
        let open = p.state == State::Open;
        let review_comments: usize = p.reviews.iter().map(|r| r.comments.len()).sum();
        for (k, val) in [
            ("merged", json!(p.state == State::Merged)),
            (
                "mergeable",
                if open {
                    json!(p.mergeable)
                } else {
                    Value::Null
                },
            ),
            (
                "rebaseable",
                if open {
                    json!(p.mergeable)
                } else {
                    Value::Null
                },
            ),
            ("mergeable_state", json!(mergeable_state(repo, p, &h))),
            (
                "merged_by",
                p.merged_by
                    .as_deref()
                    .map(|m| simple_user_by_login(u, w, m))
                    .unwrap_or(Value::Null),
            ),
            ("comments", json!(p.comments.len())),
            ("review_comments", json!(review_comments)),
            ("maintainer_can_modify", json!(false)),
            ("commits", json!(commits)),
            ("additions", json!(additions)),
            ("deletions", json!(deletions)),
            ("changed_files", json!(files.len())),
        ] {
            o.insert(k.to_owned(), val);
        }
    }
    v
}

fn mergeable_state(repo: &Repo, p: &Pull, head: &str) -> &'static str {
    if p.state != State::Open {
        return "unknown";
    }
    if !p.mergeable {
        return "dirty";
    }
    if p.draft {
        return "draft";
    }
    let failing = repo
        .pipelines
        .iter()
        .any(|pl| pl.sha == head && matches!(pl.status, CiStatus::Failed))
        || repo
            .statuses
            .iter()
            .any(|s| s.sha == head && matches!(s.state.as_str(), "failure" | "error"));
    if failing { "unstable" } else { "clean" }
}

/// `GET /repos/{o}/{r}/pulls`: `state`, `head` (`owner:branch`), `base`, `sort`, `direction`.
pub async fn list(ctx: Ctx, Path((o, r)): Path<(String, String)>) -> Response {
    let u = ctx.urls();
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_LIST) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let q = &ctx.query;
    let mut pulls: Vec<&Pull> = repo
        .pulls
        .iter()
        .filter(|p| match q.get("state").unwrap_or("open") {
            "closed" => p.state != State::Open,
            "all" => true,
            _ => p.state == State::Open,
        })
        .filter(|p| {
            q.non_empty("head").is_none_or(|h| {
                let branch = h.split_once(':').map_or(h, |(_, b)| b);
                p.head == branch
            })
        })
        .filter(|p| q.non_empty("base").is_none_or(|b| p.base == b))
        .collect();
    match q.get("sort").unwrap_or("created") {
        "updated" => pulls.sort_by_key(|p| (p.updated_at, p.id)),
        "popularity" => pulls.sort_by_key(|p| (p.comments.len(), p.id)),
        _ => pulls.sort_by_key(|p| (p.created_at, p.id)),
    }
    if q.get("direction").unwrap_or("desc") != "asc" {
        pulls.reverse();
    }
    let all = pulls
        .into_iter()
        .map(|p| pull_json(&u, &w, repo, p, false))
        .collect();
    drop(w);
    ctx.paged(all)
}

/// The unified diff of a pull request, as `Accept: application/vnd.github.diff` gets it.
pub fn unified_diff(repo: &Repo, p: &Pull) -> String {
    let mut out = String::new();
    for f in changes(repo, p) {
        let d = diff(
            f.old.as_deref().unwrap_or(""),
            f.new.as_deref().unwrap_or(""),
        );
        let short = |c: &Option<String>| {
            c.as_deref()
                .map_or("0000000".to_owned(), |c| blob_sha(c)[..7].to_owned())
        };
        out.push_str(&format!("diff --git a/{p} b/{p}\n", p = f.path));
        match (&f.old, &f.new) {
            (None, _) => out.push_str("new file mode 100644\n"),
            (_, None) => out.push_str("deleted file mode 100644\n"),
            _ => {}
        }
        let mode = if f.old.is_some() && f.new.is_some() {
            " 100644"
        } else {
            ""
        };
        out.push_str(&format!(
            "index {}..{}{mode}\n",
            short(&f.old),
            short(&f.new)
        ));
        out.push_str(&match f.old {
            Some(_) => format!("--- a/{}\n", f.path),
            None => "--- /dev/null\n".to_owned(),
        });
        out.push_str(&match f.new {
            Some(_) => format!("+++ b/{}\n", f.path),
            None => "+++ /dev/null\n".to_owned(),
        });
        out.push_str(&d.hunks);
    }
    out
}

/// `GET /repos/{o}/{r}/pulls/{n}`.
pub async fn get(ctx: Ctx, Path((o, r, n)): Path<(String, String, String)>) -> Response {
    let n = match number(&n, DOC_GET) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_GET) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(p) = repo.pulls.iter().find(|p| p.number == n) else {
        return error::not_found(DOC_GET);
    };
    if accepts(&ctx.headers, "application/vnd.github.diff")
        || accepts(&ctx.headers, "application/vnd.github.v3.diff")
    {
        return (
            [("content-type", "application/vnd.github.diff; charset=utf-8")],
            unified_diff(repo, p),
        )
            .into_response();
    }
    Json(pull_json(&ctx.urls(), &w, repo, p, true)).into_response()
}

/// `GET /repos/{o}/{r}/pulls/{n}/files`: `diff-entry` items, paged (at most 100 a page).
pub async fn files(ctx: Ctx, Path((o, r, n)): Path<(String, String, String)>) -> Response {
    let n = match number(&n, DOC_FILES) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let u = ctx.urls();
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_FILES) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(p) = repo.pulls.iter().find(|p| p.number == n) else {
        return error::not_found(DOC_FILES);
    };
    let head = head_sha(repo, p);
    let name = repo.full_name();
    let all = changes(repo, p)
        .into_iter()
        .map(|f| {
            let d = diff(
                f.old.as_deref().unwrap_or(""),
                f.new.as_deref().unwrap_or(""),
            );
            let status = match (&f.old, &f.new) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "modified",
            };
            let sha = blob_sha(f.new.as_deref().or(f.old.as_deref()).unwrap_or(""));
            json!({
                "sha": sha,
                "filename": f.path,
                "status": status,
                "additions": d.additions,
                "deletions": d.deletions,
                "changes": d.additions + d.deletions,
                "blob_url": format!("{}/blob/{head}/{}", u.repo_web(&name), f.path),
                "raw_url": format!("{}/raw/{head}/{}", u.repo_web(&name), f.path),
                "contents_url": format!("{}/contents/{}?ref={head}", u.repo_api(&name), f.path),
                "patch": d.hunks,
            })
        })
        .collect();
    drop(w);
    ctx.paged(all)
}

fn custom_error(message: &str) -> Response {
    error::validation(
        vec![json!({"resource": "PullRequest", "code": "custom", "message": message})],
        DOC_CREATE,
    )
}

/// `POST /repos/{o}/{r}/pulls` `{title, head, base, body, draft}`: 201, or 422 when the
/// branches are missing, have no commits between them, or a pull request exists.
pub async fn create(ctx: Ctx, Path((o, r)): Path<(String, String)>, body: Bytes) -> Response {
    let m = match json_object(&body, DOC_CREATE) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let fields = ["title", "head", "base", "body"].map(|f| opt_str(&m, f, DOC_CREATE));
    let [title, head, base, text] = match fields {
        [Ok(a), Ok(b), Ok(c), Ok(d)] => [a, b, c, d],
        [Err(e), ..] | [_, Err(e), ..] | [_, _, Err(e), _] | [.., Err(e)] => return e,
    };
    let missing: Vec<Value> = [("title", &title), ("head", &head), ("base", &base)]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(f, _)| json!({"resource": "PullRequest", "code": "missing_field", "field": f}))
        .collect();
    let (Some(title), Some(head), Some(base)) = (title, head, base) else {
        return error::validation(missing, DOC_CREATE);
    };
    let draft = m.get("draft").and_then(Value::as_bool).unwrap_or(false);
    let head_branch = head
        .split_once(':')
        .map_or(head.as_str(), |(_, b)| b)
        .to_owned();
    let mut w = ctx.app.world();
    let idx = match find_repo(&w, &ctx.caller, &o, &r, DOC_CREATE) {
        Ok((idx, _)) => idx,
        Err(e) => return e,
    };
    let repo = &w.repos[idx];
    let invalid = |field: &str| {
        error::validation(
            vec![json!({"resource": "PullRequest", "field": field, "code": "invalid"})],
            DOC_CREATE,
        )
    };
    let Some(head_sha) = repo.git.branches.get(&head_branch).cloned() else {
        return invalid("head");
    };
    let Some(base_head) = repo.git.branches.get(&base).cloned() else {
        return invalid("base");
    };
    if repo.git.commits_between(&base_head, &head_sha).is_empty() {
        return custom_error(&format!("No commits between {base} and {head_branch}"));
    }
    if repo
        .pulls
        .iter()
        .any(|p| p.state == State::Open && p.head == head_branch && p.base == base)
    {
        return custom_error(&format!(
            "A pull request already exists for {}:{head_branch}.",
            repo.owner()
        ));
    }
    let base_sha = repo
        .git
        .merge_base(&base_head, &head_sha)
        .unwrap_or(base_head);
    let id = w.next_id();
    let now = Timestamp::now();
    let repo = &mut w.repos[idx];
    let number = repo.next_number;
    repo.next_number += 1;
    repo.pulls.push(Pull {
        id,
        number,
        title,
        body: text.unwrap_or_default(),
        state: State::Open,
        draft,
        author: ctx.caller.login.clone(),
        head: head_branch,
        base,
        head_sha,
        base_sha,
        assignees: vec![],
        reviewers: vec![],
        labels: vec![],
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
    let Some(p) = repo.pulls.last() else {
        return error::not_found(DOC_CREATE);
    };
    let v = pull_json(&ctx.urls(), &w, repo, p, true);
    let location = v["url"].as_str().unwrap_or_default().to_owned();
    created(&location, v)
}

/// `PUT /repos/{o}/{r}/pulls/{n}/merge` `{merge_method, commit_title, commit_message, sha}`:
/// 200 merged, 405 not mergeable, 409 when `sha` is not the head.
pub async fn merge(
    ctx: Ctx,
    Path((o, r, n)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let n = match number(&n, DOC_MERGE) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let m = match json_object(&body, DOC_MERGE) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let fields = ["merge_method", "commit_title", "commit_message", "sha"]
        .map(|f| opt_str(&m, f, DOC_MERGE));
    let [method, title, message, sha] = match fields {
        [Ok(a), Ok(b), Ok(c), Ok(d)] => [a, b, c, d],
        [Err(e), ..] | [_, Err(e), ..] | [_, _, Err(e), _] | [.., Err(e)] => return e,
    };
    let method = method.unwrap_or_else(|| "merge".into());
    if !matches!(method.as_str(), "merge" | "squash" | "rebase") {
        return error::validation(
            vec![json!({"resource": "PullRequest", "code": "invalid", "field": "merge_method"})],
            DOC_MERGE,
        );
    }
    let mut w = ctx.app.world();
    let (idx, role) = match find_repo(&w, &ctx.caller, &o, &r, DOC_MERGE) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let repo = &w.repos[idx];
    let Some(p) = repo.pulls.iter().find(|p| p.number == n) else {
        return error::not_found(DOC_MERGE);
    };
    if role < Role::Write {
        return error::forbidden("Must have push access to repository.", DOC_MERGE);
    }
    let head = head_sha(repo, p);
    if p.state != State::Open || !p.mergeable || p.draft {
        return error::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Pull Request is not mergeable",
            DOC_MERGE,
        );
    }
    if sha.as_ref().is_some_and(|s| *s != head) {
        return error::error(
            StatusCode::CONFLICT,
            "Head branch was modified. Review and try the merge again.",
            DOC_MERGE,
        );
    }
    let Some(base_head) = repo.git.branches.get(&p.base).cloned() else {
        return error::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Pull Request is not mergeable",
            DOC_MERGE,
        );
    };
    let base_sha = repo
        .git
        .merge_base(&base_head, &head)
        .unwrap_or(base_head.clone());
    let changes: BTreeMap<String, Option<String>> = repo
        .git
        .changes_between(&base_sha, &head)
        .into_iter()
        .map(|c| (c.path, c.new))
        .collect();
    let title = title.unwrap_or_else(|| match method.as_str() {
        "merge" => format!("Merge pull request #{n} from {}/{}", repo.owner(), p.head),
        _ => format!("{} (#{n})", p.title),
    });
    let text = format!("{title}\n\n{}", message.unwrap_or_else(|| p.title.clone()));
    let parents = if method == "merge" {
        vec![base_head, head.clone()]
    } else {
        vec![base_head]
    };
    let now = Timestamp::now();
    let me = ctx.caller.login.clone();
    let repo = &mut w.repos[idx];
    let merge_sha = repo.git.commit(parents, &text, &me, now, changes);
    let base_branch = repo
        .pulls
        .iter()
        .find(|p| p.number == n)
        .map(|p| p.base.clone())
        .unwrap_or_default();
    repo.git.branches.insert(base_branch, merge_sha.clone());
    if let Some(p) = repo.pulls.iter_mut().find(|p| p.number == n) {
        p.state = State::Merged;
        p.head_sha = head;
        p.base_sha = base_sha;
        p.merged_at = Some(now);
        p.closed_at = Some(now);
        p.merged_by = Some(me);
        p.merge_commit_sha = Some(merge_sha.clone());
        p.updated_at = now;
    }
    repo.updated_at = now;
    Json(json!({"sha": merge_sha, "merged": true, "message": "Pull Request successfully merged"}))
        .into_response()
}
