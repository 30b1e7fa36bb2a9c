//! CI: pipelines (list with `ref`/`status`/`sha`, get), a pipeline's jobs
//! (`scope[]=failed`...) and bridges (jobs that trigger a downstream pipeline), a job, and
//! its log (`/jobs/:id/trace`, text/plain).

use axum::Json;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::users::basic_by_login;
use super::{Urls, error, find_project};
use crate::model::{CiStatus, Job, Pipeline, Repo, World};
use crate::state::Ctx;

/// A pipeline as lists show it.
pub fn pipeline_basic(u: &Urls, repo: &Repo, p: &Pipeline) -> Value {
    json!({
        "id": p.id,
        "iid": p.number,
        "project_id": repo.id,
        "sha": p.sha,
        "ref": p.branch,
        "status": p.status.gitlab(),
        "source": p.event,
        "created_at": p.created_at.gitlab(),
        "updated_at": p.updated_at.gitlab(),
        "web_url": format!("{}/{}/-/pipelines/{}", u.web, repo.full_name(), p.id),
        "name": p.name,
    })
}

fn detailed_status(repo: &Repo, p: &Pipeline) -> Value {
    let (icon, text) = match p.status {
        CiStatus::Success => ("status_success", "passed"),
        CiStatus::Failed => ("status_failed", "failed"),
        CiStatus::Running => ("status_running", "running"),
        CiStatus::Pending => ("status_pending", "pending"),
        CiStatus::Canceled => ("status_canceled", "canceled"),
        CiStatus::Skipped => ("status_skipped", "skipped"),
    };
    json!({
        "icon": icon, "text": text, "label": text, "group": p.status.gitlab(), "tooltip": text,
        "has_details": true,
        "details_path": format!("/{}/-/pipelines/{}", repo.full_name(), p.id),
        "illustration": null,
        "favicon": format!("/assets/ci_favicons/favicon_{icon}.png"),
    })
}

/// A pipeline in full (single pipeline, and a merge request's `head_pipeline`).
pub fn pipeline_full(u: &Urls, w: &World, repo: &Repo, p: &Pipeline) -> Value {
    let mut v = pipeline_basic(u, repo, p);
    let started = p.jobs.iter().filter_map(|j| j.started_at).min();
    let finished = p
        .jobs
        .iter()
        .filter_map(|j| j.finished_at)
        .max()
        .filter(|_| !matches!(p.status, CiStatus::Running | CiStatus::Pending));
    let before = repo
        .git
        .commits
        .get(&p.sha)
        .and_then(|c| c.parents.first().cloned())
        .unwrap_or_else(|| "0".repeat(40));
    if let Some(o) = v.as_object_mut() {
        for (k, val) in [
            ("before_sha", json!(before)),
            ("tag", json!(false)),
            ("yaml_errors", json!(null)),
            ("user", basic_by_login(u, w, &p.actor)),
            ("started_at", json!(started.map(|t| t.gitlab()))),
            ("finished_at", json!(finished.map(|t| t.gitlab()))),
            ("committed_at", json!(null)),
            (
                "duration",
                json!(started.zip(finished).map(|(s, f)| f.0 - s.0)),
            ),
            (
                "queued_duration",
                json!(started.map(|s| (s.0 - p.created_at.0).max(0))),
            ),
            ("coverage", json!(null)),
            ("detailed_status", detailed_status(repo, p)),
        ] {
            o.insert(k.to_owned(), val);
        }
    }
    v
}

