//! `github_get_pull_request_diff`: a pull request's changes file by file, bounded: each
//! file's patch and the whole answer have a size limit, cuts are marked, and the files
//! that did not fit are named so the agent can ask for them with a filter.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;

use super::common;
use crate::providers::github::api;
use crate::providers::http::Request;
use crate::tools::tool::{Hints, READ, Rendered, Tool, ToolCall, clip};

/// Default characters of patches in all.
const DEFAULT_MAX_CHARS: usize = 20_000;
/// Most characters of patches in one answer.
const MAX_CHARS: usize = 100_000;
/// Default characters of one file's patch.
const DEFAULT_MAX_FILE_CHARS: usize = 6_000;
/// Below this much room left, a file's patch is not started.
const MIN_ROOM: usize = 200;
/// Pages of files read at most (GitHub lists at most 3000 files, 100 a page).
const MAX_PAGES: u32 = 30;
/// Files named in `omitted` at most.
const MAX_OMITTED: usize = 100;

/// Arguments of `github_get_pull_request_diff`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Pull request number.
    pub number: u64,
    /// Only these files: exact paths, directories (ending in `/`) or patterns where `*`
    /// matches any characters (`src/*.rs`). Default: every file.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Most characters of patches in all (default 20000, at most 100000).
    pub max_chars: Option<usize>,
    /// Most characters of one file's patch (default 6000).
    pub max_file_chars: Option<usize>,
}

/// One file's change.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FilePatch {
    /// Path.
    pub path: String,
    /// The path before a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_path: Option<String>,
    /// `added`, `modified`, `removed`, `renamed`...
    pub status: String,
    /// Lines added.
    pub additions: u64,
    /// Lines deleted.
    pub deletions: u64,
    /// The unified diff hunks; absent when GitHub has no text diff (binary or very large
    /// files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Whether the patch was cut (marked `…[truncated: N more lines]`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The bounded diff.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PullDiff {
    /// The files shown.
    pub files: Vec<FilePatch>,
    /// Matching files left out for lack of room (ask for them with `paths`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<String>,
    /// Whether there are further files not looked at (narrow with `paths`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more_files: bool,
    /// Whether anything was cut or left out.
    pub truncated: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawFile {
    filename: String,
    previous_filename: Option<String>,
    status: String,
    #[serde(default)]
    additions: u64,
    #[serde(default)]
    deletions: u64,
    patch: Option<String>,
}

/// Whether `path` is selected by `filter` (empty: everything).
fn selected(path: &str, filter: &[String]) -> bool {
    filter.is_empty()
        || filter.iter().any(|f| {
            let f = f.trim_start_matches('/');
            if f.contains('*') {
                wildcard(f, path)
            } else if f.ends_with('/') {
                path.starts_with(f)
            } else {
                path == f || path.strip_prefix(f).is_some_and(|r| r.starts_with('/'))
            }
        })
}

