//! GitHub Actions: workflow runs, their jobs, and job logs (`GET /actions/jobs/{id}/logs`
//! answers 302 to a short-lived signed URL the fake serves itself, as GHES redirects to
//! its log storage).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

use super::repos::repo_json;
use super::users::simple_user_by_login;
use super::{Urls, error, find_repo, node_id, number};
use crate::auth::random_alnum;
use crate::model::{CiStatus, Job, Pipeline, Repo, World};
use crate::pagination::{GITHUB, Page};
use crate::state::App;
use crate::state::Ctx;

const DOC_RUNS: &str = "/actions/workflow-runs#list-workflow-runs-for-a-repository";
const DOC_JOBS: &str = "/actions/workflow-jobs#list-jobs-for-a-workflow-run";
const DOC_LOGS: &str = "/actions/workflow-jobs#download-job-logs-for-a-workflow-run";

fn workflow_id(run: &Pipeline) -> u64 {
    // One workflow file per distinct name.
    161_335 + run.name.bytes().map(u64::from).sum::<u64>()
}

/// A `workflow-run`.
pub fn run_json(u: &Urls, w: &World, repo: &Repo, run: &Pipeline) -> Value {
    let full = repo.full_name();
    let api = format!("{}/actions/runs/{}", u.repo_api(&full), run.id);
    let commit = repo.git.commits.get(&run.sha);
    let author = commit.and_then(|c| w.user(&c.author));
    let person = json!({
        "name": author.map_or("unknown", |a| a.name.as_str()),
        "email": author.map_or("", |a| a.email.as_str()),
    });
    let message = commit.map_or("", |c| c.message.as_str());
    let wid = workflow_id(run);
    let repo_obj = repo_json(u, w, repo, None);
    json!({
        "id": run.id,
        "name": run.name,
        "node_id": node_id("011:WorkflowRun", run.id),
        "check_suite_id": run.id + 500_000,
        "check_suite_node_id": node_id("010:CheckSuite", run.id + 500_000),
        "head_branch": run.branch,
        "head_sha": run.sha,
        "path": ".github/workflows/ci.yml",
        "display_title": message.lines().next().unwrap_or(""),
        "run_number": run.number,
        "event": run.event,
        "status": run.status.github_status(),
        "conclusion": run.status.github_conclusion(),
        "workflow_id": wid,
        "url": api,
        "html_url": format!("{}/actions/runs/{}", u.repo_web(&full), run.id),
        "pull_requests": [],
        "created_at": run.created_at.github(),
        "updated_at": run.updated_at.github(),
        "actor": simple_user_by_login(u, w, &run.actor),
        "run_attempt": 1,
        "referenced_workflows": [],
        "run_started_at": run.created_at.github(),
        "triggering_actor": simple_user_by_login(u, w, &run.actor),
        "jobs_url": format!("{api}/jobs"),
        "logs_url": format!("{api}/logs"),
        "check_suite_url": format!("{}/check-suites/{}", u.repo_api(&full), run.id + 500_000),
        "artifacts_url": format!("{api}/artifacts"),
        "cancel_url": format!("{api}/cancel"),
        "rerun_url": format!("{api}/rerun"),
        "previous_attempt_url": null,
        "workflow_url": format!("{}/actions/workflows/{wid}", u.repo_api(&full)),
        "head_commit": {
            "id": run.sha,
            "tree_id": commit.map_or("", |c| c.tree_sha.as_str()),
            "message": message,
            "timestamp": commit.map_or(run.created_at, |c| c.date).github(),
            "author": person,
            "committer": person,
        },
        "repository": repo_obj,
        "head_repository": repo_obj,
        "head_repository_id": repo.id,
    })
}

fn steps(job: &Job) -> Vec<Value> {
    let started = job.started_at.map(|t| t.github());
    let finished = job.finished_at.map(|t| t.github());
    let done =
        |s: CiStatus| json!({"status": s.github_status(), "conclusion": s.github_conclusion()});
    let main = done(job.status);
    let setup = done(CiStatus::Success);
    let complete = match job.status {
        CiStatus::Pending | CiStatus::Running => done(CiStatus::Pending),
        _ => done(CiStatus::Success),
    };
    [
        ("Set up job", setup, 1),
        (&*format!("Run {}", job.name), main, 2),
        ("Complete job", complete, 3),
    ]
    .into_iter()
    .map(|(name, s, n)| {
        json!({
            "name": name,
            "status": s["status"],
            "conclusion": s["conclusion"],
            "number": n,
            "started_at": started,
            "completed_at": finished,
        })
    })
    .collect()
}

/// A `job`.
pub fn job_json(u: &Urls, repo: &Repo, run: &Pipeline, job: &Job) -> Value {
    let full = repo.full_name();
    json!({
        "id": job.id,
        "run_id": run.id,
        "run_url": format!("{}/actions/runs/{}", u.repo_api(&full), run.id),
        "run_attempt": 1,
        "node_id": node_id("012:WorkflowJob", job.id),
        "head_sha": run.sha,
        "url": format!("{}/actions/jobs/{}", u.repo_api(&full), job.id),
        "html_url": format!("{}/actions/runs/{}/job/{}", u.repo_web(&full), run.id, job.id),
        "status": job.status.github_status(),
        "conclusion": job.status.github_conclusion(),
        "created_at": run.created_at.github(),
        "started_at": job.started_at.unwrap_or(run.created_at).github(),
        "completed_at": job.finished_at.map(|t| t.github()),
        "name": job.name,
        "steps": steps(job),
        "check_run_url": format!("{}/check-runs/{}", u.repo_api(&full), job.id),
        "labels": ["self-hosted", "linux"],
        "runner_id": 7,
        "runner_name": "acme-runner-01",
        "runner_group_id": 1,
        "runner_group_name": "Default",
        "workflow_name": run.name,
        "head_branch": run.branch,
    })
}

