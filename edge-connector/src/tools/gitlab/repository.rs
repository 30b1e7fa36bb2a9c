//! Repository content: read a file at a ref (a bounded excerpt of its lines), list the
//! commits of a ref, search a project's code.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use super::common;
use crate::providers::Instance;
use crate::providers::gitlab::api;
use crate::providers::http::Request;
use crate::providers::page::{Page, page_query, render_lines};
use crate::providers::path::{file_path, seg};
use crate::tools::tool::{Hints, READ, Rendered, Tool, ToolCall, clip};

/// The project's default branch, for tools whose `ref` was left out (GitLab's file
/// endpoint insists on one).
pub async fn default_branch(
    cx: &ToolCall<'_>,
    inst: &Instance,
    project: &str,
) -> Result<String, CallFailure> {
    #[derive(Deserialize)]
    struct P {
        default_branch: Option<String>,
    }
    let req = Request::get("/projects/{id}", api::project(project)?);
    let p: P = cx.ok(inst, &req).await?.json()?;
    p.default_branch.ok_or_else(|| {
        CallFailure::new(
            ErrorCode::NotFound,
            format!("{project} has no default branch (an empty repository?)"),
        )
    })
}

/// Arguments of `gitlab_get_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetFileArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// File path in the repository (`src/main.rs`).
    pub path: String,
    /// Branch, tag or commit (default: the project's default branch).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// First line to return, from 1 (default 1): to read on where a truncated answer
    /// stopped, pass its `next_from_line`.
    pub from_line: Option<usize>,
    /// Most characters returned (default 20000, at most 200000); whole lines are kept and
    /// the cut is marked `…[truncated]`.
    pub max_chars: Option<usize>,
}

/// A file's content, or an excerpt of it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileContent {
    /// Path.
    pub path: String,
    /// The ref read.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Size in bytes.
    pub size: u64,
    /// Lines in the whole file.
    pub total_lines: usize,
    /// The first line returned.
    pub from_line: usize,
    /// The text (empty for a binary file).
    pub content: String,
    /// Whether lines past `content` were left out.
    pub truncated: bool,
    /// With `truncated`: the `from_line` that reads on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_from_line: Option<usize>,
    /// Whether the file is binary (not UTF-8 text), and so not shown.
    pub binary: bool,
    /// The last commit that changed the file (short id).
    pub last_commit: String,
}

/// Lines of `text` from `from_line` (1-based) within `max_chars`.
#[derive(Debug, PartialEq, Eq)]
struct Excerpt {
    content: String,
    total_lines: usize,
    truncated: bool,
    next_from_line: Option<usize>,
}

fn excerpt(text: &str, from_line: usize, max_chars: usize) -> Excerpt {
    let total_lines = text.lines().count();
    let mut content = String::new();
    let mut used = 0;
    let lines = text.split_inclusive('\n').enumerate();
    for (i, line) in lines.skip(from_line.saturating_sub(1)) {
        let len = line.chars().count();
        if used + len <= max_chars {
            content.push_str(line);
            used += len;
            continue;
        }
        // Line `i + 1` does not fit.
        let next = if used == 0 {
            // A line longer than the whole budget: its start, marked, then on past it.
            content = clip(line, max_chars).0;
            i + 2
        } else {
            content.push_str("…[truncated]");
            i + 1
        };
        return Excerpt {
            content,
            total_lines,
            truncated: true,
            next_from_line: (next <= total_lines).then_some(next),
        };
    }
    Excerpt {
        content,
        total_lines,
        truncated: false,
        next_from_line: None,
    }
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    size: u64,
    #[serde(default)]
    encoding: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    last_commit_id: String,
}

/// Default and largest `max_chars` of a file read.
const DEFAULT_FILE_CHARS: usize = 20_000;
const MAX_FILE_CHARS: usize = 200_000;

/// `gitlab_get_file`.
pub struct GetFile;

