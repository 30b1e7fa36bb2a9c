//! Code tools: read a file (or list a directory) at a ref, and search code within one
//! repository.

use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use super::common;
use crate::providers::github::api;
use crate::providers::http::Request;
use crate::providers::page::page_query;
use crate::tools::tool::{Hints, READ, Rendered, Tool, ToolCall, clip};

/// Default characters of a file returned.
const DEFAULT_MAX_CHARS: usize = 20_000;
/// Most characters of a file returned in one call.
const MAX_CHARS: usize = 200_000;
/// Bytes looked at to tell binary files (a NUL) from text, as git does.
const SNIFF: usize = 8000;

/// Arguments of `github_get_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetFileArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Path of the file or directory in the repository (empty or absent: the root).
    pub path: Option<String>,
    /// Branch, tag or commit sha (default: the default branch).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// First line to return, 1-based (default 1): to read on after a truncated answer.
    pub start_line: Option<usize>,
    /// Most characters of content to return (default 20000, at most 200000); longer files
    /// are cut at a line end and marked truncated.
    pub max_chars: Option<usize>,
}

/// A directory entry.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Entry {
    /// Name within the directory.
    pub name: String,
    /// `file`, `dir`, `symlink` or `submodule`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Size in bytes (files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// A file's content (or a window of it), or a directory's entries.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileContent {
    /// Path in the repository (empty for the root).
    pub path: String,
    /// The ref read (absent: the default branch).
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// `file`, `dir`, `symlink` or `submodule`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Size in bytes (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Blob sha (files), or the commit a submodule points at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// Whether the file is binary (its content is then not returned).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
    /// The text, from `from_line` to `to_line`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// First line returned, 1-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_line: Option<usize>,
    /// Last line returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_line: Option<usize>,
    /// Lines in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_lines: Option<usize>,
    /// Whether content was left out (past `max_chars`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Pass as `start_line` to read on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_start_line: Option<usize>,
    /// A directory's entries, in name order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<Entry>>,
    /// Where a symlink points, or a submodule's repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawEntry {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    size: u64,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawContent {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    sha: Option<String>,
    content: Option<String>,
    encoding: Option<String>,
    target: Option<String>,
    submodule_git_url: Option<String>,
}

/// `GET /contents` answers an array for a directory and an object for anything else.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawContents {
    Dir(Vec<RawEntry>),
    One(RawContent),
}

/// The lines of `text` from `start` (1-based) that fit in `max` characters.
#[derive(Debug, PartialEq, Eq)]
struct Window {
    content: String,
    from: usize,
    to: usize,
    total: usize,
    truncated: bool,
}

fn window(text: &str, start: usize, max: usize) -> Result<Window, CallFailure> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let total = lines.len();
    let start = start.max(1);
    if start > total.max(1) {
        return Err(CallFailure::new(
            ErrorCode::InvalidArguments,
            format!("start_line {start} is past the end: the file has {total} lines"),
        ));
    }
    let mut content = String::new();
    let mut used = 0;
    let mut to = start - 1;
    for line in lines.iter().skip(start - 1) {
        let n = line.chars().count();
        if used + n > max {
            break;
        }
        content.push_str(line);
        used += n;
        to += 1;
    }
    if to < start && total > 0 {
        // A single line longer than the budget: its head, marked.
        let first = lines.get(start - 1).copied().unwrap_or_default();
        content = clip(first, max).0;
        to = start;
        return Ok(Window {
            content,
            from: start,
            to,
            total,
            truncated: true,
        });
    }
    Ok(Window {
        content,
        from: start,
        to,
        total,
        truncated: to < total,
    })
}

/// Text, or `None` for binary content. A cut in the middle of a character at the end (a
/// body bounded by size) is not binary.
fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.iter().take(SNIFF).any(|b| *b == 0) {
        return None;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(bytes.get(..e.valid_up_to()).unwrap_or_default()).ok()
        }
        Err(_) => None,
    }
}

fn decode_base64(content: &str) -> Result<Vec<u8>, CallFailure> {
    let compact: String = content.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| {
            CallFailure::new(
                ErrorCode::Unavailable,
                "the upstream sent file content that is not valid base64",
            )
        })
}

/// `github_get_file`.
pub struct GetFile;

