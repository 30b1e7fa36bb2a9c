//! What the GitLab tools share beyond the API itself: picking the instance a call names,
//! the user lookups writes need, and the compact issue, merge request and note the tools
//! return.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use crate::config::ProviderKind;
use crate::providers::Instance;
use crate::providers::gitlab::api::{
    RawIssue, RawMergeRequest, RawNote, User, project_of, username, usernames,
};
use crate::providers::http::Request;
use crate::tools::tool::{ToolCall, clip};

/// The instance a call names.
pub fn instance<'a>(
    cx: &'a ToolCall<'a>,
    name: Option<&str>,
) -> Result<&'a Arc<Instance>, CallFailure> {
    cx.providers.pick(ProviderKind::Gitlab, name)
}

/// The calling user's username.
pub async fn me(cx: &ToolCall<'_>, inst: &Instance) -> Result<String, CallFailure> {
    Ok(cx.whoami::<User>(inst).await?.username)
}

/// Most users one call may name (assignees, reviewers): each costs a lookup.
const MAX_USERS: usize = 20;

/// The numeric ids GitLab's writes want for `usernames` (`/users?username=`). A name no
/// user has is the caller's mistake, said as such.
pub async fn user_ids(
    cx: &ToolCall<'_>,
    inst: &Instance,
    names: &[String],
) -> Result<Vec<u64>, CallFailure> {
    if names.len() > MAX_USERS {
        return Err(CallFailure::new(
            ErrorCode::InvalidArguments,
            format!("name at most {MAX_USERS} users"),
        ));
    }
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let name = name.trim().trim_start_matches('@');
        let req =
            Request::get("/users", "users".into()).query([("username", Some(name.to_owned()))]);
        let found: Vec<User> = cx.ok(inst, &req).await?.json()?;
        let user = found.into_iter().next().ok_or_else(|| {
            CallFailure::new(
                ErrorCode::InvalidArguments,
                format!("{} has no user named {name:?}", inst.display_name),
            )
        })?;
        ids.push(user.id);
    }
    Ok(ids)
}

/// An issue, compactly.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct IssueSummary {
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Issue number within the project (`iid`).
    pub iid: u64,
    /// Title.
    pub title: String,
    /// `opened` or `closed`.
    pub state: String,
    /// Author's username.
    pub author: String,
    /// Assignees' usernames.
    pub assignees: Vec<String>,
    /// Label names.
    pub labels: Vec<String>,
    /// Number of comments.
    pub comments: u64,
    /// Last update, ISO 8601.
    pub updated_at: String,
    /// Web URL (of single issues; lists leave it out, as `get` gives it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl IssueSummary {
    /// The summary as lists show it: without the web URL, which would be most of each
    /// item's tokens and which the agent rarely needs.
    pub fn listed(raw: RawIssue) -> Self {
        Self {
            url: None,
            ..Self::from(raw)
        }
    }
}

impl From<RawIssue> for IssueSummary {
    fn from(i: RawIssue) -> Self {
        Self {
            project: project_of(i.references.as_ref(), &i.web_url),
            iid: i.iid,
            title: i.title,
            state: i.state,
            author: username(i.author),
            assignees: usernames(i.assignees),
            labels: i.labels,
            comments: i.user_notes_count,
            updated_at: i.updated_at,
            url: Some(i.web_url),
        }
    }
}

/// One line of an issue for the text rendering.
pub fn issue_line(i: &IssueSummary) -> String {
    let mut line = format!("{}#{} [{}] {}", i.project, i.iid, i.state, i.title);
    if !i.labels.is_empty() {
        line.push_str(&format!(" ({})", i.labels.join(", ")));
    }
    if !i.assignees.is_empty() {
        line.push_str(&format!(" @{}", i.assignees.join(" @")));
    }
    line
}

