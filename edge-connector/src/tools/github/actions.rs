//! CI tools (GitHub Actions): list workflow runs, and read the end of a failed job's log.
//!
//! Job logs live behind a redirect to a short-lived signed URL (GHES's log storage). The
//! redirect is followed by hand, without the user's token: the URL is its own credential,
//! and the storage host must never see the token.

use reqwest::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use super::common;
use crate::providers::github::api::{self, User};
use crate::providers::http::{self, Request};
use crate::providers::page::{Page, page_query, render_lines};
use crate::tools::tool::{Hints, READ, Rendered, Tool, ToolCall, clip};

/// A run's or job's state to filter by.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting to start.
    Queued,
    /// Running.
    InProgress,
    /// Finished, however it ended.
    Completed,
    /// Finished and passed.
    Success,
    /// Finished and failed.
    Failure,
    /// Cancelled.
    Cancelled,
    /// Timed out.
    TimedOut,
    /// Waiting for someone's approval.
    ActionRequired,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::InProgress => "in_progress",
            RunStatus::Completed => "completed",
            RunStatus::Success => "success",
            RunStatus::Failure => "failure",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
            RunStatus::ActionRequired => "action_required",
        }
    }
}

/// Arguments of `github_list_workflow_runs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRunsArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Only runs for this branch.
    pub branch: Option<String>,
    /// Only runs in this state or with this outcome (`failure`, `in_progress`...).
    pub status: Option<RunStatus>,
    /// Only runs triggered by this event (`push`, `pull_request`...).
    pub event: Option<String>,
    /// Runs per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawRun {
    id: u64,
    name: Option<String>,
    display_title: Option<String>,
    head_branch: Option<String>,
    head_sha: String,
    event: String,
    status: Option<String>,
    conclusion: Option<String>,
    actor: Option<User>,
    created_at: String,
    html_url: String,
}

/// A page of `GET /actions/runs`.
#[derive(Debug, Deserialize)]
pub(super) struct RunsPage {
    workflow_runs: Vec<RawRun>,
}

/// A workflow run, compactly.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunSummary {
    /// Run id (for github_get_failed_job_log).
    pub id: u64,
    /// Workflow name.
    pub workflow: String,
    /// What it ran for (usually the head commit's title).
    pub title: String,
    /// Branch.
    pub branch: String,
    /// Commit.
    pub sha: String,
    /// Trigger (`push`, `pull_request`...).
    pub event: String,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    /// When completed: `success`, `failure`, `cancelled`, `skipped`, `timed_out`...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<String>,
    /// Who triggered it.
    pub actor: String,
    /// Started, RFC 3339.
    pub created_at: String,
    /// Web URL.
    pub url: String,
}

impl From<RawRun> for RunSummary {
    fn from(r: RawRun) -> Self {
        Self {
            id: r.id,
            workflow: r.name.unwrap_or_default(),
            title: clip(&r.display_title.unwrap_or_default(), 200).0,
            branch: r.head_branch.unwrap_or_default(),
            sha: r.head_sha,
            event: r.event,
            status: r.status.unwrap_or_default(),
            conclusion: r.conclusion,
            actor: api::login(r.actor),
            created_at: r.created_at,
            url: r.html_url,
        }
    }
}

fn run_line(r: &RunSummary) -> String {
    format!(
        "run {} {} [{}] {} on {} ({}, {}) {}",
        r.id,
        r.workflow,
        r.conclusion.as_deref().unwrap_or(&r.status),
        r.title,
        r.branch,
        r.event,
        api::short(&r.sha),
        r.created_at
    )
}

/// `github_list_workflow_runs`.
pub struct ListWorkflowRuns;

impl Tool for ListWorkflowRuns {
    type Args = ListRunsArgs;
    type Output = Page<RunSummary>;
    const NAME: &'static str = "github_list_workflow_runs";
    const DESCRIPTION: &'static str = "List a repository's CI (GitHub Actions) runs, newest first, with status and outcome; filter by branch, state or outcome, and trigger.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["owner", "repo"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: ListRunsArgs,
    ) -> Result<Rendered<Page<RunSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let req = Request::get(
            "/repos/{owner}/{repo}/actions/runs",
            format!("{}/actions/runs", api::repo(&a.owner, &a.repo)?),
        )
        .query([
            ("branch", a.branch),
            ("status", a.status.map(|s| s.as_str().to_owned())),
            ("event", a.event),
        ])
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let out = Page {
            next_cursor: api::next_cursor(&resp),
            items: resp
                .json::<RunsPage>()?
                .workflow_runs
                .into_iter()
                .map(RunSummary::from)
                .collect(),
        };
        let text = render_lines(&out, run_line, "no matching runs");
        Ok(Rendered { output: out, text })
    }
}

