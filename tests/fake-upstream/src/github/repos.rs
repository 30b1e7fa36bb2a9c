//! Repositories: `GET /repos/{o}/{r}`, `GET /user/repos`, and the repository objects
//! (`full-repository`, `repository`, `minimal-repository`) other payloads embed.

use axum::Json;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::users::owner;
use super::{Urls, error, find_repo, node_id};
use crate::model::{Repo, Role, State, World};
use crate::state::Ctx;

const DOC_GET: &str = "/repos/repos#get-a-repository";

/// The `permissions` object for a role (none: a public repository read by a non-member).
pub fn permissions(role: Option<Role>) -> Value {
    let r = role.unwrap_or(Role::Read);
    json!({
        "admin": r >= Role::Admin,
        "maintain": r >= Role::Maintain,
        "push": r >= Role::Write,
        "triage": r >= Role::Triage,
        "pull": true,
    })
}

/// A `repository` object as listings return it, with the caller's permissions when known.
pub fn repo_json(u: &Urls, w: &World, repo: &Repo, role: Option<Role>) -> Value {
    let full = repo.full_name();
    let api = u.repo_api(&full);
    let html = u.repo_web(&full);
    let host = u.web.split("://").nth(1).unwrap_or("localhost");
    let open_issues = repo
        .issues
        .iter()
        .filter(|i| i.state == State::Open)
        .count()
        + repo.pulls.iter().filter(|p| p.state == State::Open).count();
    let size: usize = repo
        .git
        .branches
        .get(&repo.default_branch)
        .map(|sha| repo.git.tree(sha).values().map(String::len).sum::<usize>() / 1024)
        .unwrap_or(0);
    let pushed = repo
        .git
        .commits
        .values()
        .map(|c| c.date)
        .max()
        .unwrap_or(repo.created_at);
    json!({
        "id": repo.id,
        "node_id": node_id("010:Repository", repo.id),
        "name": repo.name,
        "full_name": full,
        "private": repo.private,
        "owner": owner(u, w, repo),
        "html_url": html,
        "description": repo.description,
        "fork": false,
        "url": api,
        "archive_url": format!("{api}/{{archive_format}}{{/ref}}"),
        "assignees_url": format!("{api}/assignees{{/user}}"),
        "blobs_url": format!("{api}/git/blobs{{/sha}}"),
        "branches_url": format!("{api}/branches{{/branch}}"),
        "collaborators_url": format!("{api}/collaborators{{/collaborator}}"),
        "comments_url": format!("{api}/comments{{/number}}"),
        "commits_url": format!("{api}/commits{{/sha}}"),
        "compare_url": format!("{api}/compare/{{base}}...{{head}}"),
        "contents_url": format!("{api}/contents/{{+path}}"),
        "contributors_url": format!("{api}/contributors"),
        "deployments_url": format!("{api}/deployments"),
        "downloads_url": format!("{api}/downloads"),
        "events_url": format!("{api}/events"),
        "forks_url": format!("{api}/forks"),
        "git_commits_url": format!("{api}/git/commits{{/sha}}"),
        "git_refs_url": format!("{api}/git/refs{{/sha}}"),
        "git_tags_url": format!("{api}/git/tags{{/sha}}"),
        "git_url": format!("git://{host}/{full}.git"),
        "issue_comment_url": format!("{api}/issues/comments{{/number}}"),
        "issue_events_url": format!("{api}/issues/events{{/number}}"),
        "issues_url": format!("{api}/issues{{/number}}"),
        "keys_url": format!("{api}/keys{{/key_id}}"),
        "labels_url": format!("{api}/labels{{/name}}"),
        "languages_url": format!("{api}/languages"),
        "merges_url": format!("{api}/merges"),
        "milestones_url": format!("{api}/milestones{{/number}}"),
        "notifications_url": format!("{api}/notifications{{?since,all,participating}}"),
        "pulls_url": format!("{api}/pulls{{/number}}"),
        "releases_url": format!("{api}/releases{{/id}}"),
        "ssh_url": format!("git@{host}:{full}.git"),
        "stargazers_url": format!("{api}/stargazers"),
        "statuses_url": format!("{api}/statuses/{{sha}}"),
        "subscribers_url": format!("{api}/subscribers"),
        "subscription_url": format!("{api}/subscription"),
        "tags_url": format!("{api}/tags"),
        "teams_url": format!("{api}/teams"),
        "trees_url": format!("{api}/git/trees{{/sha}}"),
        "clone_url": format!("{html}.git"),
        "mirror_url": null,
        "hooks_url": format!("{api}/hooks"),
        "svn_url": html,
        "homepage": null,
        "language": repo.language,
        "forks_count": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "size": size,
        "default_branch": repo.default_branch,
        "open_issues_count": open_issues,
        "is_template": false,
        "topics": repo.topics,
        "has_issues": true,
        "has_projects": true,
        "has_wiki": true,
        "has_pages": false,
        "has_downloads": true,
        "has_discussions": false,
        "archived": false,
        "disabled": false,
        "visibility": if repo.private { "private" } else { "public" },
        "pushed_at": pushed.github(),
        "created_at": repo.created_at.github(),
        "updated_at": repo.updated_at.max(pushed).github(),
        "permissions": permissions(role),
        "allow_forking": true,
        "web_commit_signoff_required": false,
        "license": null,
        "forks": 0,
        "open_issues": open_issues,
        "watchers": 0,
    })
}