/// A merge request, compactly.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MergeRequestSummary {
    /// Project path.
    pub project: String,
    /// Merge request number within the project (`iid`).
    pub iid: u64,
    /// Title.
    pub title: String,
    /// `opened`, `closed`, `merged` or `locked`.
    pub state: String,
    /// Whether it is a draft.
    pub draft: bool,
    /// Author's username.
    pub author: String,
    /// Source branch.
    pub source_branch: String,
    /// Target branch.
    pub target_branch: String,
    /// Label names.
    pub labels: Vec<String>,
    /// Assignees' usernames.
    pub assignees: Vec<String>,
    /// Reviewers' usernames.
    pub reviewers: Vec<String>,
    /// Whether it can be merged now: `mergeable`, `conflict`, `draft_status`,
    /// `ci_must_pass`, `not_approved`, `not_open`...
    pub merge_status: String,
    /// Last update, ISO 8601.
    pub updated_at: String,
    /// Web URL (of single merge requests; lists leave it out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl MergeRequestSummary {
    /// The summary as lists show it, without the web URL.
    pub fn listed(raw: &RawMergeRequest) -> Self {
        Self {
            url: None,
            ..Self::from(raw)
        }
    }
}

impl From<&RawMergeRequest> for MergeRequestSummary {
    fn from(m: &RawMergeRequest) -> Self {
        Self {
            project: project_of(m.references.as_ref(), &m.web_url),
            iid: m.iid,
            title: m.title.clone(),
            state: m.state.clone(),
            draft: m.draft,
            author: username(m.author.clone()),
            source_branch: m.source_branch.clone(),
            target_branch: m.target_branch.clone(),
            labels: m.labels.clone(),
            assignees: usernames(m.assignees.clone()),
            reviewers: usernames(m.reviewers.clone()),
            merge_status: m
                .detailed_merge_status
                .clone()
                .or_else(|| m.merge_status.clone())
                .unwrap_or_default(),
            updated_at: m.updated_at.clone(),
            url: Some(m.web_url.clone()),
        }
    }
}

/// One line of a merge request for the text rendering.
pub fn merge_request_line(m: &MergeRequestSummary) -> String {
    let mut line = format!(
        "{}!{} [{}{}] {} ({} → {})",
        m.project,
        m.iid,
        m.state,
        if m.draft { ", draft" } else { "" },
        m.title,
        m.source_branch,
        m.target_branch
    );
    if !m.labels.is_empty() {
        line.push_str(&format!(" ({})", m.labels.join(", ")));
    }
    line.push_str(&format!(" by @{}", m.author));
    line
}

/// Whether a text argument is blank (GitLab's own answer would be a less clear 400).
pub fn require(what: &str, value: &str) -> Result<(), CallFailure> {
    if value.trim().is_empty() {
        return Err(CallFailure::new(
            ErrorCode::InvalidArguments,
            format!("{what} is empty"),
        ));
    }
    Ok(())
}

/// A note, compactly.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Note {
    /// Author's username.
    pub author: String,
    /// When, ISO 8601.
    pub created_at: String,
    /// Markdown body (long ones truncated, marked `…[truncated]`).
    pub body: String,
    /// Present (true) on GitLab's own activity notes, shown only when asked for.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
}

impl RawNote {
    /// The compact note, its body clipped to `max` characters.
    pub fn compact(self, max: usize) -> Note {
        Note {
            author: username(self.author),
            created_at: self.created_at,
            body: clip(&self.body, max).0,
            system: self.system,
        }
    }
}

/// A posted comment.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Posted {
    /// The note's id.
    pub id: u64,
    /// Its web URL.
    pub url: String,
    /// When.
    pub created_at: String,
}

/// The requested names a write's result lacks: GitLab silently drops labels and
/// assignees a user may not set (below reporter), and the agent should know.
pub fn unapplied(requested: &[String], got: &[String]) -> Vec<String> {
    requested
        .iter()
        .filter(|r| {
            !got.iter()
                .any(|g| g.eq_ignore_ascii_case(r.trim_start_matches('@')))
        })
        .cloned()
        .collect()
}
