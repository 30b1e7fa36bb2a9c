//! Projects: `GET /projects` (`membership`, `search`, `simple`, `order_by`, `sort`, paged)
//! and `GET /projects/:id`.

use axum::Json;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Urls, error, find_project};
use crate::model::{Repo, Role, State, World};
use crate::state::Ctx;

/// A project; `simple` gives the reduced `simple=true` form.
pub fn project_json(u: &Urls, w: &World, repo: &Repo, role: Option<Role>, simple: bool) -> Value {
    let full = repo.full_name();
    let web = format!("{}/{full}", u.web);
    let host = u.web.split("://").nth(1).unwrap_or("localhost");
    let ns = w.namespace(&repo.namespace);
    let ns_name = ns.map_or(repo.namespace.as_str(), |n| n.name.as_str());
    let name_with_ns = {
        let mut parts: Vec<String> = Vec::new();
        let mut path = String::new();
        for seg in repo.namespace.split('/') {
            path = if path.is_empty() {
                seg.to_owned()
            } else {
                format!("{path}/{seg}")
            };
            parts.push(
                w.namespace(&path)
                    .map_or(seg.to_owned(), |n| n.name.clone()),
            );
        }
        parts.push(repo.name.clone());
        parts.join(" / ")
    };
    let last_activity = repo
        .git
        .commits
        .values()
        .map(|c| c.date)
        .max()
        .unwrap_or(repo.created_at)
        .max(repo.updated_at);
    let parent = repo
        .namespace
        .rsplit_once('/')
        .and_then(|(p, _)| w.namespace(p))
        .map(|n| n.id);
    let namespace = json!({
        "id": ns.map_or(repo.id + 100, |n| n.id),
        "name": ns_name,
        "path": repo.namespace.rsplit('/').next().unwrap_or(&repo.namespace),
        "kind": if ns.is_some() { "group" } else { "user" },
        "full_path": repo.namespace,
        "parent_id": parent,
        "avatar_url": null,
        "web_url": format!("{}/groups/{}", u.web, repo.namespace),
    });
    let readme = repo
        .git
        .branches
        .get(&repo.default_branch)
        .filter(|sha| repo.git.tree(sha).contains_key("README.md"))
        .map(|_| format!("{web}/-/blob/{}/README.md", repo.default_branch));
    let mut v = json!({
        "id": repo.id,
        "description": repo.description,
        "name": repo.name,
        "name_with_namespace": name_with_ns,
        "path": repo.name,
        "path_with_namespace": full,
        "created_at": repo.created_at.gitlab(),
        "default_branch": repo.default_branch,
        "tag_list": repo.topics,
        "topics": repo.topics,
        "ssh_url_to_repo": format!("git@{host}:{full}.git"),
        "http_url_to_repo": format!("{web}.git"),
        "web_url": web,
        "readme_url": readme,
        "forks_count": 0,
        "avatar_url": null,
        "star_count": 0,
        "last_activity_at": last_activity.gitlab(),
        "namespace": namespace,
    });
    // `simple=true` is GitLab's `BasicProjectDetails`: no `visibility`.
    if simple {
        return v;
    }

    let api = format!("{}/projects/{}", u.api, repo.id);
    let open_issues = repo
        .issues
        .iter()
        .filter(|i| i.state == State::Open)
        .count();
    let project_access = role.map_or(
        Value::Null,
        |r| json!({"access_level": r.gitlab_access_level(), "notification_level": 3}),
    );
    let extra = [
        (
            "visibility",
            json!(if repo.private { "private" } else { "public" }),
        ),
        (
            "container_registry_image_prefix",
            json!(format!("{host}:5050/{full}")),
        ),
        (
            "_links",
            json!({
                "self": api,
                "issues": format!("{api}/issues"),
                "merge_requests": format!("{api}/merge_requests"),
                "repo_branches": format!("{api}/repository/branches"),
                "labels": format!("{api}/labels"),
                "events": format!("{api}/events"),
                "members": format!("{api}/members"),
                "cluster_agents": format!("{api}/cluster_agents"),
            }),
        ),
        ("packages_enabled", json!(true)),
        ("empty_repo", json!(repo.git.commits.is_empty())),
        ("archived", json!(false)),
        ("resolve_outdated_diff_discussions", json!(false)),
        (
            "container_expiration_policy",
            json!({"cadence": "1d", "enabled": false, "keep_n": 10, "older_than": "90d", "name_regex": ".*", "name_regex_keep": null, "next_run_at": repo.created_at.gitlab()}),
        ),
        ("repository_object_format", json!("sha1")),
        ("issues_enabled", json!(true)),
        ("merge_requests_enabled", json!(true)),
        ("wiki_enabled", json!(true)),
        ("jobs_enabled", json!(true)),
        ("snippets_enabled", json!(true)),
        ("container_registry_enabled", json!(true)),
        ("service_desk_enabled", json!(false)),
        (
            "can_create_merge_request_in",
            json!(role.is_some_and(|r| r >= Role::Write)),
        ),
        ("issues_access_level", json!("enabled")),
        ("repository_access_level", json!("enabled")),
        ("merge_requests_access_level", json!("enabled")),
        ("forking_access_level", json!("enabled")),
        ("wiki_access_level", json!("enabled")),
        ("builds_access_level", json!("enabled")),
        ("snippets_access_level", json!("enabled")),
        ("pages_access_level", json!("private")),
        ("analytics_access_level", json!("enabled")),
        ("container_registry_access_level", json!("enabled")),
        ("security_and_compliance_access_level", json!("private")),
        ("emails_disabled", json!(false)),
        ("emails_enabled", json!(true)),
        ("shared_runners_enabled", json!(true)),
        ("lfs_enabled", json!(true)),
        (
            "creator_id",
            json!(w.user(repo.owner()).map_or(1, |x| x.id)),
        ),
        ("import_status", json!("none")),
        ("open_issues_count", json!(open_issues)),
        (
            "description_html",
            json!(format!(
                "<p data-sourcepos=\"1:1-1:{}\" dir=\"auto\">{}</p>",
                repo.description.len(),
                crate::sign_in::escape(&repo.description)
            )),
        ),
        ("updated_at", json!(repo.updated_at.gitlab())),
        ("ci_default_git_depth", json!(20)),
        ("ci_forward_deployment_enabled", json!(true)),
        ("ci_job_token_scope_enabled", json!(false)),
        ("ci_separated_caches", json!(true)),
        (
            "ci_allow_fork_pipelines_to_run_in_parent_project",
            json!(true),
        ),
        ("build_git_strategy", json!("fetch")),
        ("keep_latest_artifact", json!(true)),
        ("restrict_user_defined_variables", json!(false)),
        ("runners_token", Value::Null),
        ("public_jobs", json!(true)),
        ("build_timeout", json!(3600)),
        ("auto_cancel_pending_pipelines", json!("enabled")),
        ("ci_config_path", json!("")),
        ("shared_with_groups", json!([])),
        ("only_allow_merge_if_pipeline_succeeds", json!(false)),
        ("allow_merge_on_skipped_pipeline", json!(null)),
        ("request_access_enabled", json!(true)),
        (
            "only_allow_merge_if_all_discussions_are_resolved",
            json!(false),
        ),
        ("remove_source_branch_after_merge", json!(true)),
        ("printing_merge_request_link_enabled", json!(true)),
        ("merge_method", json!("merge")),
        ("squash_option", json!("default_off")),
        ("enforce_auth_checks_on_uploads", json!(true)),
        ("suggestion_commit_message", json!(null)),
        ("merge_commit_template", json!(null)),
        ("squash_commit_template", json!(null)),
        ("issue_branch_template", json!(null)),
        ("autoclose_referenced_issues", json!(true)),
        (
            "permissions",
            json!({"project_access": project_access, "group_access": null}),
        ),
    ];
    if let Some(o) = v.as_object_mut() {
        for (k, val) in extra {
            o.insert(k.to_owned(), val);
        }
    }
    v
}

