//! Repository content: files (`/repository/files/:file_path?ref=`), branches (list, get,
//! create, delete) and commits (`/repository/commits?ref_name=&since=&until=&path=`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Params, Urls, error, find_project};
use crate::git::{Commit, blob_sha};
use crate::model::{Repo, Role, World};
use crate::state::Ctx;
use crate::time_fmt::Timestamp;

/// A commit object.
pub fn commit_json(u: &Urls, w: &World, repo: &Repo, c: &Commit) -> Value {
    let user = w.user(&c.author);
    let name = user.map_or(c.author.as_str(), |x| x.name.as_str());
    let email = user.map_or(String::new(), |x| x.email.clone());
    json!({
        "id": c.sha,
        "short_id": c.sha.get(..8).unwrap_or(&c.sha),
        "created_at": c.date.gitlab(),
        "parent_ids": c.parents,
        "title": c.message.lines().next().unwrap_or(""),
        "message": c.message,
        "author_name": name,
        "author_email": email,
        "authored_date": c.date.gitlab(),
        "committer_name": name,
        "committer_email": email,
        "committed_date": c.date.gitlab(),
        "trailers": {},
        "extended_trailers": {},
        "web_url": format!("{}/{}/-/commit/{}", u.web, repo.full_name(), c.sha),
    })
}

fn branch_json(
    u: &Urls,
    w: &World,
    repo: &Repo,
    name: &str,
    sha: &str,
    role: Option<Role>,
) -> Value {
    let merged = name != repo.default_branch
        && repo
            .git
            .branches
            .get(&repo.default_branch)
            .is_some_and(|d| repo.git.ancestors(d).contains(sha));
    let protected = name == repo.default_branch;
    let can_push = role.is_some_and(|r| {
        if protected {
            r >= Role::Maintain
        } else {
            r >= Role::Write
        }
    });
    json!({
        "name": name,
        "commit": repo.git.commits.get(sha).map(|c| commit_json(u, w, repo, c)),
        "merged": merged,
        "protected": protected,
        "developers_can_push": false,
        "developers_can_merge": false,
        "can_push": can_push,
        "default": protected,
        "web_url": format!("{}/{}/-/tree/{name}", u.web, repo.full_name()),
    })
}

/// `GET /projects/:id/repository/files/:file_path?ref=`.
pub async fn file(ctx: Ctx, Path((id, path)): Path<(String, String)>) -> Response {
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(rev) = ctx.query.non_empty("ref") else {
        return error::bad_param("ref is missing");
    };
    let Some(sha) = repo.git.resolve(rev) else {
        return error::not_found("Commit");
    };
    let tree = repo.git.tree(&sha);
    let Some(content) = tree.get(&path) else {
        return error::not_found("File");
    };
    let last = repo
        .git
        .log(&sha)
        .into_iter()
        .find(|c| c.changes.contains_key(&path))
        .map_or(sha.clone(), |c| c.sha.clone());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, content.as_bytes());
    Json(json!({
        "file_name": path.rsplit('/').next().unwrap_or(&path),
        "file_path": path,
        "size": content.len(),
        "encoding": "base64",
        "content_sha256": hex::encode(digest.as_ref()),
        "ref": rev,
        "blob_id": blob_sha(content),
        "commit_id": sha,
        "last_commit_id": last,
        "execute_filemode": false,
        "content": STANDARD.encode(content.as_bytes()),
    }))
    .into_response()
}