fn job_json(u: &Urls, w: &World, repo: &Repo, p: &Pipeline, j: &Job) -> Value {
    let commit = repo.git.commits.get(&p.sha);
    let author = commit.and_then(|c| w.user(&c.author));
    let duration = j
        .started_at
        .zip(j.finished_at)
        .map(|(s, f)| (f.0 - s.0) as f64);
    let mut user = basic_by_login(u, w, &p.actor);
    if let (Some(o), Some(a)) = (user.as_object_mut(), w.user(&p.actor)) {
        o.insert("created_at".into(), json!(a.created_at.gitlab()));
        for k in [
            "bio",
            "location",
            "skype",
            "linkedin",
            "twitter",
            "website_url",
            "organization",
        ] {
            o.insert(k.into(), json!(""));
        }
    }
    json!({
        "commit": {
            "author_email": author.map_or("", |a| a.email.as_str()),
            "author_name": author.map_or("", |a| a.name.as_str()),
            "created_at": commit.map_or(p.created_at, |c| c.date).gitlab(),
            "id": p.sha,
            "message": commit.map_or("", |c| c.message.as_str()),
            "short_id": p.sha.get(..8).unwrap_or(&p.sha),
            "title": commit.and_then(|c| c.message.lines().next()).unwrap_or(""),
        },
        "coverage": null,
        "archived": false,
        "allow_failure": false,
        "created_at": p.created_at.gitlab(),
        "started_at": j.started_at.map(|t| t.gitlab()),
        "finished_at": j.finished_at.map(|t| t.gitlab()),
        "erased_at": null,
        "duration": duration,
        "queued_duration": j.started_at.map(|s| ((s.0 - p.created_at.0).max(0)) as f64),
        "artifacts_file": {"filename": "job.log", "size": j.log.len()},
        "artifacts": [{"file_type": "trace", "size": j.log.len(), "filename": "job.log", "file_format": null}],
        "artifacts_expire_at": null,
        "tag_list": ["docker", "linux"],
        "id": j.id,
        "name": j.name,
        "pipeline": {"id": p.id, "project_id": repo.id, "ref": p.branch, "sha": p.sha, "status": p.status.gitlab()},
        "ref": p.branch,
        "runner": {"id": 7, "description": "acme-runner-01", "ip_address": null, "active": true, "paused": false, "is_shared": true, "runner_type": "instance_type", "name": "gitlab-runner", "online": true, "status": "online"},
        "runner_manager": null,
        "stage": j.stage,
        "status": j.status.gitlab(),
        "failure_reason": if j.status == CiStatus::Failed { json!("script_failure") } else { Value::Null },
        "tag": false,
        "web_url": format!("{}/{}/-/jobs/{}", u.web, repo.full_name(), j.id),
        "project": {"ci_job_token_scope_enabled": false},
        "user": user,
    })
}