impl Tool for GetFile {
    type Args = GetFileArgs;
    type Output = FileContent;
    const NAME: &'static str = "github_get_file";
    const DESCRIPTION: &'static str = "Read a file of a repository at a branch, tag or commit (long files come back in windows of lines: pass next_start_line to read on), or list a directory's entries.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: GetFileArgs,
    ) -> Result<Rendered<FileContent>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let path = a.path.as_deref().unwrap_or_default().trim_matches('/');
        let base = format!("{}/contents", api::repo(&a.owner, &a.repo)?);
        let url = if path.is_empty() {
            base
        } else {
            format!("{base}/{}", api::file_path(path)?)
        };
        let route = "/repos/{owner}/{repo}/contents/{path}";
        let req = Request::get(route, url.clone()).query([("ref", a.git_ref.clone())]);
        let resp = cx.ok(inst, &req).await?;
        let max = a.max_chars.unwrap_or(DEFAULT_MAX_CHARS).clamp(1, MAX_CHARS);
        let at = a
            .git_ref
            .as_deref()
            .map(|r| format!("@{r}"))
            .unwrap_or_default();
        let name = format!("{}/{}:{path}{at}", a.owner, a.repo);
        let mut out = FileContent {
            path: path.to_owned(),
            git_ref: a.git_ref.clone(),
            kind: String::new(),
            size: None,
            sha: None,
            binary: false,
            content: None,
            from_line: None,
            to_line: None,
            total_lines: None,
            truncated: false,
            next_start_line: None,
            entries: None,
            target: None,
        };
        let raw = match resp.json::<RawContents>()? {
            RawContents::Dir(entries) => {
                out.kind = "dir".into();
                let entries: Vec<Entry> = entries
                    .into_iter()
                    .map(|e| Entry {
                        size: (e.kind == "file").then_some(e.size),
                        name: e.name,
                        kind: e.kind,
                    })
                    .collect();
                let mut text = format!("{name} (directory, {} entries)", entries.len());
                for e in &entries {
                    text.push_str(&match e.kind.as_str() {
                        "dir" => format!("\n{}/", e.name),
                        "file" => format!("\n{} {} B", e.name, e.size.unwrap_or(0)),
                        k => format!("\n{} ({k})", e.name),
                    });
                }
                out.entries = Some(entries);
                return Ok(Rendered { output: out, text });
            }
            RawContents::One(c) => c,
        };
        out.path = raw.path;
        out.kind = raw.kind.clone();
        out.sha = raw.sha;
        match raw.kind.as_str() {
            "file" => {}
            "symlink" => {
                let text = format!(
                    "{name} is a symlink to {}",
                    raw.target.as_deref().unwrap_or("?")
                );
                out.target = raw.target;
                return Ok(Rendered { output: out, text });
            }
            _ => {
                let text = format!(
                    "{name} is a {} ({})",
                    raw.kind,
                    raw.submodule_git_url.as_deref().unwrap_or("?")
                );
                out.target = raw.submodule_git_url;
                return Ok(Rendered { output: out, text });
            }
        }
        out.size = Some(raw.size);
        // GitHub inlines files up to 1 MiB; past that `encoding` is "none" and the
        // bytes come from the raw media type (bounded by the client's body limit).
        let bytes = match (raw.encoding.as_deref(), raw.content.as_deref()) {
            (Some("base64"), Some(c)) => decode_base64(c)?,
            _ if raw.size == 0 => Vec::new(),
            _ => {
                let req = Request::get(route, url)
                    .query([("ref", a.git_ref.clone())])
                    .accept("application/vnd.github.raw");
                cx.ok(inst, &req).await?.body.to_vec()
            }
        };
        let Some(text) = as_text(&bytes) else {
            out.binary = true;
            let text = format!(
                "{name} is a binary file of {} bytes (sha {}); its content is not shown",
                raw.size,
                out.sha.as_deref().unwrap_or("?")
            );
            return Ok(Rendered { output: out, text });
        };
        let w = window(text, a.start_line.unwrap_or(1), max)?;
        // Bytes the body limit cut off count as truncation too.
        let cut_short = (bytes.len() as u64) < raw.size;
        out.truncated = w.truncated || cut_short;
        out.next_start_line = (w.to < w.total).then_some(w.to + 1);
        out.from_line = Some(w.from);
        out.to_line = Some(w.to);
        out.total_lines = Some(w.total);
        let mut text = format!(
            "{name} ({} bytes, lines {}-{} of {})\n{}",
            raw.size, w.from, w.to, w.total, w.content
        );
        if let Some(next) = out.next_start_line {
            text.push_str(&format!(
                "\n…[truncated: pass start_line {next} to read on]"
            ));
        } else if cut_short {
            text.push_str("\n…[truncated: the file is larger than can be fetched]");
        }
        out.content = Some(w.content);
        Ok(Rendered { output: out, text })
    }
}

/// Arguments of `github_search_code`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchCodeArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Words to find (GitHub code search syntax without repo:/org:/user:, which are
    /// given by owner and repo).
    pub query: String,
    /// Only under this directory.
    pub path: Option<String>,
    /// Only files with this extension (`rs`, `py`).
    pub extension: Option<String>,
    /// Results per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A file that matched.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CodeHit {
    /// Path in the repository.
    pub path: String,
    /// Matching lines (at most 3, each at most 200 characters).
    pub lines: Vec<String>,
}

