//! CI tools: list a project's pipelines with their status, and show why one failed: its
//! failed jobs and the tail of a job's log.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use super::common;
use crate::providers::Instance;
use crate::providers::gitlab::api::{self, RawPipeline};
use crate::providers::http::{MAX_BODY, Request};
use crate::providers::page::{MAX_LIMIT, Page, page_query, render_lines};
use crate::tools::tool::{Hints, READ, Rendered, Tool, ToolCall, clip};

/// Arguments of `gitlab_list_pipelines`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Only pipelines of this branch or tag.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Only pipelines with this status: `created`, `waiting_for_resource`, `preparing`,
    /// `pending`, `running`, `success`, `failed`, `canceled`, `skipped`, `manual` or
    /// `scheduled`.
    pub status: Option<String>,
    /// Only pipelines of this commit (full id).
    pub sha: Option<String>,
    /// Only pipelines started this way: `push`, `merge_request_event`, `schedule`, `web`...
    pub source: Option<String>,
    /// Pipelines per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A pipeline, compactly.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PipelineSummary {
    /// Id (for `gitlab_get_failed_job_log`).
    pub id: u64,
    /// `success`, `failed`, `running`, `pending`, `canceled`, `skipped`, `manual`...
    pub status: String,
    /// Branch or tag.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Short commit id.
    pub sha: String,
    /// What started it.
    pub source: Option<String>,
    /// Created, ISO 8601.
    pub created_at: Option<String>,
}

impl From<RawPipeline> for PipelineSummary {
    fn from(p: RawPipeline) -> Self {
        Self {
            id: p.id,
            status: p.status,
            git_ref: p.git_ref,
            sha: api::short(&p.sha),
            source: p.source,
            created_at: p.created_at,
        }
    }
}

/// `gitlab_list_pipelines`.
pub struct ListPipelines;

impl Tool for ListPipelines {
    type Args = ListArgs;
    type Output = Page<PipelineSummary>;
    const NAME: &'static str = "gitlab_list_pipelines";
    const DESCRIPTION: &'static str = "List a GitLab project's CI pipelines, newest first, with their status, filtered by branch, status, commit or source.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["project"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: ListArgs,
    ) -> Result<Rendered<Page<PipelineSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let req = Request::get(
            "/projects/{id}/pipelines",
            format!("{}/pipelines", api::project(&a.project)?),
        )
        .query([
            ("ref", a.git_ref),
            ("status", a.status),
            ("sha", a.sha),
            ("source", a.source),
            ("order_by", Some("id".into())),
            ("sort", Some("desc".into())),
        ])
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let next_cursor = api::next_cursor(&resp);
        let items: Vec<PipelineSummary> = resp
            .json::<Vec<RawPipeline>>()?
            .into_iter()
            .map(PipelineSummary::from)
            .collect();
        let output = Page { items, next_cursor };
        let text = render_lines(
            &output,
            |p| {
                format!(
                    "{} [{}] {} {} ({})",
                    p.id,
                    p.status,
                    p.git_ref,
                    p.sha,
                    p.source.as_deref().unwrap_or("?")
                )
            },
            "no matching pipelines",
        );
        Ok(Rendered { output, text })
    }
}

/// Arguments of `gitlab_get_failed_job_log`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailedLogArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// The pipeline (default: the newest failed pipeline, of `ref` when given).
    pub pipeline_id: Option<u64>,
    /// A job whose log to show, failed or not (instead of a pipeline's failed jobs).
    pub job_id: Option<u64>,
    /// Without `pipeline_id` or `job_id`: the branch or tag whose newest failed pipeline
    /// to look at.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Which failed job's log to show when several failed (default: the latest).
    pub job_name: Option<String>,
    /// How many lines of the log's end to show (default 50, at most 1000).
    pub lines: Option<usize>,
}

/// A job, compactly.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobSummary {
    /// Id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Stage.
    pub stage: String,
    /// Status.
    pub status: String,
    /// Why it failed (`script_failure`, `runner_system_failure`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Web URL (of the job whose log is shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Deserialize)]
struct RawJob {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    status: String,
    failure_reason: Option<String>,
    #[serde(default)]
    web_url: String,
    pipeline: Option<PipelineRef>,
}

#[derive(Deserialize)]
struct PipelineRef {
    id: u64,
    #[serde(default)]
    project_id: Option<u64>,
}

/// A bridge: a job that triggers a downstream pipeline (a child pipeline, or one of
/// another project), as `GET /pipelines/:id/bridges` lists it.
#[derive(Deserialize)]
struct RawBridge {
    #[serde(default)]
    name: String,
    pipeline: Option<PipelineRef>,
    /// Null until GitLab created it.
    downstream_pipeline: Option<RawDownstream>,
}

