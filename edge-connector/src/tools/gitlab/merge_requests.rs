//! Merge request reads: list a project's merge requests, read one with a summary of its
//! changed files and its head pipeline, and read its diff, bounded per file.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;

use super::common::{self, MergeRequestSummary, merge_request_line};
use crate::providers::gitlab::api::{self, RawMergeRequest};
use crate::providers::http::Request;
use crate::providers::page::{MAX_LIMIT, Page, page_query, render_lines};
use crate::tools::tool::{Hints, READ, Rendered, Tool, ToolCall, clip};

/// Which merge requests by state.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    /// Open only (the default).
    #[serde(alias = "open")]
    Opened,
    /// Closed without merging.
    Closed,
    /// Merged.
    Merged,
    /// Any state.
    All,
}

impl StateFilter {
    fn as_str(self) -> &'static str {
        match self {
            StateFilter::Opened => "opened",
            StateFilter::Closed => "closed",
            StateFilter::Merged => "merged",
            StateFilter::All => "all",
        }
    }
}

/// `projects/{id}/merge_requests/{iid}`.
pub fn path(project: &str, iid: u64) -> Result<String, CallFailure> {
    Ok(format!("{}/merge_requests/{iid}", api::project(project)?))
}

/// Arguments of `gitlab_list_merge_requests`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// `opened` (default), `closed`, `merged` or `all`.
    pub state: Option<StateFilter>,
    /// Only those opened by this username; `me` for the calling user.
    pub author: Option<String>,
    /// Only those with this username as a reviewer; `me` for the calling user.
    pub reviewer: Option<String>,
    /// Only those with all of these labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Only those from this source branch.
    pub source_branch: Option<String>,
    /// Only those into this target branch.
    pub target_branch: Option<String>,
    /// Words to look for in titles and descriptions.
    pub text: Option<String>,
    /// Merge requests per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `gitlab_list_merge_requests`.
pub struct ListMergeRequests;

impl Tool for ListMergeRequests {
    type Args = ListArgs;
    type Output = Page<MergeRequestSummary>;
    const NAME: &'static str = "gitlab_list_merge_requests";
    const DESCRIPTION: &'static str = "List a GitLab project's merge requests, most recently updated first, filtered by state, author or reviewer (\"me\" for yourself), labels, branches and words.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["project"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: ListArgs,
    ) -> Result<Rendered<Page<MergeRequestSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let wants_me = [&a.author, &a.reviewer]
            .iter()
            .any(|n| n.as_deref() == Some("me"));
        let me = if wants_me {
            Some(common::me(cx, inst).await?)
        } else {
            None
        };
        let person = |name: Option<String>| match name.as_deref() {
            Some("me") => me.clone(),
            other => other.map(|n| n.trim_start_matches('@').to_owned()),
        };
        let (author, reviewer) = (person(a.author), person(a.reviewer));
        let req = Request::get(
            "/projects/{id}/merge_requests",
            format!("{}/merge_requests", api::project(&a.project)?),
        )
        .query([
            (
                "state",
                Some(a.state.unwrap_or(StateFilter::Opened).as_str().to_owned()),
            ),
            ("author_username", author),
            ("reviewer_username", reviewer),
            ("labels", (!a.labels.is_empty()).then(|| a.labels.join(","))),
            ("source_branch", a.source_branch),
            ("target_branch", a.target_branch),
            ("search", a.text.filter(|t| !t.trim().is_empty())),
            ("order_by", Some("updated_at".into())),
            ("sort", Some("desc".into())),
        ])
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let next_cursor = api::next_cursor(&resp);
        let items: Vec<MergeRequestSummary> = resp
            .json::<Vec<RawMergeRequest>>()?
            .iter()
            .map(MergeRequestSummary::listed)
            .collect();
        let output = Page { items, next_cursor };
        let text = render_lines(&output, merge_request_line, "no matching merge requests");
        Ok(Rendered { output, text })
    }
}