/// Default lines of log returned per job.
const DEFAULT_LINES: usize = 50;
/// Most lines of log returned per job.
const MAX_LINES: usize = 500;
/// Longest log line kept, in characters (minified output can be one huge line).
const MAX_LINE_CHARS: usize = 500;
/// Failed jobs whose logs are read at most.
const MAX_JOBS: usize = 3;
/// Pages of 100 jobs read at most (a matrix run can have hundreds of jobs).
const MAX_JOB_PAGES: u32 = 20;

/// Arguments of `github_get_failed_job_log`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailedLogArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// The workflow run (from github_list_workflow_runs).
    pub run_id: u64,
    /// One job of the run to read, failed or not (default: its failed jobs, at most 3).
    pub job_id: Option<u64>,
    /// Lines from the end of each log (default 50, at most 500).
    pub lines: Option<usize>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawStep {
    name: String,
    conclusion: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawJob {
    id: u64,
    name: String,
    status: String,
    conclusion: Option<String>,
    #[serde(default)]
    steps: Vec<RawStep>,
    html_url: Option<String>,
}

/// A page of `GET /actions/runs/{run_id}/jobs`.
#[derive(Debug, Deserialize)]
pub(super) struct JobsPage {
    jobs: Vec<RawJob>,
}

/// The end of one job's log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JobLog {
    /// Job id.
    pub id: u64,
    /// Job name.
    pub name: String,
    /// Its outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<String>,
    /// The step that failed, when the job says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// Lines in the part of the log read (the whole log unless `partial` says otherwise).
    pub total_lines: usize,
    /// Set when only part of the log was read, saying which part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    /// The last lines (timestamps and colour codes removed).
    pub tail: String,
    /// Web URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A run's failed jobs' log tails.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FailedLogs {
    /// The run.
    pub run_id: u64,
    /// Each failed job (or the job asked for) with the end of its log.
    pub jobs: Vec<JobLog>,
    /// Failed jobs not read (past the first 3).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_failed_jobs: Vec<String>,
}

fn failed(conclusion: Option<&str>) -> bool {
    matches!(
        conclusion,
        Some("failure" | "timed_out" | "startup_failure")
    )
}

/// A log line without the runner's timestamp prefix and ANSI colour codes: both cost
/// tokens and say nothing.
fn clean_line(line: &str) -> String {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let rest = match line.split_once(' ') {
        Some((ts, rest))
            if ts.len() >= 20
                && ts.ends_with('Z')
                && ts.as_bytes().get(4) == Some(&b'-')
                && ts.as_bytes().get(10) == Some(&b'T') =>
        {
            rest
        }
        _ => line,
    };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            // CSI: parameters up to a final byte in @..~.
            chars.next();
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    clip(&out, MAX_LINE_CHARS).0
}

/// The last `n` lines of `log`, cleaned, and how many lines it has.
fn tail(log: &str, n: usize) -> (String, usize) {
    let lines: Vec<&str> = log.lines().collect();
    let total = lines.len();
    let kept: Vec<String> = lines
        .iter()
        .skip(total.saturating_sub(n))
        .map(|l| clean_line(l))
        .collect();
    (kept.join("\n"), total)
}

/// `github_get_failed_job_log`.
pub struct GetFailedJobLog;