/// A page of code search results.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CodeHits {
    /// How many files matched in all.
    pub total: u64,
    /// This page's files.
    pub items: Vec<CodeHit>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawTextMatch {
    fragment: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawCodeItem {
    path: String,
    #[serde(default)]
    text_matches: Vec<RawTextMatch>,
}

/// A page of `GET /search/code`.
#[derive(Debug, Deserialize)]
pub(super) struct FoundCode {
    total_count: u64,
    items: Vec<RawCodeItem>,
}

/// `github_search_code`.
pub struct SearchCode;

/// A search qualifier value, refused if it could carry another qualifier.
fn plain_qualifier(key: &str, value: &str) -> Result<String, CallFailure> {
    if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"') {
        return Err(CallFailure::new(
            ErrorCode::InvalidArguments,
            format!("{key} must be one word without quotes"),
        ));
    }
    Ok(format!("{key}:{value}"))
}

impl Tool for SearchCode {
    type Args = SearchCodeArgs;
    type Output = CodeHits;
    const NAME: &'static str = "github_search_code";
    const DESCRIPTION: &'static str = "Search the code of one repository (its default branch): the files that match, with their matching lines; narrow by directory and extension.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["owner", "repo"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: SearchCodeArgs,
    ) -> Result<Rendered<CodeHits>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let words = api::unscoped_words(a.query.trim())?;
        if words.is_empty() {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "query is empty",
            ));
        }
        let mut q = vec![
            words.to_owned(),
            format!("repo:{}", api::searchable_repo(&a.owner, &a.repo)?),
        ];
        if let Some(p) = a.path.as_deref().map(|p| p.trim_matches('/')) {
            q.push(plain_qualifier("path", p)?);
        }
        if let Some(e) = a.extension.as_deref().map(|e| e.trim_start_matches('.')) {
            q.push(plain_qualifier("extension", e)?);
        }
        let req = Request::get("/search/code", "search/code".into())
            .query([("q", Some(q.join(" ")))])
            .query(page_query(a.limit, a.cursor.as_deref())?)
            .accept("application/vnd.github.text-match+json");
        let resp = cx.ok(inst, &req).await?;
        let found: FoundCode = resp.json()?;
        let items: Vec<CodeHit> = found
            .items
            .into_iter()
            .map(|i| CodeHit {
                path: i.path,
                lines: i
                    .text_matches
                    .iter()
                    .filter_map(|m| m.fragment.as_deref())
                    .flat_map(str::lines)
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .take(3)
                    .map(|l| clip(l, 200).0)
                    .collect(),
            })
            .collect();
        let out = CodeHits {
            total: found.total_count,
            items,
            next_cursor: api::next_cursor(&resp),
        };
        let text = if out.items.is_empty() {
            format!("no code in {}/{} matches {words:?}", a.owner, a.repo)
        } else {
            let mut lines = vec![format!(
                "{} file(s) in {}/{} match:",
                out.total, a.owner, a.repo
            )];
            for h in &out.items {
                lines.push(format!("{}: {}", h.path, h.lines.join(" | ")));
            }
            if out.next_cursor.is_some() {
                lines.push("(more: pass next_cursor)".into());
            }
            lines.join("\n")
        };
        Ok(Rendered { output: out, text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_at_line_ends_and_say_where_to_read_on() {
        let text = "one\ntwo\nthree\n";
        let w = window(text, 1, 8).unwrap();
        assert_eq!(w.content, "one\ntwo\n");
        assert_eq!((w.from, w.to, w.total, w.truncated), (1, 2, 3, true));
        let w = window(text, 3, 100).unwrap();
        assert_eq!((w.content.as_str(), w.truncated), ("three\n", false));
        assert!(window(text, 4, 100).is_err());
        // One line longer than the budget: its head, marked.
        let w = window("abcdefghij", 1, 4).unwrap();
        assert_eq!(w.content, "abcd…[truncated]");
        assert!(w.truncated);
        let w = window("", 1, 4).unwrap();
        assert_eq!((w.total, w.truncated), (0, false));
    }

    #[test]
    fn binary_is_told_from_text() {
        assert_eq!(as_text(b"fn main() {}\n"), Some("fn main() {}\n"));
        assert_eq!(as_text(b"\x89PNG\r\n\x1a\n\0\0"), None);
        assert_eq!(as_text(b"\xff\xfe garbage"), None);
        // A character cut at the end of a bounded body is still text.
        assert_eq!(as_text("héllo".as_bytes().get(..2).unwrap()), Some("h"));
        assert_eq!(decode_base64("aGVs\nbG8=\n").unwrap(), b"hello");
        assert!(decode_base64("not base64!").is_err());
    }

    #[test]
    fn qualifiers_cannot_carry_more_qualifiers() {
        assert_eq!(plain_qualifier("path", "src").unwrap(), "path:src");
        assert!(plain_qualifier("path", "src repo:acme/infra").is_err());
        assert!(plain_qualifier("extension", "\"rs").is_err());
    }
}
