//! Branches, refs and commits: `GET /branches`, `GET /git/ref/heads/{b}`, `POST /git/refs`,
//! `DELETE /git/refs/heads/{b}`, `GET /commits`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::users::simple_user;
use super::{Urls, created, error, find_repo, json_object, node_id, opt_str};
use crate::git::Commit;
use crate::model::{Repo, Role, World};
use crate::state::Ctx;
use crate::time_fmt::Timestamp;

const DOC_BRANCHES: &str = "/branches/branches#list-branches";
const DOC_REF: &str = "/git/refs#get-a-reference";
const DOC_CREATE_REF: &str = "/git/refs#create-a-reference";
const DOC_DELETE_REF: &str = "/git/refs#delete-a-reference";
const DOC_COMMITS: &str = "/commits/commits#list-commits";

/// A `commit` object as the commits list returns it.
pub fn commit_json(u: &Urls, w: &World, repo: &Repo, c: &Commit) -> Value {
    let full = repo.full_name();
    let api = u.repo_api(&full);
    let user = w.user(&c.author);
    // An author who is no user of the seed is written `Name <email>`: their commit is
    // matched to no account.
    let (name, email) = match user {
        Some(x) => (x.name.clone(), x.email.clone()),
        None => match c.author.split_once(" <") {
            Some((n, e)) => (n.to_owned(), e.trim_end_matches('>').to_owned()),
            None => (c.author.clone(), String::new()),
        },
    };
    let person = json!({"name": name, "email": email, "date": c.date.github()});
    // With no account GitHub sends `author` and `committer` as `{}` or `null` (schema
    // `commit`: nullable `oneOf [simple-user, empty-object]`); both forms are served.
    let (author, committer) = match user {
        Some(x) => (simple_user(u, x), simple_user(u, x)),
        None => (json!({}), Value::Null),
    };
    json!({
        "url": format!("{api}/commits/{}", c.sha),
        "sha": c.sha,
        "node_id": node_id("06:Commit", format!("{}:{}", repo.id, c.sha)),
        "html_url": format!("{}/commit/{}", u.repo_web(&full), c.sha),
        "comments_url": format!("{api}/commits/{}/comments", c.sha),
        "commit": {
            "url": format!("{api}/git/commits/{}", c.sha),
            "author": person,
            "committer": person,
            "message": c.message,
            "tree": {"url": format!("{api}/git/trees/{}", c.tree_sha), "sha": c.tree_sha},
            "comment_count": 0,
            "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null},
        },
        "author": author,
        "committer": committer,
        "parents": c.parents.iter().map(|p| json!({
            "url": format!("{api}/commits/{p}"),
            "sha": p,
            "html_url": format!("{}/commit/{p}", u.repo_web(&full)),
        })).collect::<Vec<_>>(),
    })
}

fn ref_json(u: &Urls, repo: &Repo, branch: &str, sha: &str) -> Value {
    let api = u.repo_api(&repo.full_name());
    json!({
        "ref": format!("refs/heads/{branch}"),
        "node_id": node_id("03:Ref", repo.id),
        "url": format!("{api}/git/refs/heads/{branch}"),
        "object": {"sha": sha, "type": "commit", "url": format!("{api}/git/commits/{sha}")},
    })
}

/// `GET /repos/{o}/{r}/branches` (`protected` filter, paged).
pub async fn list_branches(ctx: Ctx, Path((o, r)): Path<(String, String)>) -> Response {
    let u = ctx.urls();
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_BRANCHES) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let only_protected = ctx.query.get("protected");
    let api = u.repo_api(&repo.full_name());
    let all = repo
        .git
        .branches
        .iter()
        .filter(|(name, _)| match only_protected {
            Some("true") => **name == repo.default_branch,
            Some("false") => **name != repo.default_branch,
            _ => true,
        })
        .map(|(name, sha)| {
            json!({
                "name": name,
                "commit": {"sha": sha, "url": format!("{api}/commits/{sha}")},
                "protected": *name == repo.default_branch,
            })
        })
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `GET /repos/{o}/{r}/git/ref/heads/{branch}`.
pub async fn get_ref(ctx: Ctx, Path((o, r, name)): Path<(String, String, String)>) -> Response {
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_REF) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(branch) = name.strip_prefix("heads/") else {
        return error::not_found(DOC_REF);
    };
    match repo.git.branches.get(branch) {
        Some(sha) => Json(ref_json(&ctx.urls(), repo, branch, sha)).into_response(),
        None => error::not_found(DOC_REF),
    }
}