/// `GET /repos/{o}/{r}/actions/runs` (`branch`, `status` (a status or a conclusion),
/// `event`, `actor`, `head_sha`, paged), newest first.
pub async fn list_runs(ctx: Ctx, Path((o, r)): Path<(String, String)>) -> Response {
    let u = ctx.urls();
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_RUNS) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let q = &ctx.query;
    let mut runs: Vec<&Pipeline> = repo
        .pipelines
        .iter()
        .filter(|p| q.non_empty("branch").is_none_or(|b| p.branch == b))
        .filter(|p| q.non_empty("event").is_none_or(|e| p.event == e))
        .filter(|p| q.non_empty("actor").is_none_or(|a| p.actor == a))
        .filter(|p| q.non_empty("head_sha").is_none_or(|s| p.sha == s))
        .filter(|p| {
            q.non_empty("status").is_none_or(|s| {
                p.status.github_status() == s || p.status.github_conclusion() == Some(s)
            })
        })
        .collect();
    runs.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)));
    let all: Vec<Value> = runs
        .into_iter()
        .map(|p| run_json(&u, &w, repo, p))
        .collect();
    drop(w);
    let page = Page::of(all, q, GITHUB);
    let headers = page.headers(
        crate::Kind::Github,
        &format!("{}{}", ctx.base.origin, ctx.path),
        q,
    );
    (
        headers,
        Json(json!({"total_count": page.total, "workflow_runs": page.items})),
    )
        .into_response()
}

/// `GET /repos/{o}/{r}/actions/runs/{run_id}/jobs` (paged).
pub async fn list_jobs(ctx: Ctx, Path((o, r, id)): Path<(String, String, String)>) -> Response {
    let id = match number(&id, DOC_JOBS) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let u = ctx.urls();
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_JOBS) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(run) = repo.pipelines.iter().find(|p| p.id == id) else {
        return error::not_found(DOC_JOBS);
    };
    let all: Vec<Value> = run
        .jobs
        .iter()
        .map(|j| job_json(&u, repo, run, j))
        .collect();
    drop(w);
    let page = Page::of(all, &ctx.query, GITHUB);
    let headers = page.headers(
        crate::Kind::Github,
        &format!("{}{}", ctx.base.origin, ctx.path),
        &ctx.query,
    );
    (
        headers,
        Json(json!({"total_count": page.total, "jobs": page.items})),
    )
        .into_response()
}

/// `GET /repos/{o}/{r}/actions/jobs/{job_id}/logs`: 302 to a signed log URL.
pub async fn job_logs(ctx: Ctx, Path((o, r, id)): Path<(String, String, String)>) -> Response {
    let id = match number(&id, DOC_LOGS) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let mut w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_LOGS) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    if !repo
        .pipelines
        .iter()
        .any(|p| p.jobs.iter().any(|j| j.id == id))
    {
        return error::not_found(DOC_LOGS);
    }
    let repo_id = repo.id;
    let token = random_alnum(32);
    w.log_links.insert(token.clone(), (repo_id, id));
    let origin = ctx
        .app
        .log_origin
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| ctx.base.origin.clone());
    let location = format!(
        "{origin}/_services/actions/logs/{token}?sig={}",
        random_alnum(24)
    );
    (StatusCode::FOUND, [("location", location)]).into_response()
}

/// The bytes a `Range: bytes=…` header asks of a body of `len` bytes (one range; a suffix
/// `-N`, `A-` or `A-B`), `Err(())` when it cannot be satisfied, `Ok(None)` when there is no
/// usable range header (the whole body is then sent, as HTTP allows).
fn byte_range(header: Option<&str>, len: usize) -> Result<Option<(usize, usize)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<usize>().ok(), b.parse::<usize>().ok()) {
        (None, Some(n)) if a.is_empty() && n > 0 => (len.saturating_sub(n), len),
        (Some(start), None) if b.is_empty() => (start, len),
        (Some(start), Some(end)) if start <= end => (start, (end + 1).min(len)),
        _ => return Ok(None),
    };
    if range.0 >= len {
        return Err(());
    }
    Ok(Some(range))
}

/// The log storage the redirect points at: plain text, no credentials needed (the URL is
/// the credential). Like the blob stores GitHub uses, it serves a single byte range
/// (`206 Partial Content`), so a client can read the end of a long log.
pub async fn log_blob(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let w = app.world();
    let Some((repo_id, job_id)) = w.log_links.get(&token).copied() else {
        return (StatusCode::NOT_FOUND, "The specified blob does not exist.").into_response();
    };
    let log = w
        .repos
        .iter()
        .filter(|r| r.id == repo_id)
        .flat_map(|r| r.pipelines.iter())
        .flat_map(|p| p.jobs.iter())
        .find(|j| j.id == job_id)
        .map(|j| j.log.clone())
        .unwrap_or_default();
    drop(w);
    let range = headers.get("range").and_then(|v| v.to_str().ok());
    let text = [("content-type", "text/plain; charset=utf-8")];
    match byte_range(range, log.len()) {
        Ok(None) => (
            [
                ("content-type", "text/plain; charset=utf-8"),
                ("accept-ranges", "bytes"),
            ],
            log,
        )
            .into_response(),
        Ok(Some((start, end))) => {
            let part = log.as_bytes().get(start..end).unwrap_or_default().to_vec();
            let content_range = format!("bytes {start}-{}/{}", end - 1, log.len());
            (
                StatusCode::PARTIAL_CONTENT,
                text,
                [("content-range", content_range)],
                part,
            )
                .into_response()
        }
        Err(()) => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [("content-range", format!("bytes */{}", log.len()))],
        )
            .into_response(),
    }
}