/// One file of a merge request's diff as GitLab returns it.
#[derive(Debug, Deserialize)]
struct RawDiff {
    #[serde(default)]
    old_path: String,
    #[serde(default)]
    new_path: String,
    #[serde(default)]
    diff: String,
    #[serde(default)]
    new_file: bool,
    #[serde(default)]
    renamed_file: bool,
    #[serde(default)]
    deleted_file: bool,
    /// File modes (`100644`...); a change of mode alone has no diff text.
    #[serde(default)]
    a_mode: Option<String>,
    #[serde(default)]
    b_mode: Option<String>,
    // Over GitLab's diff limits: `diff` is then empty, and no line count is given
    // (`Entities::Diff` has none).
    #[serde(default)]
    too_large: bool,
    #[serde(default)]
    collapsed: bool,
}

/// What is said of a file whose diff GitLab did not send.
const TOO_LARGE: &str = "diff too large to show (GitLab sends neither its text nor a line count)";
/// Said of a content change with no diff text and no flag saying why (older GitLab).
const NO_TEXT: &str = "no diff text from GitLab (a binary file, or one over its diff limits); no line count is available";

impl RawDiff {
    fn status(&self) -> &'static str {
        match () {
            _ if self.new_file => "added",
            _ if self.deleted_file => "deleted",
            _ if self.renamed_file => "renamed",
            _ => "modified",
        }
    }

    fn path(&self) -> String {
        if self.deleted_file || self.new_path.is_empty() {
            self.old_path.clone()
        } else {
            self.new_path.clone()
        }
    }

    /// Why the diff text of a content change is missing, if it is.
    fn missing(&self) -> Option<&'static str> {
        if !self.diff.is_empty() {
            None
        } else if self.too_large || self.collapsed {
            Some(TOO_LARGE)
        } else if self.new_file
            || self.deleted_file
            || self.renamed_file
            || self.a_mode != self.b_mode
        {
            // An empty file added or removed, a pure rename, a mode change: nothing to show.
            None
        } else {
            Some(NO_TEXT)
        }
    }

    /// Added and removed lines, counted from the hunks; `None` when GitLab sent no text
    /// to count (never a made-up `+0 -0`).
    fn counts(&self) -> Option<(u64, u64)> {
        if self.missing().is_some() {
            return None;
        }
        Some(self.diff.lines().fold((0, 0), |(add, del), l| {
            if l.starts_with('+') && !l.starts_with("+++ ") {
                (add + 1, del)
            } else if l.starts_with('-') && !l.starts_with("--- ") {
                (add, del + 1)
            } else {
                (add, del)
            }
        }))
    }

    fn changed_file(&self) -> ChangedFile {
        let (additions, deletions) = self.counts().unzip();
        ChangedFile {
            path: self.path(),
            old_path: self.renamed_file.then(|| self.old_path.clone()),
            status: self.status().to_owned(),
            additions,
            deletions,
            no_diff: self.missing().map(str::to_owned),
        }
    }
}

/// A changed file.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangedFile {
    /// Path (after the change).
    pub path: String,
    /// The path before a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// `added`, `modified`, `deleted` or `renamed`.
    pub status: String,
    /// Lines added (absent when GitLab sent no diff text to count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additions: Option<u64>,
    /// Lines removed (absent likewise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletions: Option<u64>,
    /// Why GitLab sent no diff text for a change of content (e.g. over its diff limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_diff: Option<String>,
}

/// `+A -D`, or why there is no count.
fn counted(additions: Option<u64>, deletions: Option<u64>, missing: Option<&str>) -> String {
    match (additions, deletions, missing) {
        (Some(a), Some(d), _) => format!("+{a} -{d}"),
        (_, _, Some(why)) => why.to_owned(),
        _ => "no line count".to_owned(),
    }
}

/// A pipeline, briefly.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PipelineBrief {
    /// Id (for `gitlab_get_failed_job_log`).
    pub id: u64,
    /// `success`, `failed`, `running`, `pending`, `canceled`...
    pub status: String,
}