/// `GET /projects`.
pub async fn list(ctx: Ctx) -> Response {
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let me = ctx.caller.login.as_str();
    let q = &ctx.query;
    let membership = q.flag("membership");
    let simple = q.flag("simple");
    let min_level = q.get("min_access_level").and_then(Role::parse);
    let mut repos: Vec<&Repo> = w
        .repos
        .iter()
        .filter(|r| w.effective_role(me, r).is_some())
        .filter(|r| !membership || w.member_role(me, r).is_some())
        .filter(|r| min_level.is_none_or(|m| w.member_role(me, r).is_some_and(|x| x >= m)))
        .filter(|r| match q.get("visibility") {
            Some("private") => r.private,
            Some("public") => !r.private,
            _ => true,
        })
        .filter(|r| {
            q.non_empty("search").is_none_or(|s| {
                let s = s.to_lowercase();
                let hay = if q.flag("search_namespaces") {
                    r.full_name()
                } else {
                    r.name.clone()
                };
                hay.to_lowercase().contains(&s) || r.description.to_lowercase().contains(&s)
            })
        })
        .collect();
    match q.get("order_by").unwrap_or("created_at") {
        "id" => repos.sort_by_key(|r| r.id),
        "name" | "path" => repos.sort_by_key(|r| r.name.to_lowercase()),
        "updated_at" | "last_activity_at" => repos.sort_by_key(|r| r.updated_at),
        _ => repos.sort_by_key(|r| (r.created_at, r.id)),
    }
    if q.get("sort").unwrap_or("desc") != "asc" {
        repos.reverse();
    }
    let all = repos
        .into_iter()
        .map(|r| project_json(&u, &w, r, w.member_role(me, r), simple))
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `GET /projects/:id`.
pub async fn get(ctx: Ctx, Path(id): Path<String>) -> Response {
    let w = ctx.app.world();
    let (idx, _) = match find_project(&w, &ctx.caller, &id) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let Some(repo) = w.repos.get(idx) else {
        return error::not_found("Project");
    };
    let role = w.member_role(&ctx.caller.login, repo);
    Json(project_json(&ctx.gitlab_urls(), &w, repo, role, false)).into_response()
}