/// `GET /projects/:id/pipelines` (`ref`, `status`, `sha`, `source`, `username`, newest first).
pub async fn list(ctx: Ctx, Path(id): Path<String>) -> Response {
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let q = &ctx.query;
    let mut runs: Vec<&Pipeline> = repo
        .pipelines
        .iter()
        .filter(|p| q.non_empty("ref").is_none_or(|r| p.branch == r))
        .filter(|p| q.non_empty("status").is_none_or(|s| p.status.gitlab() == s))
        .filter(|p| q.non_empty("sha").is_none_or(|s| p.sha == s))
        .filter(|p| q.non_empty("source").is_none_or(|s| p.event == s))
        .filter(|p| q.non_empty("username").is_none_or(|s| p.actor == s))
        .collect();
    runs.sort_by_key(|p| p.id);
    if q.get("sort").unwrap_or("desc") != "asc" {
        runs.reverse();
    }
    let all = runs
        .into_iter()
        .map(|p| pipeline_basic(&u, repo, p))
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `GET /projects/:id/pipelines/:pipeline_id`.
pub async fn get(ctx: Ctx, Path((id, pid)): Path<(String, String)>) -> Response {
    let Ok(pid) = pid.parse::<u64>() else {
        return error::message(axum::http::StatusCode::NOT_FOUND, "404 Not found");
    };
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    match repo.pipelines.iter().find(|p| p.id == pid) {
        Some(p) => Json(pipeline_full(&ctx.gitlab_urls(), &w, repo, p)).into_response(),
        None => error::message(axum::http::StatusCode::NOT_FOUND, "404 Not found"),
    }
}

/// `GET /projects/:id/pipelines/:pipeline_id/jobs` (`scope[]`), newest first.
pub async fn jobs(ctx: Ctx, Path((id, pid)): Path<(String, String)>) -> Response {
    let Ok(pid) = pid.parse::<u64>() else {
        return error::message(axum::http::StatusCode::NOT_FOUND, "404 Not found");
    };
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(p) = repo.pipelines.iter().find(|p| p.id == pid) else {
        return error::message(axum::http::StatusCode::NOT_FOUND, "404 Not found");
    };
    let mut scopes = ctx.query.all("scope[]");
    scopes.extend(ctx.query.all("scope"));
    let all = p
        .jobs
        .iter()
        .rev()
        .filter(|j| j.trigger.is_none())
        .filter(|j| scopes.is_empty() || scopes.contains(&j.status.gitlab()))
        .map(|j| job_json(&u, &w, repo, p, j))
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `GET /projects/:id/pipelines/:pipeline_id/bridges` (`scope[]`), newest first: the jobs
/// that trigger a downstream pipeline, each with its `downstream_pipeline` (null until
/// created), as GitLab's `Entities::Ci::Bridge`.
pub async fn bridges(ctx: Ctx, Path((id, pid)): Path<(String, String)>) -> Response {
    let Ok(pid) = pid.parse::<u64>() else {
        return error::message(axum::http::StatusCode::NOT_FOUND, "404 Not found");
    };
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(p) = repo.pipelines.iter().find(|p| p.id == pid) else {
        return error::message(axum::http::StatusCode::NOT_FOUND, "404 Not found");
    };
    let mut scopes = ctx.query.all("scope[]");
    scopes.extend(ctx.query.all("scope"));
    let all = p
        .jobs
        .iter()
        .rev()
        .filter(|j| scopes.is_empty() || scopes.contains(&j.status.gitlab()))
        .filter_map(|j| {
            let target = j.trigger.as_deref()?;
            // The newest pipeline of that name created for it (the seed lists it first).
            let downstream = repo
                .pipelines
                .iter()
                .filter(|d| d.name == target && d.id != p.id)
                .max_by_key(|d| d.id)
                .map(|d| pipeline_basic(&u, repo, d));
            let mut v = job_json(&u, &w, repo, p, j);
            if let Some(o) = v.as_object_mut() {
                for k in [
                    "artifacts_file",
                    "artifacts",
                    "artifacts_expire_at",
                    "runner",
                    "runner_manager",
                    "tag_list",
                    "coverage",
                    "archived",
                    "erased_at",
                ] {
                    o.remove(k);
                }
                o.insert("pipeline".into(), pipeline_basic(&u, repo, p));
                o.insert(
                    "downstream_pipeline".into(),
                    downstream.unwrap_or(Value::Null),
                );
            }
            Some(v)
        })
        .collect();
    drop(w);
    ctx.paged(all)
}

fn find_job<'a>(repo: &'a Repo, id: &str) -> Option<(&'a Pipeline, &'a Job)> {
    let id = id.parse::<u64>().ok()?;
    // A bridge is no job: `/jobs/:id` does not find it.
    repo.pipelines.iter().find_map(|p| {
        p.jobs
            .iter()
            .find(|j| j.id == id && j.trigger.is_none())
            .map(|j| (p, j))
    })
}

/// `GET /projects/:id/jobs/:job_id`.
pub async fn job(ctx: Ctx, Path((id, jid)): Path<(String, String)>) -> Response {
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    match find_job(repo, &jid) {
        Some((p, j)) => Json(job_json(&ctx.gitlab_urls(), &w, repo, p, j)).into_response(),
        None => error::message(axum::http::StatusCode::NOT_FOUND, "404 Not found"),
    }
}

/// `GET /projects/:id/jobs/:job_id/trace`: the log as text/plain.
pub async fn trace(ctx: Ctx, Path((id, jid)): Path<(String, String)>) -> Response {
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    match find_job(repo, &jid) {
        Some((_, j)) => (
            [("content-type", "text/plain; charset=utf-8")],
            j.log.clone(),
        )
            .into_response(),
        None => error::message(axum::http::StatusCode::NOT_FOUND, "404 Not found"),
    }
}