impl Tool for GetFailedJobLog {
    type Args = FailedLogArgs;
    type Output = FailedLogs;
    const NAME: &'static str = "github_get_failed_job_log";
    const DESCRIPTION: &'static str = "Why did this CI run fail: its failed jobs, the step that failed, and the last lines of each failed job's log.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: FailedLogArgs,
    ) -> Result<Rendered<FailedLogs>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let repo = api::repo(&a.owner, &a.repo)?;
        let jobs = run_jobs(cx, inst, &repo, a.run_id, a.job_id).await?;
        let mut chosen: Vec<RawJob> = match a.job_id {
            Some(id) => {
                let job = jobs.into_iter().find(|j| j.id == id).ok_or_else(|| {
                    CallFailure::new(
                        ErrorCode::NotFound,
                        format!("run {} has no job {id}", a.run_id),
                    )
                })?;
                vec![job]
            }
            None => {
                let (bad, good): (Vec<RawJob>, Vec<RawJob>) = jobs
                    .into_iter()
                    .partition(|j| failed(j.conclusion.as_deref()));
                if bad.is_empty() {
                    let states: Vec<String> = good
                        .iter()
                        .map(|j| {
                            format!(
                                "{} {}",
                                j.name,
                                j.conclusion.as_deref().unwrap_or(&j.status)
                            )
                        })
                        .collect();
                    let text = format!(
                        "run {} has no failed job ({})",
                        a.run_id,
                        if states.is_empty() {
                            "no jobs".into()
                        } else {
                            states.join(", ")
                        }
                    );
                    return Ok(Rendered {
                        output: FailedLogs {
                            run_id: a.run_id,
                            jobs: Vec::new(),
                            other_failed_jobs: Vec::new(),
                        },
                        text,
                    });
                }
                bad
            }
        };
        let other_failed_jobs: Vec<String> = chosen
            .drain(chosen.len().min(MAX_JOBS)..)
            .map(|j| j.name)
            .collect();
        let n = a.lines.unwrap_or(DEFAULT_LINES).clamp(1, MAX_LINES);
        let mut out = FailedLogs {
            run_id: a.run_id,
            jobs: Vec::new(),
            other_failed_jobs,
        };
        for job in chosen {
            let log = job_log(cx, inst, &repo, job.id).await?;
            let (tail, total_lines) = tail(&log.text, n);
            out.jobs.push(JobLog {
                id: job.id,
                failed_step: job
                    .steps
                    .into_iter()
                    .find(|s| failed(s.conclusion.as_deref()))
                    .map(|s| s.name),
                name: job.name,
                conclusion: job.conclusion,
                total_lines,
                partial: log.partial,
                tail,
                url: job.html_url,
            });
        }
        let mut text = Vec::new();
        for j in &out.jobs {
            text.push(format!(
                "job {} ({}) {}{}: last {} of {} lines",
                j.name,
                j.id,
                j.conclusion.as_deref().unwrap_or("not finished"),
                j.failed_step
                    .as_deref()
                    .map(|s| format!(" at step \"{s}\""))
                    .unwrap_or_default(),
                n.min(j.total_lines),
                j.total_lines
            ));
            if let Some(p) = &j.partial {
                text.push(format!("({p})"));
            }
            text.push(j.tail.clone());
        }
        if !out.other_failed_jobs.is_empty() {
            text.push(format!(
                "(also failed, not shown: {}; pass job_id)",
                out.other_failed_jobs.join(", ")
            ));
        }
        Ok(Rendered {
            output: out,
            text: text.join("\n"),
        })
    }
}

/// The latest attempt's jobs of a run, page after page until `wanted` is among them (or
/// every page when no job is named), at most [`MAX_JOB_PAGES`] pages.
async fn run_jobs(
    cx: &ToolCall<'_>,
    inst: &crate::providers::Instance,
    repo: &str,
    run_id: u64,
    wanted: Option<u64>,
) -> Result<Vec<RawJob>, CallFailure> {
    let mut jobs: Vec<RawJob> = Vec::new();
    let mut page = 1;
    loop {
        let req = Request::get(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
            format!("{repo}/actions/runs/{run_id}/jobs"),
        )
        .query([
            ("filter", Some("latest".to_owned())),
            ("per_page", Some("100".to_owned())),
            ("page", Some(page.to_string())),
        ]);
        let resp = cx.ok(inst, &req).await?;
        let next = api::next_cursor(&resp).and_then(|c| c.parse::<u32>().ok());
        jobs.extend(resp.json::<JobsPage>()?.jobs);
        let found = wanted.is_some_and(|id| jobs.iter().any(|j| j.id == id));
        match next {
            Some(n) if !found && n > page && n <= MAX_JOB_PAGES => page = n,
            _ => return Ok(jobs),
        }
    }
}