/// `GET /projects/:id/repository/branches` (`search`, paged).
pub async fn branches(ctx: Ctx, Path(id): Path<String>) -> Response {
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let role = w.member_role(&ctx.caller.login, repo);
    let all = repo
        .git
        .branches
        .iter()
        .filter(|(n, _)| ctx.query.non_empty("search").is_none_or(|s| n.contains(s)))
        .map(|(n, sha)| branch_json(&u, &w, repo, n, sha, role))
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `GET /projects/:id/repository/branches/:branch`.
pub async fn branch(ctx: Ctx, Path((id, name)): Path<(String, String)>) -> Response {
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    match repo.git.branches.get(&name) {
        Some(sha) => Json(branch_json(
            &ctx.gitlab_urls(),
            &w,
            repo,
            &name,
            sha,
            w.member_role(&ctx.caller.login, repo),
        ))
        .into_response(),
        None => error::not_found("Branch"),
    }
}

/// `POST /projects/:id/repository/branches?branch=&ref=`: 201, or 400 "Branch already exists".
pub async fn create_branch(
    ctx: Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match Params::from(&ctx.query, &headers, &body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let (name, rev) = match (p.str("branch"), p.str("ref")) {
        (Some(b), Some(r)) => (b, r),
        (None, None) => return error::bad_param("branch is missing, ref is missing"),
        (None, _) => return error::bad_param("branch is missing"),
        (_, None) => return error::bad_param("ref is missing"),
    };
    let mut w = ctx.app.world();
    let (idx, role) = match find_project(&w, &ctx.caller, &id) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if role < Role::Write {
        return error::forbidden();
    }
    let repo = &mut w.repos[idx];
    if repo.git.branches.contains_key(&name) {
        return error::message(StatusCode::BAD_REQUEST, "Branch already exists");
    }
    if name.is_empty()
        || name.contains("..")
        || name.contains(' ')
        || name.starts_with('-')
        || name.ends_with('/')
    {
        return error::message(StatusCode::BAD_REQUEST, "Branch name is invalid");
    }
    let Some(sha) = repo.git.resolve(&rev) else {
        return error::message(StatusCode::BAD_REQUEST, "Invalid reference name: ref");
    };
    repo.git.branches.insert(name.clone(), sha.clone());
    repo.updated_at = Timestamp::now();
    let repo = &w.repos[idx];
    let v = branch_json(&ctx.gitlab_urls(), &w, repo, &name, &sha, Some(role));
    (StatusCode::CREATED, Json(v)).into_response()
}

/// `DELETE /projects/:id/repository/branches/:branch`: 204.
pub async fn delete_branch(ctx: Ctx, Path((id, name)): Path<(String, String)>) -> Response {
    let mut w = ctx.app.world();
    let (idx, role) = match find_project(&w, &ctx.caller, &id) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let repo = &mut w.repos[idx];
    if !repo.git.branches.contains_key(&name) {
        return error::not_found("Branch");
    }
    if role < Role::Write {
        return error::forbidden();
    }
    if name == repo.default_branch {
        return error::message(
            StatusCode::BAD_REQUEST,
            "The default branch of a project cannot be deleted.",
        );
    }
    repo.git.branches.remove(&name);
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /projects/:id/repository/commits` (`ref_name`, `since`, `until`, `path`,
/// `author`, paged).
pub async fn commits(ctx: Ctx, Path(id): Path<String>) -> Response {
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let q = &ctx.query;
    let rev = q.non_empty("ref_name").unwrap_or(&repo.default_branch);
    let Some(head) = repo.git.resolve(rev) else {
        return error::not_found("Commit");
    };
    let since = q.non_empty("since").and_then(Timestamp::parse_filter);
    let until = q.non_empty("until").and_then(Timestamp::parse_filter);
    let all = repo
        .git
        .log(&head)
        .into_iter()
        .filter(|c| since.is_none_or(|s| c.date >= s) && until.is_none_or(|t| c.date <= t))
        .filter(|c| {
            q.non_empty("path").is_none_or(|p| {
                c.changes
                    .keys()
                    .any(|k| k == p || k.starts_with(&format!("{}/", p.trim_end_matches('/'))))
            })
        })
        .filter(|c| {
            q.non_empty("author").is_none_or(|a| {
                let user = w.user(&c.author);
                c.author.contains(a)
                    || user.is_some_and(|x| x.name.contains(a) || x.email.contains(a))
            })
        })
        .map(|c| commit_json(&u, &w, repo, c))
        .collect();
    drop(w);
    ctx.paged(all)
}