impl Tool for GetFile {
    type Args = GetFileArgs;
    type Output = FileContent;
    const NAME: &'static str = "gitlab_get_file";
    const DESCRIPTION: &'static str = "Read a file of a GitLab project at a branch, tag or commit: its text (long files come in excerpts of whole lines, with the line to read on from), size and last commit.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["project"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: GetFileArgs,
    ) -> Result<Rendered<FileContent>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let path = a.path.trim_matches('/').to_owned();
        // Checked part by part, then sent as one escaped segment, as GitLab wants it.
        file_path(&path)?;
        let git_ref = match a.git_ref.filter(|r| !r.trim().is_empty()) {
            Some(r) => r,
            None => default_branch(cx, inst, &a.project).await?,
        };
        let req = Request::get(
            "/projects/{id}/repository/files/{file_path}",
            format!(
                "{}/repository/files/{}",
                api::project(&a.project)?,
                seg(&path)?
            ),
        )
        .query([("ref", Some(git_ref.clone()))]);
        let raw: RawFile = cx.ok(inst, &req).await?.json()?;
        let bytes = match raw.encoding.as_str() {
            "base64" => STANDARD.decode(raw.content.trim()).map_err(|_| {
                CallFailure::new(
                    ErrorCode::Unavailable,
                    "GitLab sent file content that is not valid base64",
                )
            })?,
            _ => raw.content.into_bytes(),
        };
        let from_line = a.from_line.unwrap_or(1).max(1);
        let max_chars = a
            .max_chars
            .unwrap_or(DEFAULT_FILE_CHARS)
            .clamp(1, MAX_FILE_CHARS);
        let last_commit = api::short(&raw.last_commit_id);
        let (output, text) = match String::from_utf8(bytes) {
            Ok(text) => {
                let e = excerpt(&text, from_line, max_chars);
                let head = match e.next_from_line {
                    Some(n) => format!(
                        "{path}@{git_ref}: lines {from_line}-{} of {} (pass from_line={n} for more)",
                        n - 1,
                        e.total_lines
                    ),
                    None if e.truncated => format!(
                        "{path}@{git_ref}: line {from_line} of {}, truncated",
                        e.total_lines
                    ),
                    None if from_line > 1 => format!(
                        "{path}@{git_ref}: lines {from_line}-{} of {}",
                        e.total_lines, e.total_lines
                    ),
                    None => format!("{path}@{git_ref} ({} bytes)", raw.size),
                };
                let text = format!("{head}\n{}", e.content);
                (
                    FileContent {
                        path,
                        git_ref,
                        size: raw.size,
                        total_lines: e.total_lines,
                        from_line,
                        content: e.content,
                        truncated: e.truncated,
                        next_from_line: e.next_from_line,
                        binary: false,
                        last_commit,
                    },
                    text,
                )
            }
            Err(_) => {
                let text = format!("{path}@{git_ref}: binary file, {} bytes", raw.size);
                (
                    FileContent {
                        path,
                        git_ref,
                        size: raw.size,
                        total_lines: 0,
                        from_line,
                        content: String::new(),
                        truncated: false,
                        next_from_line: None,
                        binary: true,
                        last_commit,
                    },
                    text,
                )
            }
        };
        Ok(Rendered { output, text })
    }
}

/// Arguments of `gitlab_list_commits`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListCommitsArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Branch, tag or commit whose history to list (default: the default branch).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Only commits touching this file or directory.
    pub path: Option<String>,
    /// Only commits by this author (name or email, partial match).
    pub author: Option<String>,
    /// Only commits at or after this time (ISO 8601).
    pub since: Option<String>,
    /// Only commits at or before this time (ISO 8601).
    pub until: Option<String>,
    /// Commits per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A commit, compactly.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CommitSummary {
    /// Short commit id.
    pub sha: String,
    /// First line of the message.
    pub title: String,
    /// Author's name.
    pub author: String,
    /// Commit date, ISO 8601.
    pub date: String,
}

/// The fields of a commit the tools read.
#[derive(Debug, Deserialize)]
pub struct RawCommit {
    /// Full id.
    pub id: String,
    /// First line of the message.
    #[serde(default)]
    pub title: String,
    /// Author's name.
    #[serde(default)]
    pub author_name: String,
    /// Commit date.
    #[serde(default)]
    pub committed_date: Option<String>,
    /// Creation date (older GitLab's only date).
    #[serde(default)]
    pub created_at: Option<String>,
}

impl From<RawCommit> for CommitSummary {
    fn from(c: RawCommit) -> Self {
        Self {
            sha: api::short(&c.id),
            title: c.title,
            author: c.author_name,
            date: c.committed_date.or(c.created_at).unwrap_or_default(),
        }
    }
}

/// `gitlab_list_commits`.
pub struct ListCommits;