#[derive(Deserialize)]
struct RawDownstream {
    id: u64,
    project_id: Option<u64>,
    #[serde(default)]
    web_url: String,
}

/// One step from a pipeline to the downstream pipeline whose failure failed it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Hop {
    /// The upstream pipeline.
    pub pipeline_id: u64,
    /// The bridge job of it that triggered the next pipeline, and failed with it.
    pub bridge: String,
}

/// How many downstream pipelines are followed from the one asked about: GitLab nests
/// child pipelines at most two levels deep.
const MAX_HOPS: usize = 3;

impl From<&RawJob> for JobSummary {
    fn from(j: &RawJob) -> Self {
        Self {
            id: j.id,
            name: j.name.clone(),
            stage: j.stage.clone(),
            status: j.status.clone(),
            failure_reason: j.failure_reason.clone(),
            url: None,
        }
    }
}

/// A failed pipeline's failed jobs, and the end of one job's log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FailedJobLog {
    /// The pipeline the failed jobs are in (a downstream one when `via` is not empty).
    pub pipeline_id: Option<u64>,
    /// The pipelines followed to it: each failed only because a bridge's downstream
    /// pipeline failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<Hop>,
    /// A downstream pipeline of another project that failed this one; its jobs are not
    /// read here (the policy allowed this project), ask with that project instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_elsewhere: Option<String>,
    /// Its failed jobs (or the one job asked for).
    pub failed_jobs: Vec<JobSummary>,
    /// The job whose log is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSummary>,
    /// Lines in the whole log (after removing terminal escapes and section markers).
    pub total_lines: usize,
    /// The last lines of the log.
    pub log: String,
    /// Whether earlier lines were left out.
    pub truncated: bool,
}

/// Longest log line kept.
const MAX_LINE: usize = 500;

/// Removes terminal escapes (colours, `ESC[0K`) and other control characters but tabs.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: parameters up to a final byte in @..~; otherwise a two-char escape.
                if chars.next() == Some('[') {
                    for f in chars.by_ref() {
                        if ('@'..='~').contains(&f) {
                            break;
                        }
                    }
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A job log's lines as a terminal would show them: a carriage return overwrites the line
/// (progress bars, GitLab's `section_start:…\r` markers), escapes are removed, and lines
/// that were only markers disappear. When the runner stamped every line with its time
/// (`2024-03-05T09:17:40.123Z 00O …`), the stamps go too: they would be a third of the
/// tokens and say little about why a job failed.
fn clean_log(raw: &str) -> Vec<String> {
    let lines: Vec<String> = raw
        .trim_end_matches(['\n', '\r'])
        .split('\n')
        .filter_map(|line| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let shown = strip_ansi(line.rsplit('\r').next().unwrap_or(line));
            if shown.trim().is_empty() && !line.trim().is_empty() {
                return None;
            }
            Some(shown.trim_end().to_owned())
        })
        .collect();
    let stamped = lines.iter().any(|l| !l.is_empty())
        && lines
            .iter()
            .all(|l| l.is_empty() || without_timestamp(l).is_some());
    lines
        .iter()
        .map(|l| {
            let l = if stamped {
                without_timestamp(l).unwrap_or(l)
            } else {
                l
            };
            clip(l, MAX_LINE).0
        })
        .collect()
}

/// `line` without a leading RFC 3339 UTC timestamp and the runner's stream marker
/// (`00O`, `01E+`) after it, if it has one.
fn without_timestamp(line: &str) -> Option<&str> {
    // A stamped empty line has lost its trailing space to trimming.
    let (stamp, rest) = line.split_once(' ').unwrap_or((line, ""));
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r)
            .is_some_and(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
    };
    let shaped = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19)
        && stamp.ends_with('Z');
    if !shaped {
        return None;
    }
    let marker = |m: &str| {
        let m = m.strip_suffix('+').unwrap_or(m);
        m.len() == 3
            && m.get(..2)
                .is_some_and(|d| d.bytes().all(|c| c.is_ascii_digit()))
            && matches!(m.get(2..), Some("O" | "E"))
    };
    Some(match rest.split_once(' ') {
        Some((m, r)) if marker(m) => r,
        None if marker(rest) => "",
        _ => rest,
    })
}

