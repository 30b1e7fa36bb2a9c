//! What the GitHub tools share beyond the API itself: picking the instance a call names,
//! and the compact issue every issue tool returns.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use shared::call::CallFailure;

use crate::config::ProviderKind;
use crate::providers::Instance;
use crate::providers::github::api::{RawIssue, repo_of};
use crate::tools::tool::ToolCall;

/// The instance a call names.
pub fn instance<'a>(
    cx: &'a ToolCall<'a>,
    name: Option<&str>,
) -> Result<&'a Arc<Instance>, CallFailure> {
    cx.providers.pick(ProviderKind::Github, name)
}

/// An issue, compactly.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct IssueSummary {
    /// `owner/repo`.
    pub repo: String,
    /// Issue number.
    pub number: u64,
    /// Title.
    pub title: String,
    /// `open` or `closed`.
    pub state: String,
    /// Author's login.
    pub author: String,
    /// Assignees' logins.
    pub assignees: Vec<String>,
    /// Label names.
    pub labels: Vec<String>,
    /// Number of comments.
    pub comments: u64,
    /// Last update, RFC 3339.
    pub updated_at: String,
    /// Web URL.
    pub url: String,
}

impl From<RawIssue> for IssueSummary {
    fn from(i: RawIssue) -> Self {
        Self {
            repo: repo_of(i.repository_url.as_deref()),
            number: i.number,
            title: i.title,
            state: i.state,
            author: i.user.map(|u| u.login).unwrap_or_default(),
            assignees: i.assignees.into_iter().map(|u| u.login).collect(),
            labels: i.labels.into_iter().map(|l| l.name).collect(),
            comments: i.comments,
            updated_at: i.updated_at,
            url: i.html_url,
        }
    }
}

/// One line of an issue for the text rendering.
pub fn issue_line(i: &IssueSummary) -> String {
    let mut line = format!("{}#{} [{}] {}", i.repo, i.number, i.state, i.title);
    if !i.labels.is_empty() {
        line.push_str(&format!(" ({})", i.labels.join(", ")));
    }
    if !i.assignees.is_empty() {
        line.push_str(&format!(" @{}", i.assignees.join(" @")));
    }
    line
}
