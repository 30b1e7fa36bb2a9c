//! CI results for a commit: check runs (`GET /commits/{ref}/check-runs`, one per Actions
//! job, as GitHub Actions creates them) and the combined commit status
//! (`GET /commits/{ref}/status`) from external statuses.

use axum::Json;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::repos::repo_json;
use super::{Urls, error, find_repo, node_id};
use crate::model::{Job, Pipeline, Repo};
use crate::pagination::{GITHUB, Page};
use crate::state::Ctx;

const DOC_RUNS: &str = "/checks/runs#list-check-runs-for-a-git-reference";
const DOC_STATUS: &str = "/commits/statuses#get-the-combined-status-for-a-specific-reference";

/// The `integration` (GitHub App) that GitHub Actions check runs belong to.
pub fn actions_app(u: &Urls) -> Value {
    json!({
        "id": 15368,
        "slug": "github-actions",
        "client_id": "Iv1.05c79e9ad1f6bdfa",
        "node_id": node_id("03:App", 15368),
        "owner": {
            "login": "github",
            "id": 9919,
            "node_id": node_id("012:Organization", 9919),
            "url": format!("{}/users/github", u.api),
            "repos_url": format!("{}/users/github/repos", u.api),
            "events_url": format!("{}/users/github/events{{/privacy}}", u.api),
            "avatar_url": format!("{}/avatars/u/9919?", u.web),
            "gravatar_id": "",
            "html_url": format!("{}/github", u.web),
            "followers_url": format!("{}/users/github/followers", u.api),
            "following_url": format!("{}/users/github/following{{/other_user}}", u.api),
            "gists_url": format!("{}/users/github/gists{{/gist_id}}", u.api),
            "starred_url": format!("{}/users/github/starred{{/owner}}{{/repo}}", u.api),
            "subscriptions_url": format!("{}/users/github/subscriptions", u.api),
            "organizations_url": format!("{}/users/github/orgs", u.api),
            "received_events_url": format!("{}/users/github/received_events", u.api),
            "type": "Organization",
            "site_admin": false,
        },
        "name": "GitHub Actions",
        "description": "Automate your workflow from idea to production",
        "external_url": format!("{}/features/actions", u.web),
        "html_url": format!("{}/apps/github-actions", u.web),
        "created_at": "2018-07-30T09:30:17Z",
        "updated_at": "2024-04-10T20:33:16Z",
        "permissions": {"actions": "write", "checks": "write", "contents": "write", "metadata": "read", "pull_requests": "write", "statuses": "write"},
        "events": ["check_run", "check_suite", "pull_request", "push", "workflow_dispatch"],
    })
}

/// A `check-run` for an Actions job.
pub fn check_run_json(u: &Urls, repo: &Repo, run: &Pipeline, job: &Job) -> Value {
    let api = u.repo_api(&repo.full_name());
    let html = format!(
        "{}/actions/runs/{}/job/{}",
        u.repo_web(&repo.full_name()),
        run.id,
        job.id
    );
    let failed_lines = job
        .log
        .lines()
        .filter(|l| l.contains("FAILED") || l.contains("##[error]"))
        .count();
    json!({
        "id": job.id,
        "head_sha": run.sha,
        "node_id": node_id("08:CheckRun", job.id),
        "external_id": format!("{:08x}-0000-4000-8000-{:012x}", run.id, job.id),
        "url": format!("{api}/check-runs/{}", job.id),
        "html_url": html,
        "details_url": html,
        "status": job.status.github_status(),
        "conclusion": job.status.github_conclusion(),
        "started_at": job.started_at.map(|t| t.github()),
        "completed_at": job.finished_at.map(|t| t.github()),
        "output": {
            "title": job.status.github_conclusion().map(|c| format!("{} {c}", job.name)),
            "summary": job.status.github_conclusion().map(|_| format!("{failed_lines} error(s) in the log")),
            "text": null,
            "annotations_count": failed_lines,
            "annotations_url": format!("{api}/check-runs/{}/annotations", job.id),
        },
        "name": job.name,
        "check_suite": {"id": run.id + 500_000},
        "app": actions_app(u),
        "pull_requests": [],
    })
}

/// `GET /repos/{o}/{r}/commits/{ref}/check-runs` (`check_name`, `status`, paged).
pub async fn check_runs(ctx: Ctx, Path((o, r, rev)): Path<(String, String, String)>) -> Response {
    let u = ctx.urls();
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_RUNS) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(sha) = repo.git.resolve(&rev) else {
        return error::unprocessable(&format!("No commit found for SHA: {rev}"), DOC_RUNS);
    };
    let q = &ctx.query;
    let all: Vec<Value> = repo
        .pipelines
        .iter()
        .filter(|p| p.sha == sha)
        .flat_map(|p| p.jobs.iter().map(move |j| (p, j)))
        .filter(|(_, j)| q.non_empty("check_name").is_none_or(|n| j.name == n))
        .filter(|(_, j)| {
            q.non_empty("status")
                .is_none_or(|s| j.status.github_status() == s)
        })
        .map(|(p, j)| check_run_json(&u, repo, p, j))
        .collect();
    let page = Page::of(all, q, GITHUB);
    let headers = page.headers(
        crate::Kind::Github,
        &format!("{}{}", ctx.base.origin, ctx.path),
        q,
    );
    (
        headers,
        Json(json!({"total_count": page.total, "check_runs": page.items})),
    )
        .into_response()
}

/// `GET /repos/{o}/{r}/commits/{ref}/status`: the latest status per context, combined.
pub async fn combined_status(
    ctx: Ctx,
    Path((o, r, rev)): Path<(String, String, String)>,
) -> Response {
    let u = ctx.urls();
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_STATUS) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(sha) = repo.git.resolve(&rev) else {
        return error::unprocessable(&format!("No commit found for SHA: {rev}"), DOC_STATUS);
    };
    let api = u.repo_api(&repo.full_name());
    let statuses: Vec<Value> = repo
        .statuses
        .iter()
        .filter(|s| s.sha == sha)
        .map(|s| {
            json!({
                "url": format!("{api}/statuses/{sha}"),
                "avatar_url": format!("{}/avatars/u/{}?", u.web, 1),
                "id": s.id,
                "node_id": node_id("013:StatusContext", s.id),
                "state": s.state,
                "description": s.description,
                "target_url": s.target_url,
                "context": s.context,
                "created_at": s.created_at.github(),
                "updated_at": s.created_at.github(),
            })
        })
        .collect();
    let states: Vec<&str> = repo
        .statuses
        .iter()
        .filter(|s| s.sha == sha)
        .map(|s| s.state.as_str())
        .collect();
    let state = if states.iter().any(|s| matches!(*s, "failure" | "error")) {
        "failure"
    } else if states.is_empty() || states.contains(&"pending") {
        "pending"
    } else {
        "success"
    };
    let role = w.member_role(&ctx.caller.login, repo);
    Json(json!({
        "state": state,
        "statuses": statuses,
        "sha": sha,
        "total_count": statuses.len(),
        "repository": repo_json(&u, &w, repo, role),
        "commit_url": format!("{api}/commits/{sha}"),
        "url": format!("{api}/commits/{sha}/status"),
    }))
    .into_response()
}