/// `*` matches any run of characters; everything else itself.
fn wildcard(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return true;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = rest.get(i + p.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The whole lines of `patch` that fit in `max` characters; the cut is marked with how
/// many lines were left out.
fn clip_lines(patch: &str, max: usize) -> (String, bool) {
    if patch.chars().count() <= max {
        return (patch.to_owned(), false);
    }
    let lines: Vec<&str> = patch.lines().collect();
    let mut out = String::new();
    let mut used = 0;
    let mut kept = 0;
    for line in &lines {
        let n = line.chars().count() + 1;
        if used + n > max {
            break;
        }
        out.push_str(line);
        out.push('\n');
        used += n;
        kept += 1;
    }
    if kept == 0 {
        out = clip(patch, max).0;
        out.push('\n');
        kept = 1;
    }
    out.push_str(&format!(
        "…[truncated: {} more lines]",
        lines.len().saturating_sub(kept)
    ));
    (out, true)
}

/// `github_get_pull_request_diff`.
pub struct GetPullRequestDiff;

impl Tool for GetPullRequestDiff {
    type Args = DiffArgs;
    type Output = PullDiff;
    const NAME: &'static str = "github_get_pull_request_diff";
    const DESCRIPTION: &'static str = "Show what a pull request changes, file by file as unified diff hunks, within a size limit (cuts are marked; files left out are named): filter by path or pattern to see more of a file.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn run(&self, cx: &ToolCall<'_>, a: DiffArgs) -> Result<Rendered<PullDiff>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let path = format!("{}/pulls/{}/files", api::repo(&a.owner, &a.repo)?, a.number);
        let mut room = a.max_chars.unwrap_or(DEFAULT_MAX_CHARS).min(MAX_CHARS);
        let per_file = a.max_file_chars.unwrap_or(DEFAULT_MAX_FILE_CHARS).max(1);
        let mut out = PullDiff {
            files: Vec::new(),
            omitted: Vec::new(),
            more_files: false,
            truncated: false,
        };
        let mut page = 1;
        loop {
            let req = Request::get(
                "/repos/{owner}/{repo}/pulls/{pull_number}/files",
                path.clone(),
            )
            .query([
                ("per_page", Some("100".to_owned())),
                ("page", Some(page.to_string())),
            ]);
            let resp = cx.ok(inst, &req).await?;
            let next = api::next_cursor(&resp);
            for f in resp.json::<Vec<RawFile>>()? {
                if !selected(&f.filename, &a.paths) {
                    continue;
                }
                let patch_len = f.patch.as_deref().map_or(0, |p| p.chars().count());
                if patch_len > 0 && room < MIN_ROOM.min(patch_len) {
                    out.truncated = true;
                    if out.omitted.len() < MAX_OMITTED {
                        out.omitted.push(f.filename);
                    } else {
                        out.more_files = true;
                    }
                    continue;
                }
                let (patch, truncated) = match f.patch.as_deref() {
                    Some(p) => {
                        let (clipped, cut) = clip_lines(p, per_file.min(room));
                        room = room.saturating_sub(clipped.chars().count());
                        (Some(clipped), cut)
                    }
                    None => (None, false),
                };
                out.truncated |= truncated;
                out.files.push(FilePatch {
                    path: f.filename,
                    previous_path: f.previous_filename,
                    status: f.status,
                    additions: f.additions,
                    deletions: f.deletions,
                    patch,
                    truncated,
                });
            }
            // Past the budget, further pages could only add names to `omitted`.
            if next.is_none() {
                break;
            }
            if room < MIN_ROOM || page >= MAX_PAGES {
                out.more_files = true;
                out.truncated = true;
                break;
            }
            page += 1;
        }
        let mut text = Vec::new();
        for f in &out.files {
            let renamed = f
                .previous_path
                .as_deref()
                .map(|p| format!(" from {p}"))
                .unwrap_or_default();
            text.push(format!(
                "--- {} ({}{renamed}, +{} -{})",
                f.path, f.status, f.additions, f.deletions
            ));
            text.push(
                f.patch
                    .clone()
                    .unwrap_or_else(|| "(no text diff: binary or too large)".into()),
            );
        }
        if out.files.is_empty() && out.omitted.is_empty() {
            text.push(if a.paths.is_empty() {
                "the pull request changes no files".into()
            } else {
                "no changed file matches paths".into()
            });
        }
        if !out.omitted.is_empty() {
            text.push(format!(
                "…[left out for room: {}; ask for them with paths]",
                out.omitted.join(", ")
            ));
        }
        if out.more_files {
            text.push("…[more files not shown: narrow with paths]".into());
        }
        Ok(Rendered {
            output: out,
            text: text.join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_paths_directories_and_patterns() {
        let f = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(selected("src/lib.rs", &[]));
        assert!(selected("src/lib.rs", &f(&["src/lib.rs"])));
        assert!(selected("src/lib.rs", &f(&["src"])));
        assert!(selected("src/lib.rs", &f(&["src/"])));
        assert!(!selected("srcx/lib.rs", &f(&["src"])));
        assert!(selected("src/a/b.rs", &f(&["src/*.rs"])));
        assert!(selected("README.md", &f(&["*.md", "src/"])));
        assert!(!selected("src/lib.rs", &f(&["*.md"])));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("a*b*c", "aXbYc"));
        assert!(!wildcard("a*b*c", "aXcYb"));
    }

    #[test]
    fn patches_are_cut_at_line_ends_with_a_count() {
        let patch = "@@ -1,2 +1,2 @@\n-old\n+new\n context";
        assert_eq!(clip_lines(patch, 1000), (patch.to_owned(), false));
        let (cut, truncated) = clip_lines(patch, 25);
        assert!(truncated);
        assert_eq!(cut, "@@ -1,2 +1,2 @@\n-old\n…[truncated: 2 more lines]");
        let (cut, _) = clip_lines("0123456789", 4);
        assert!(cut.starts_with("0123…[truncated]\n"), "{cut}");
    }
}