impl Tool for ListCommits {
    type Args = ListCommitsArgs;
    type Output = Page<CommitSummary>;
    const NAME: &'static str = "gitlab_list_commits";
    const DESCRIPTION: &'static str = "List the commits of a GitLab branch, tag or commit, newest first, optionally only those touching a path, by an author or within dates.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["project"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: ListCommitsArgs,
    ) -> Result<Rendered<Page<CommitSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let req = Request::get(
            "/projects/{id}/repository/commits",
            format!("{}/repository/commits", api::project(&a.project)?),
        )
        .query([
            ("ref_name", a.git_ref),
            ("path", a.path.map(|p| p.trim_matches('/').to_owned())),
            ("author", a.author),
            ("since", a.since),
            ("until", a.until),
        ])
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let next_cursor = api::next_cursor(&resp);
        let items: Vec<CommitSummary> = resp
            .json::<Vec<RawCommit>>()?
            .into_iter()
            .map(CommitSummary::from)
            .collect();
        let output = Page { items, next_cursor };
        let text = render_lines(
            &output,
            |c| {
                format!(
                    "{} {} ({}, {})",
                    c.sha,
                    c.title,
                    c.author,
                    c.date.get(..10).unwrap_or(&c.date)
                )
            },
            "no matching commits",
        );
        Ok(Rendered { output, text })
    }
}

/// Arguments of `gitlab_search_code`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchCodeArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// What to look for in the project's files.
    pub query: String,
    /// Branch, tag or commit to search (default: the default branch).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Matches per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A match.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CodeMatch {
    /// File path.
    pub path: String,
    /// Line number of the snippet's first line.
    pub line: u64,
    /// The matching lines with a little context (long ones truncated).
    pub snippet: String,
}

#[derive(Deserialize)]
struct RawBlob {
    #[serde(default)]
    path: String,
    #[serde(default)]
    filename: String,
    #[serde(default)]
    data: String,
    #[serde(default)]
    startline: u64,
}

/// Longest snippet kept per match.
const MAX_SNIPPET: usize = 400;

/// `gitlab_search_code`.
pub struct SearchCode;

impl Tool for SearchCode {
    type Args = SearchCodeArgs;
    type Output = Page<CodeMatch>;
    const NAME: &'static str = "gitlab_search_code";
    const DESCRIPTION: &'static str = "Search the files of one GitLab project (at its default branch or a ref) for text; gives each matching file with the line number and a short snippet.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["project"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: SearchCodeArgs,
    ) -> Result<Rendered<Page<CodeMatch>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        common::require("query", &a.query)?;
        let req = Request::get(
            "/projects/{id}/search",
            format!("{}/search", api::project(&a.project)?),
        )
        .query([
            ("scope", Some("blobs".into())),
            ("search", Some(a.query.clone())),
            ("ref", a.git_ref),
        ])
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let next_cursor = api::next_cursor(&resp);
        let items: Vec<CodeMatch> = resp
            .json::<Vec<RawBlob>>()?
            .into_iter()
            .map(|b| CodeMatch {
                path: if b.path.is_empty() {
                    b.filename
                } else {
                    b.path
                },
                line: b.startline,
                snippet: clip(b.data.trim_end(), MAX_SNIPPET).0,
            })
            .collect();
        let output = Page { items, next_cursor };
        let text = render_lines(
            &output,
            |m| format!("{}:{}\n{}", m.path, m.line, m.snippet),
            &format!("no matches for {:?}", a.query),
        );
        Ok(Rendered { output, text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_keep_whole_lines_and_say_where_to_read_on() {
        let text = "one\ntwo\nthree\nfour\n";
        let all = excerpt(text, 1, 100);
        assert_eq!(all.content, text);
        assert!(!all.truncated && all.next_from_line.is_none());
        assert_eq!(all.total_lines, 4);
        let cut = excerpt(text, 1, 9);
        assert_eq!(cut.content, "one\ntwo\n…[truncated]");
        assert_eq!(cut.next_from_line, Some(3));
        let on = excerpt(text, 3, 100);
        assert_eq!(on.content, "three\nfour\n");
        // A line longer than the budget: its start, marked, then the next line.
        let long = excerpt("abcdefghij\nk\n", 1, 4);
        assert_eq!(long.content, "abcd…[truncated]");
        assert_eq!(long.next_from_line, Some(2));
        assert!(excerpt("abcdefghij", 1, 4).next_from_line.is_none());
        assert_eq!(excerpt(text, 9, 100).content, "");
    }
}