/// The last `n` lines of `lines`, joined.
fn tail(lines: &[String], n: usize) -> String {
    let skip = lines.len().saturating_sub(n);
    lines
        .iter()
        .skip(skip)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

/// The failed jobs of a pipeline, following bridges down when it has none of its own.
struct Found {
    pipeline_id: u64,
    jobs: Vec<RawJob>,
    via: Vec<Hop>,
    elsewhere: Option<String>,
}

/// The failed jobs of pipeline `pid`; when it has none, the failed jobs of the downstream
/// pipeline whose failure failed it (a parent pipeline fails through its failed bridge),
/// and so on down. A downstream pipeline of another project is named, not read: the
/// policy allowed this project only.
async fn follow_bridges(
    cx: &ToolCall<'_>,
    inst: &Instance,
    project: &str,
    mut pid: u64,
) -> Result<Found, CallFailure> {
    let failed = || {
        [
            ("scope[]", Some("failed".to_owned())),
            ("per_page", Some(MAX_LIMIT.to_string())),
        ]
    };
    let mut via = Vec::new();
    for _ in 0..=MAX_HOPS {
        let req = Request::get(
            "/projects/{id}/pipelines/{pipeline_id}/jobs",
            format!("{project}/pipelines/{pid}/jobs"),
        )
        .query(failed());
        let jobs: Vec<RawJob> = cx.ok(inst, &req).await?.json()?;
        let done = |jobs, via, elsewhere| Found {
            pipeline_id: pid,
            jobs,
            via,
            elsewhere,
        };
        if !jobs.is_empty() || via.len() == MAX_HOPS {
            return Ok(done(jobs, via, None));
        }
        let req = Request::get(
            "/projects/{id}/pipelines/{pipeline_id}/bridges",
            format!("{project}/pipelines/{pid}/bridges"),
        )
        .query(failed());
        let bridges: Vec<RawBridge> = cx.ok(inst, &req).await?.json()?;
        let Some((bridge, down, here)) = bridges.into_iter().find_map(|b| {
            let here = b.pipeline.as_ref().and_then(|p| p.project_id);
            b.downstream_pipeline.map(|d| (b.name, d, here))
        }) else {
            return Ok(done(jobs, via, None));
        };
        if down.project_id.is_none() || down.project_id != here {
            let why = format!(
                "pipeline {pid} failed because bridge {bridge:?} triggered pipeline {} of another project, which failed ({}); ask about that project to read its jobs",
                down.id, down.web_url
            );
            return Ok(done(jobs, via, Some(why)));
        }
        via.push(Hop {
            pipeline_id: pid,
            bridge,
        });
        pid = down.id;
    }
    Ok(Found {
        pipeline_id: pid,
        jobs: Vec::new(),
        via,
        elsewhere: None,
    })
}

/// `pipeline 10 (bridge "tests") → ` for each pipeline followed.
fn route_text(via: &[Hop]) -> String {
    via.iter()
        .map(|h| format!("pipeline {} (bridge {:?}) → ", h.pipeline_id, h.bridge))
        .collect()
}

/// `gitlab_get_failed_job_log`.
pub struct GetFailedJobLog;

impl Tool for GetFailedJobLog {
    type Args = FailedLogArgs;
    type Output = FailedJobLog;
    const NAME: &'static str = "gitlab_get_failed_job_log";
    const DESCRIPTION: &'static str = "Why did CI fail: the failed jobs of a GitLab pipeline (default: the newest failed one, of a branch if given; a parent pipeline that failed through a child pipeline leads to the child's failed jobs) and the last lines of a failed job's log, cleaned of terminal escapes.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["project"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: FailedLogArgs,
    ) -> Result<Rendered<FailedJobLog>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let project = api::project(&a.project)?;
        let mut via = Vec::new();
        let mut failed_elsewhere = None;
        let (pipeline_id, jobs): (Option<u64>, Vec<RawJob>) = match a.job_id {
            Some(id) => {
                let req = Request::get(
                    "/projects/{id}/jobs/{job_id}",
                    format!("{project}/jobs/{id}"),
                );
                let job: RawJob = cx.ok(inst, &req).await?.json()?;
                (job.pipeline.as_ref().map(|p| p.id), vec![job])
            }
            None => {
                let pid = match a.pipeline_id {
                    Some(p) => p,
                    None => {
                        let req = Request::get(
                            "/projects/{id}/pipelines",
                            format!("{project}/pipelines"),
                        )
                        .query([
                            ("status", Some("failed".to_owned())),
                            ("ref", a.git_ref.clone()),
                            ("order_by", Some("id".into())),
                            ("sort", Some("desc".into())),
                            ("per_page", Some("1".into())),
                        ]);
                        let found: Vec<RawPipeline> = cx.ok(inst, &req).await?.json()?;
                        found.first().map(|p| p.id).ok_or_else(|| {
                            CallFailure::new(
                                ErrorCode::NotFound,
                                match &a.git_ref {
                                    Some(r) => {
                                        format!("{} has no failed pipeline on {r}", a.project)
                                    }
                                    None => format!("{} has no failed pipeline", a.project),
                                },
                            )
                        })?
                    }
                };
                let found = follow_bridges(cx, inst, &project, pid).await?;
                via = found.via;
                failed_elsewhere = found.elsewhere;
                (Some(found.pipeline_id), found.jobs)
            }
        };
        let failed_jobs: Vec<JobSummary> = jobs.iter().map(JobSummary::from).collect();
        let chosen =
            match &a.job_name {
                Some(name) => Some(failed_jobs.iter().find(|j| &j.name == name).ok_or_else(
                    || {
                        CallFailure::new(
                            ErrorCode::NotFound,
                            format!(
                                "no failed job named {name:?}; the failed jobs are: {}",
                                failed_jobs
                                    .iter()
                                    .map(|j| j.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    },
                )?),
                None => failed_jobs.first(),
            }
            .cloned();
        let route = route_text(&via);
        let Some(mut job) = chosen else {
            let text = match &failed_elsewhere {
                Some(why) => format!("{route}{why}"),
                None => format!(
                    "{route}pipeline {} has no failed jobs",
                    pipeline_id.map_or_else(|| "?".into(), |p| p.to_string())
                ),
            };
            return Ok(Rendered {
                output: FailedJobLog {
                    pipeline_id,
                    via,
                    failed_elsewhere,
                    failed_jobs,
                    job: None,
                    total_lines: 0,
                    log: String::new(),
                    truncated: false,
                },
                text,
            });
        };
        job.url = jobs
            .iter()
            .find(|j| j.id == job.id)
            .map(|j| j.web_url.clone());
        let req = Request::get(
            "/projects/{id}/jobs/{job_id}/trace",
            format!("{project}/jobs/{}/trace", job.id),
        )
        .accept("text/plain, */*");
        let resp = cx.ok(inst, &req).await?;
        let lines = clean_log(&String::from_utf8_lossy(&resp.body));
        let n = a.lines.unwrap_or(50).clamp(1, 1000);
        let log = tail(&lines, n);
        let truncated = lines.len() > n;
        let mut text = format!(
            "{route}pipeline {}: job {} ({}) {}{}",
            pipeline_id.map_or_else(|| "?".into(), |p| p.to_string()),
            job.name,
            job.stage,
            job.status,
            job.failure_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        if failed_jobs.len() > 1 {
            text.push_str(&format!(
                "\nfailed jobs: {}",
                failed_jobs
                    .iter()
                    .map(|j| j.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if resp.body.len() >= MAX_BODY {
            text.push_str(
                "\n(the log is longer than the connector reads; this is the end of its first part)",
            );
        }
        text.push_str(&format!(
            "\nlast {} of {} log lines:\n{log}",
            n.min(lines.len()),
            lines.len()
        ));
        Ok(Rendered {
            output: FailedJobLog {
                pipeline_id,
                via,
                failed_elsewhere,
                failed_jobs,
                job: Some(job),
                total_lines: lines.len(),
                log,
                truncated,
            },
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_cleaned_like_a_terminal_shows_them() {
        let raw = "section_start:1700000000:step_script\r\u{1b}[0K\u{1b}[0;1mExecuting \"step_script\"\u{1b}[0;m\r\n\
                   $ go vet ./...\n\
                   10%\r55%\r100%\n\
                   \n\
                   \u{1b}[31;1mERROR: Job failed: exit code 1\u{1b}[0m\n\
                   section_end:1700000001:step_script\r\u{1b}[0K\n";
        let lines = clean_log(raw);
        assert_eq!(
            lines,
            vec![
                "Executing \"step_script\"",
                "$ go vet ./...",
                "100%",
                "",
                "ERROR: Job failed: exit code 1",
            ]
        );
        assert_eq!(tail(&lines, 2), "\nERROR: Job failed: exit code 1");
        assert_eq!(tail(&lines, 100).lines().count(), 5);
    }

    #[test]
    fn runner_timestamps_go_only_when_every_line_has_one() {
        let stamped = "2024-03-05T09:17:40.5170000Z 00O $ cargo test\n\
                       2024-03-05T09:17:41.0340000Z 00O+ running 2 tests\n\
                       2024-03-05T09:17:41.5000000Z \n\
                       \n\
                       2024-03-05T09:17:42Z test result: FAILED\n";
        assert_eq!(
            clean_log(stamped),
            vec![
                "$ cargo test",
                "running 2 tests",
                "",
                "",
                "test result: FAILED"
            ]
        );
        let mixed = "2024-03-05T09:17:40Z started\nplain line\n";
        assert_eq!(
            clean_log(mixed),
            vec!["2024-03-05T09:17:40Z started", "plain line"]
        );
        assert_eq!(without_timestamp("2024-13-0xT00:00:00Z x"), None);
    }
}