/// A merge request with what it changes and how its checks stand.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MergeRequestDetail {
    /// The merge request.
    #[serde(flatten)]
    pub merge_request: MergeRequestSummary,
    /// Its description (truncated past `max_body_chars`).
    pub description: String,
    /// Head commit of the source branch: pass it as `sha` to merge or approve exactly
    /// what was reviewed.
    pub sha: String,
    /// Whether it conflicts with the target branch.
    pub has_conflicts: bool,
    /// Number of comments.
    pub comments: u64,
    /// Number of changed files as GitLab counts them (`"1000+"` when huge).
    pub changes_count: String,
    /// The changed files (the first `max_files`).
    pub files: Vec<ChangedFile>,
    /// Whether more files changed than are listed.
    pub more_files: bool,
    /// The head commit's latest pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineBrief>,
    /// The merge commit, once merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_commit_sha: Option<String>,
}

/// Arguments of `gitlab_get_merge_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Merge request number within the project (`iid`, as in `!12`).
    pub iid: u64,
    /// Most changed files listed (default 50, at most 100).
    pub max_files: Option<u32>,
    /// Longest description kept, in characters (default 2000).
    pub max_body_chars: Option<usize>,
}

/// `gitlab_get_merge_request`.
pub struct GetMergeRequest;

impl Tool for GetMergeRequest {
    type Args = GetArgs;
    type Output = MergeRequestDetail;
    const NAME: &'static str = "gitlab_get_merge_request";
    const DESCRIPTION: &'static str = "Read one GitLab merge request: state, branches, whether it can be merged, its head commit, the files it changes (with added/removed line counts) and its head pipeline's status.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["project"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: GetArgs,
    ) -> Result<Rendered<MergeRequestDetail>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let base = path(&a.project, a.iid)?;
        let raw: RawMergeRequest = cx
            .ok(
                inst,
                &Request::get("/projects/{id}/merge_requests/{iid}", base.clone()),
            )
            .await?
            .json()?;
        let max_files = a.max_files.unwrap_or(50).clamp(1, MAX_LIMIT);
        let req = Request::get(
            "/projects/{id}/merge_requests/{iid}/diffs",
            format!("{base}/diffs"),
        )
        .query(page_query(Some(max_files), None)?);
        let resp = cx.ok(inst, &req).await?;
        let more_files = api::next_cursor(&resp).is_some();
        let files: Vec<ChangedFile> = resp
            .json::<Vec<RawDiff>>()?
            .iter()
            .map(RawDiff::changed_file)
            .collect();
        let max = a
            .max_body_chars
            .unwrap_or(super::issues::DEFAULT_BODY_CHARS)
            .min(super::issues::MAX_BODY_CHARS);
        let description = clip(raw.description.as_deref().unwrap_or_default(), max).0;
        let pipeline = raw.head_pipeline.as_ref().map(|p| PipelineBrief {
            id: p.id,
            status: p.status.clone(),
        });
        let detail = MergeRequestDetail {
            merge_request: MergeRequestSummary::from(&raw),
            description,
            sha: raw.sha.clone().unwrap_or_default(),
            has_conflicts: raw.has_conflicts,
            comments: raw.user_notes_count,
            changes_count: raw
                .changes_count
                .clone()
                .unwrap_or_else(|| files.len().to_string()),
            files,
            more_files,
            pipeline,
            merge_commit_sha: raw.merge_commit_sha,
        };
        let text = render_detail(&detail);
        Ok(Rendered {
            output: detail,
            text,
        })
    }
}