/// The `full-repository` of `GET /repos/{o}/{r}`: a listing's fields plus merge settings,
/// counts and the organization.
pub fn full_repo_json(u: &Urls, w: &World, repo: &Repo, role: Option<Role>) -> Value {
    let mut v = repo_json(u, w, repo, role);
    let org = w.namespace(repo.owner()).map(|_| owner(u, w, repo));
    if let Some(o) = v.as_object_mut() {
        for (k, val) in [
            ("allow_rebase_merge", json!(true)),
            ("allow_squash_merge", json!(true)),
            ("allow_merge_commit", json!(true)),
            ("allow_auto_merge", json!(false)),
            ("delete_branch_on_merge", json!(false)),
            ("allow_update_branch", json!(false)),
            ("use_squash_pr_title_as_default", json!(false)),
            ("squash_merge_commit_title", json!("COMMIT_OR_PR_TITLE")),
            ("squash_merge_commit_message", json!("COMMIT_MESSAGES")),
            ("merge_commit_title", json!("MERGE_MESSAGE")),
            ("merge_commit_message", json!("PR_TITLE")),
            (
                "temp_clone_token",
                json!(if repo.private {
                    "AFAKE0TEMP0CLONE0TOKEN"
                } else {
                    ""
                }),
            ),
            ("network_count", json!(0)),
            ("subscribers_count", json!(repo.members.len())),
        ] {
            o.insert(k.to_owned(), val);
        }
        if let Some(org) = org {
            o.insert("organization".into(), org);
        }
    }
    v
}

/// `GET /repos/{owner}/{repo}`.
pub async fn get_repo(ctx: Ctx, Path((o, r)): Path<(String, String)>) -> Response {
    let w = ctx.app.world();
    let (idx, _) = match find_repo(&w, &ctx.caller, &o, &r, DOC_GET) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let Some(repo) = w.repos.get(idx) else {
        return error::not_found(DOC_GET);
    };
    let role = w.member_role(&ctx.caller.login, repo);
    Json(full_repo_json(&ctx.urls(), &w, repo, role)).into_response()
}

/// `GET /user/repos`: repositories the caller owns, collaborates on or reaches through an
/// organization; `type`, `visibility`, `sort`, `direction`, paged.
pub async fn list_for_user(ctx: Ctx) -> Response {
    let u = ctx.urls();
    let w = ctx.app.world();
    let me = ctx.caller.login.as_str();
    let kind = ctx.query.get("type").unwrap_or("all");
    let visibility = ctx.query.get("visibility").unwrap_or("all");
    let mut repos: Vec<(&Repo, Role)> = w
        .repos
        .iter()
        .filter_map(|r| w.member_role(me, r).map(|role| (r, role)))
        .filter(|(r, _)| match kind {
            "owner" => r.namespace == me,
            "public" => !r.private,
            "private" => r.private,
            "member" => r.namespace != me,
            _ => true,
        })
        .filter(|(r, _)| match visibility {
            "public" => !r.private,
            "private" => r.private,
            _ => true,
        })
        .collect();
    let sort = ctx.query.get("sort").unwrap_or("full_name");
    match sort {
        "created" => repos.sort_by_key(|(r, _)| std::cmp::Reverse(r.created_at)),
        "updated" | "pushed" => repos.sort_by_key(|(r, _)| std::cmp::Reverse(r.updated_at)),
        _ => repos.sort_by_key(|(r, _)| r.full_name().to_lowercase()),
    }
    let default_dir = if sort == "full_name" { "asc" } else { "desc" };
    if ctx.query.get("direction").unwrap_or(default_dir) != default_dir {
        repos.reverse();
    }
    let all = repos
        .into_iter()
        .map(|(r, role)| repo_json(&u, &w, r, Some(role)))
        .collect();
    drop(w);
    ctx.paged(all)
}
