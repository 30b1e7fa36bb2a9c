//! The page every list tool of every provider returns, and its short text rendering.

use schemars::JsonSchema;
use serde::Serialize;

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