fn render_detail(d: &MergeRequestDetail) -> String {
    let m = &d.merge_request;
    let mut text = format!(
        "{}\nhead {} · merge status: {}{}",
        merge_request_line(m),
        api::short(&d.sha),
        m.merge_status,
        if d.has_conflicts { " (conflicts)" } else { "" }
    );
    match &d.pipeline {
        Some(p) if p.status == "failed" => text.push_str(&format!(
            "\npipeline {} failed (gitlab_get_failed_job_log with pipeline_id {} shows why)",
            p.id, p.id
        )),
        Some(p) => text.push_str(&format!("\npipeline {}: {}", p.id, p.status)),
        None => text.push_str("\nno pipeline"),
    }
    text.push_str(&format!("\n{} files changed:", d.changes_count));
    for f in &d.files {
        text.push_str(&format!(
            "\n  {} {} ({})",
            f.status,
            f.path,
            counted(f.additions, f.deletions, f.no_diff.as_deref())
        ));
    }
    if d.more_files {
        text.push_str("\n  … (more files: gitlab_get_merge_request_diff pages through them)");
    }
    if !d.description.is_empty() {
        text.push_str(&format!("\n\n{}", d.description));
    }
    text
}

/// Arguments of `gitlab_get_merge_request_diff`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Merge request number within the project (`iid`).
    pub iid: u64,
    /// Only these files (paths after the change); default: all.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Files per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Most diff lines shown per file (default 200, at most 5000); the cut is marked.
    pub max_lines_per_file: Option<usize>,
    /// Most diff lines shown in all (default 1500, at most 20000); files past it are
    /// listed without their diff, marked.
    pub max_total_lines: Option<usize>,
}

/// One file's diff.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileDiff {
    /// Path (after the change).
    pub path: String,
    /// The path before a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// `added`, `modified`, `deleted` or `renamed`.
    pub status: String,
    /// Lines added (absent when GitLab sent no diff text to count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additions: Option<u64>,
    /// Lines removed (absent likewise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletions: Option<u64>,
    /// Unified diff hunks (cut at the limits, marked `…[truncated …]`).
    pub diff: String,
    /// Whether the diff shown is incomplete.
    pub truncated: bool,
}

/// The first `max` lines of `diff`, and whether lines were cut.
fn bounded(diff: &str, max: usize) -> (String, bool) {
    let total = diff.lines().count();
    if total <= max {
        return (diff.to_owned(), false);
    }
    let mut out: String = diff.lines().take(max).flat_map(|l| [l, "\n"]).collect();
    out.push_str(&format!("…[truncated: {} more lines]", total - max));
    (out, true)
}

fn file_diff(raw: &RawDiff, per_file: usize, budget: &mut usize) -> FileDiff {
    let changed = raw.changed_file();
    let (diff, truncated) = if let Some(why) = raw.missing() {
        (format!("…[{why}]"), true)
    } else if *budget == 0 {
        (
            "…[omitted: the line budget is spent; ask for this file with paths]".to_owned(),
            true,
        )
    } else {
        let (d, cut) = bounded(&raw.diff, per_file.min(*budget));
        *budget = budget.saturating_sub(raw.diff.lines().count().min(per_file));
        (d, cut)
    };
    FileDiff {
        path: changed.path,
        old_path: changed.old_path,
        status: changed.status,
        additions: changed.additions,
        deletions: changed.deletions,
        diff,
        truncated,
    }
}

/// `gitlab_get_merge_request_diff`.
pub struct GetMergeRequestDiff;