/// What was read of a job's log.
struct LogText {
    text: String,
    /// Which part, when not all of it.
    partial: Option<String>,
}

/// The total size in a `Content-Range: bytes a-b/total` header, and where the part starts.
fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse::<u64>().ok()?;
    Some((start, total.trim().parse::<u64>().ok()))
}

/// A log read by range: its text, less the first line when the range starts inside it.
fn tail_text(body: &[u8], starts_inside: bool) -> String {
    let text = String::from_utf8_lossy(body);
    match (starts_inside, text.split_once('\n')) {
        (true, Some((_, rest))) => rest.to_owned(),
        _ => text.into_owned(),
    }
}

/// A job's log, or its end when it is long: the API answers with a redirect to the log
/// storage, fetched without the token and asked for the last [`http::MAX_BODY`] bytes.
async fn job_log(
    cx: &ToolCall<'_>,
    inst: &crate::providers::Instance,
    repo: &str,
    job: u64,
) -> Result<LogText, CallFailure> {
    let req = Request::get(
        "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs",
        format!("{repo}/actions/jobs/{job}/logs"),
    );
    let resp = cx.send(inst, &req).await?;
    let mb = http::MAX_BODY / (1024 * 1024);
    if resp.status.is_success() {
        // Served directly: read up to the connector's limit.
        let partial = (resp.body.len() >= http::MAX_BODY).then(|| {
            format!("the log is longer than {mb} MB; these are the last lines of its first {mb} MB")
        });
        return Ok(LogText {
            text: String::from_utf8_lossy(&resp.body).into_owned(),
            partial,
        });
    }
    if !resp.status.is_redirection() {
        return Err(http::failure(&inst.config.name, &resp));
    }
    let location = resp.header("location").ok_or_else(|| {
        CallFailure::new(
            ErrorCode::Unavailable,
            "the upstream redirected the log download nowhere",
        )
    })?;
    let blob = inst
        .http
        .fetch_redirect(cx.scope(), location, "job log storage")
        .await?;
    match blob.status {
        StatusCode::PARTIAL_CONTENT => {
            let (start, total) = blob
                .header("content-range")
                .and_then(content_range)
                .unwrap_or((0, None));
            let partial = (start > 0).then(|| match total {
                Some(t) => format!(
                    "the log has {t} bytes; only its last {} were read",
                    t.saturating_sub(start)
                ),
                None => format!("only the end of the log was read, from byte {start}"),
            });
            Ok(LogText {
                text: tail_text(&blob.body, start > 0),
                partial,
            })
        }
        StatusCode::OK => {
            // The store ignored the range: it sent the log from its start.
            let partial = (blob.body.len() >= http::MAX_BODY).then(|| {
                format!("the log is longer than {mb} MB and its storage serves no ranges; these are the last lines of its first {mb} MB")
            });
            Ok(LogText {
                text: String::from_utf8_lossy(&blob.body).into_owned(),
                partial,
            })
        }
        // A suffix range of an empty log cannot be satisfied.
        StatusCode::RANGE_NOT_SATISFIABLE => Ok(LogText {
            text: String::new(),
            partial: None,
        }),
        status => Err(CallFailure::new(
            ErrorCode::Unavailable,
            format!("the log storage answered {status} (the log may have expired)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_lose_timestamps_and_colours() {
        assert_eq!(
            clean_line("2024-03-05T09:17:40.5170000Z test a ... FAILED"),
            "test a ... FAILED"
        );
        assert_eq!(
            clean_line("\u{1b}[31merror\u{1b}[0m: boom\r"),
            "error: boom"
        );
        assert_eq!(clean_line("no timestamp here"), "no timestamp here");
        let (t, total) = tail("a\nb\nc\n", 2);
        assert_eq!((t.as_str(), total), ("b\nc", 3));
        let (t, _) = tail("a\n", 50);
        assert_eq!(t, "a");
    }

    #[test]
    fn a_log_read_by_range_loses_its_cut_first_line() {
        assert_eq!(content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(content_range("bytes 0-9/*"), Some((0, None)));
        assert_eq!(content_range("items 0-9/10"), None);
        assert_eq!(tail_text(b"ne 3\nline 4\n", true), "line 4\n");
        assert_eq!(tail_text(b"line 1\nline 2\n", false), "line 1\nline 2\n");
    }
}
