//! The page every list tool of every provider returns, its short text rendering, and the
//! page a tool's `limit` and `cursor` ask for (GitHub and GitLab page alike: `per_page`,
//! `page`).

use schemars::JsonSchema;
use serde::Serialize;
use shared::call::CallFailure;
use shared::wire::ErrorCode;

/// Default page size of the tools (small: answers, not dumps).
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page GitHub and GitLab serve.
pub const MAX_LIMIT: u32 = 100;

/// `per_page` and `page` from a tool's `limit` and `cursor`.
pub fn page_query(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<[(&'static str, Option<String>); 2], CallFailure> {
    let per_page = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    Ok([
        ("per_page", Some(per_page.to_string())),
        ("page", Some(page_number(cursor)?.to_string())),
    ])
}

/// The page a cursor names (1 without one). A cursor is only ever a page number this
/// connector handed out, never a URL.
pub fn page_number(cursor: Option<&str>) -> Result<u32, CallFailure> {
    match cursor {
        None => Ok(1),
        Some(c) => c
            .parse::<u32>()
            .ok()
            .filter(|p| (1..=10_000).contains(p))
            .ok_or_else(|| {
                CallFailure::new(
                    ErrorCode::InvalidArguments,
                    "cursor must be a next_cursor value returned by this tool",
                )
            }),
    }
}

/// A page of a list tool's items, in the order the tool's description states.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Renders a page: one line per item, a note when there is more, `empty` when there is
/// nothing.
pub fn render_lines<T>(page: &Page<T>, line: impl Fn(&T) -> String, empty: &str) -> String {
    if page.items.is_empty() {
        return empty.to_owned();
    }
    let mut text: Vec<String> = page.items.iter().map(line).collect();
    if page.next_cursor.is_some() {
        text.push("(more: pass next_cursor)".into());
    }
    text.join("\n")
}