/// `POST /repos/{o}/{r}/git/refs` `{ref, sha}`: 201, or 422 "Reference already exists".
pub async fn create_ref(ctx: Ctx, Path((o, r)): Path<(String, String)>, body: Bytes) -> Response {
    let m = match json_object(&body, DOC_CREATE_REF) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let (name, sha) = match (
        opt_str(&m, "ref", DOC_CREATE_REF),
        opt_str(&m, "sha", DOC_CREATE_REF),
    ) {
        (Ok(Some(n)), Ok(Some(s))) => (n, s),
        (Err(e), _) | (_, Err(e)) => return e,
        (Ok(None), _) => return wasnt_supplied("ref"),
        (_, Ok(None)) => return wasnt_supplied("sha"),
    };
    let mut w = ctx.app.world();
    let (idx, role) = match find_repo(&w, &ctx.caller, &o, &r, DOC_CREATE_REF) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if role < Role::Write {
        return error::forbidden("Must have push access to repository.", DOC_CREATE_REF);
    }
    let repo = &mut w.repos[idx];
    if !name.starts_with("refs/") || name.matches('/').count() < 2 {
        return error::unprocessable(
            "Reference name must start with 'refs/' and have at least two slashes.",
            DOC_CREATE_REF,
        );
    }
    let Some(branch) = name.strip_prefix("refs/heads/").filter(|b| !b.is_empty()) else {
        return error::unprocessable(
            "Only branch references (refs/heads/...) are supported by this server",
            DOC_CREATE_REF,
        );
    };
    if repo.git.branches.contains_key(branch) {
        return error::unprocessable("Reference already exists", DOC_CREATE_REF);
    }
    if !repo.git.commits.contains_key(&sha) {
        return error::unprocessable("Object does not exist", DOC_CREATE_REF);
    }
    repo.git.branches.insert(branch.to_owned(), sha.clone());
    repo.updated_at = Timestamp::now();
    let body = ref_json(&ctx.urls(), repo, branch, &sha);
    let location = body["url"].as_str().unwrap_or_default().to_owned();
    created(&location, body)
}

fn wasnt_supplied(field: &str) -> Response {
    error::error(
        StatusCode::UNPROCESSABLE_ENTITY,
        &format!("Invalid request.\n\n\"{field}\" wasn't supplied."),
        DOC_CREATE_REF,
    )
}

/// `DELETE /repos/{o}/{r}/git/refs/heads/{branch}`: 204, or 422 when absent.
pub async fn delete_ref(ctx: Ctx, Path((o, r, name)): Path<(String, String, String)>) -> Response {
    let mut w = ctx.app.world();
    let (idx, role) = match find_repo(&w, &ctx.caller, &o, &r, DOC_DELETE_REF) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if role < Role::Write {
        return error::forbidden("Must have push access to repository.", DOC_DELETE_REF);
    }
    let repo = &mut w.repos[idx];
    let branch = name.strip_prefix("heads/").unwrap_or_default();
    if branch == repo.default_branch {
        return error::unprocessable("Cannot delete this protected branch", DOC_DELETE_REF);
    }
    if repo.git.branches.remove(branch).is_none() {
        return error::unprocessable("Reference does not exist", DOC_DELETE_REF);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /repos/{o}/{r}/commits?sha=&path=&author=&since=&until=` (paged, newest first).
pub async fn list_commits(ctx: Ctx, Path((o, r)): Path<(String, String)>) -> Response {
    let u = ctx.urls();
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_COMMITS) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let rev = ctx.query.non_empty("sha").unwrap_or(&repo.default_branch);
    let Some(head) = repo.git.resolve(rev) else {
        return error::error(
            StatusCode::NOT_FOUND,
            &format!("No commit found for SHA: {rev}"),
            DOC_COMMITS,
        );
    };
    let since = ctx
        .query
        .non_empty("since")
        .and_then(Timestamp::parse_filter);
    let until = ctx
        .query
        .non_empty("until")
        .and_then(Timestamp::parse_filter);
    let path = ctx.query.non_empty("path");
    let author = ctx.query.non_empty("author");
    let all = repo
        .git
        .log(&head)
        .into_iter()
        .filter(|c| since.is_none_or(|s| c.date >= s) && until.is_none_or(|t| c.date <= t))
        .filter(|c| {
            path.is_none_or(|p| {
                c.changes
                    .keys()
                    .any(|k| k == p || k.starts_with(&format!("{}/", p.trim_end_matches('/'))))
            })
        })
        .filter(|c| {
            author.is_none_or(|a| {
                c.author.eq_ignore_ascii_case(a) || w.user(&c.author).is_some_and(|x| x.email == a)
            })
        })
        .map(|c| commit_json(&u, &w, repo, c))
        .collect();
    drop(w);
    ctx.paged(all)
}