impl Tool for GetMergeRequestDiff {
    type Args = DiffArgs;
    type Output = Page<FileDiff>;
    const NAME: &'static str = "gitlab_get_merge_request_diff";
    const DESCRIPTION: &'static str = "Read what a GitLab merge request changes: the unified diff of each file, a page of files at a time, bounded per file and in all (cuts are marked), optionally only some paths.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["project"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: DiffArgs,
    ) -> Result<Rendered<Page<FileDiff>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let req = Request::get(
            "/projects/{id}/merge_requests/{iid}/diffs",
            format!("{}/diffs", path(&a.project, a.iid)?),
        )
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let next_cursor = api::next_cursor(&resp);
        let per_file = a.max_lines_per_file.unwrap_or(200).clamp(1, 5000);
        let mut budget = a.max_total_lines.unwrap_or(1500).clamp(1, 20_000);
        let wanted = |r: &RawDiff| {
            a.paths.is_empty()
                || a.paths.iter().any(|p| {
                    let p = p.trim_matches('/');
                    p == r.new_path || p == r.old_path
                })
        };
        let items: Vec<FileDiff> = resp
            .json::<Vec<RawDiff>>()?
            .iter()
            .filter(|r| wanted(r))
            .map(|r| file_diff(r, per_file, &mut budget))
            .collect();
        let mut text: Vec<String> = items
            .iter()
            .map(|f| {
                format!(
                    "--- {} ({}, {})\n{}",
                    f.path,
                    f.status,
                    counted(f.additions, f.deletions, None),
                    f.diff
                )
            })
            .collect();
        if text.is_empty() {
            text.push("no matching files on this page".into());
        }
        if next_cursor.is_some() {
            text.push("(more files: pass next_cursor)".into());
        }
        Ok(Rendered {
            output: Page { items, next_cursor },
            text: text.join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(diff: &str) -> RawDiff {
        RawDiff {
            old_path: "a.rs".into(),
            new_path: "a.rs".into(),
            diff: diff.into(),
            new_file: false,
            renamed_file: false,
            deleted_file: false,
            a_mode: Some("100644".into()),
            b_mode: Some("100644".into()),
            too_large: false,
            collapsed: false,
        }
    }

    #[test]
    fn a_diff_gitlab_did_not_send_has_no_made_up_line_count() {
        // (diff, too_large, collapsed, new file, mode after, counts, what is said)
        let cases = [
            (
                "@@ -1 +1 @@\n-a\n+b\n",
                false,
                false,
                false,
                "100644",
                Some((1, 1)),
                None,
            ),
            ("", true, false, false, "100644", None, Some(TOO_LARGE)),
            ("", false, true, false, "100644", None, Some(TOO_LARGE)),
            ("", false, false, false, "100644", None, Some(NO_TEXT)),
            // An empty file added, a mode change: truly nothing changed in lines.
            ("", false, false, true, "100644", Some((0, 0)), None),
            ("", false, false, false, "100755", Some((0, 0)), None),
        ];
        for (diff, too_large, collapsed, new_file, b_mode, counts, said) in cases {
            let mut d = raw(diff);
            d.too_large = too_large;
            d.collapsed = collapsed;
            d.new_file = new_file;
            d.b_mode = Some(b_mode.into());
            assert_eq!(d.counts(), counts, "{diff:?} {too_large} {collapsed}");
            assert_eq!(d.missing(), said, "{diff:?} {too_large} {collapsed}");
            let f = file_diff(&d, 100, &mut 100);
            assert_eq!(f.additions, counts.map(|c| c.0));
            if let Some(why) = said {
                assert_eq!(f.diff, format!("…[{why}]"));
                assert!(f.truncated);
            }
        }
    }

    #[test]
    fn diffs_are_counted_and_bounded_per_file_and_in_all() {
        let d = raw("@@ -1,2 +1,2 @@\n-old\n+new\n+more\n ctx\n");
        assert_eq!(d.counts(), Some((2, 1)));
        let mut budget = 100;
        let f = file_diff(&d, 3, &mut budget);
        assert!(f.truncated);
        assert_eq!(
            f.diff,
            "@@ -1,2 +1,2 @@\n-old\n+new\n…[truncated: 2 more lines]"
        );
        assert_eq!(budget, 97);
        let mut spent = 0;
        let f = file_diff(&d, 3, &mut spent);
        assert!(f.truncated && f.diff.starts_with("…[omitted"));
        let whole = file_diff(&d, 100, &mut budget);
        assert!(!whole.truncated);
        assert_eq!(whole.diff, d.diff);
    }

    #[test]
    fn file_status_follows_gitlab_flags() {
        let mut d = raw("");
        d.renamed_file = true;
        d.old_path = "old.rs".into();
        let c = d.changed_file();
        assert_eq!(
            (c.status.as_str(), c.old_path.as_deref()),
            ("renamed", Some("old.rs"))
        );
        d.renamed_file = false;
        d.deleted_file = true;
        d.new_path = String::new();
        assert_eq!(d.changed_file().path, "old.rs");
    }
}
