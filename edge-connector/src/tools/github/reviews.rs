//! Finishing a pull request: review it (approve, request changes, or comment, with line
//! comments) and merge it.

use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use super::common;
use super::pulls::facts;
use crate::providers::github::api;
use crate::providers::http::{self, Request};
use crate::tools::tool::{CREATE, DESTRUCTIVE, Hints, Rendered, Tool, ToolCall, effect, stale};
use reqwest::StatusCode;
use shared::call::PreviewOutcome;

/// A note for the user when the agent named another commit than the head.
fn other_commit(named: Option<&str>, head: &str) -> String {
    match named {
        Some(n) if n != head => format!(" (the agent named commit {n}, which is not the head)"),
        _ => String::new(),
    }
}

/// A review's verdict.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReviewEvent {
    /// Approve the changes.
    Approve,
    /// Ask for changes before merging (needs a body or line comments).
    RequestChanges,
    /// Comment without a verdict (needs a body or line comments).
    Comment,
}

impl ReviewEvent {
    fn as_str(self) -> &'static str {
        match self {
            ReviewEvent::Approve => "APPROVE",
            ReviewEvent::RequestChanges => "REQUEST_CHANGES",
            ReviewEvent::Comment => "COMMENT",
        }
    }
}

/// Which version of a line a comment is on.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    /// The new version (added or unchanged lines; the default).
    Right,
    /// The old version (deleted lines).
    Left,
}

/// A comment on one line of the diff.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineComment {
    /// The file's path.
    pub path: String,
    /// The line number in the file (on `side`).
    pub line: u64,
    /// Markdown body.
    pub body: String,
    /// `RIGHT` (new version, default) or `LEFT` (old version).
    pub side: Option<Side>,
}

/// Arguments of `github_review_pull_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Pull request number.
    pub number: u64,
    /// `APPROVE`, `REQUEST_CHANGES` or `COMMENT`.
    pub event: ReviewEvent,
    /// The review's Markdown body.
    pub body: Option<String>,
    /// Comments on lines of the diff.
    #[serde(default)]
    pub comments: Vec<LineComment>,
    /// The commit reviewed (default: the head); a review of an older commit says so.
    pub commit_sha: Option<String>,
}

/// A submitted review.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Review {
    /// Its id.
    pub id: u64,
    /// `APPROVED`, `CHANGES_REQUESTED` or `COMMENTED`.
    pub state: String,
    /// Line comments posted with it.
    pub comments: usize,
    /// The commit it reviews.
    pub commit_sha: String,
    /// Web URL.
    pub url: String,
}

/// A review just posted.
#[derive(Debug, Deserialize)]
pub(super) struct RawReviewResult {
    id: u64,
    state: String,
    commit_id: Option<String>,
    html_url: String,
}

/// `github_review_pull_request`.
pub struct ReviewPullRequest;

impl Tool for ReviewPullRequest {
    type Args = ReviewArgs;
    type Output = Review;
    const NAME: &'static str = "github_review_pull_request";
    const DESCRIPTION: &'static str = "Review a pull request: approve it, request changes or comment, with optional comments on lines of the diff.";
    const HINTS: Hints = CREATE;
    const TARGET: &'static [&'static str] = &["owner", "repo"];
    // An approval lets a pull request merge where a required review gates it: the user
    // confirms it like a merge.
    const CONFIRM_WHEN: &'static [(&'static str, &'static str)] = &[("event", "\"APPROVE\"")];

    async fn preview(&self, cx: &ToolCall<'_>, a: ReviewArgs) -> PreviewOutcome {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let pull = facts(cx, inst, &a.owner, &a.repo, a.number).await?;
        let verb = match a.event {
            ReviewEvent::Approve => "approve",
            ReviewEvent::RequestChanges => "request changes on",
            ReviewEvent::Comment => "comment on",
        };
        let text = format!(
            "{verb} {}{}",
            pull.describe(&a.owner, &a.repo, a.number),
            other_commit(a.commit_sha.as_deref(), &pull.head_sha)
        );
        Ok(effect(text, [("head_sha", pull.head_sha.as_str())]))
    }

    async fn run(&self, cx: &ToolCall<'_>, a: ReviewArgs) -> Result<Rendered<Review>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let approved = cx.approved_head(a.commit_sha.as_deref())?;
        if let Some(head) = approved {
            // GitHub takes a review of an older commit without complaint: check the
            // head is still the one the user approved, then review exactly that commit.
            let now = facts(cx, inst, &a.owner, &a.repo, a.number).await?;
            if now.head_sha != head {
                return Err(stale(&format!(
                    "pull request {}/{}#{} (its head commit is now {})",
                    a.owner, a.repo, a.number, now.head_sha
                )));
            }
        }
        let commit_sha = approved.map(str::to_owned).or(a.commit_sha.clone());
        let body = a.body.filter(|b| !b.trim().is_empty());
        if !matches!(a.event, ReviewEvent::Approve) && body.is_none() && a.comments.is_empty() {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "requesting changes or commenting needs a body or line comments",
            ));
        }
        let comments: Vec<serde_json::Value> = a
            .comments
            .iter()
            .map(|c| {
                serde_json::json!({
                    "path": c.path,
                    "line": c.line,
                    "side": match c.side.unwrap_or(Side::Right) {
                        Side::Right => "RIGHT",
                        Side::Left => "LEFT",
                    },
                    "body": c.body,
                })
            })
            .collect();
        let mut payload = serde_json::json!({"event": a.event.as_str(), "comments": comments});
        if let Some(o) = payload.as_object_mut() {
            if let Some(b) = &body {
                o.insert("body".into(), serde_json::json!(b));
            }
            if let Some(c) = &commit_sha {
                o.insert("commit_id".into(), serde_json::json!(c));
            }
        }
        // A repeat would post the review twice.
        let req = Request::write(
            Method::POST,
            "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
            format!(
                "{}/pulls/{}/reviews",
                api::repo(&a.owner, &a.repo)?,
                a.number
            ),
            payload,
            false,
        );
        let r: RawReviewResult = cx.ok(inst, &req).await?.json()?;
        let text = format!(
            "reviewed {}/{}#{}: {}{}; {}",
            a.owner,
            a.repo,
            a.number,
            r.state.to_lowercase(),
            match a.comments.len() {
                0 => String::new(),
                n => format!(" with {n} line comment(s)"),
            },
            r.html_url
        );
        Ok(Rendered {
            output: Review {
                id: r.id,
                state: r.state,
                comments: a.comments.len(),
                commit_sha: r.commit_id.unwrap_or_default(),
                url: r.html_url,
            },
            text,
        })
    }
}

/// How the changes land on the base branch.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MergeMethod {
    /// A merge commit (the default).
    Merge,
    /// All commits squashed into one.
    Squash,
    /// The commits replayed onto the base.
    Rebase,
}

impl MergeMethod {
    fn as_str(self) -> &'static str {
        match self {
            MergeMethod::Merge => "merge",
            MergeMethod::Squash => "squash",
            MergeMethod::Rebase => "rebase",
        }
    }
}

/// Arguments of `github_merge_pull_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Pull request number.
    pub number: u64,
    /// `merge` (default), `squash` or `rebase`.
    pub method: Option<MergeMethod>,
    /// Merge only if the head is still this commit (from github_get_pull_request's
    /// head_sha), so that nothing pushed since gets merged unseen.
    pub expected_head_sha: Option<String>,
    /// Title of the merge or squash commit.
    pub commit_title: Option<String>,
    /// Message of the merge or squash commit.
    pub commit_message: Option<String>,
}

/// A merge done.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Merged {
    /// Whether it merged.
    pub merged: bool,
    /// The commit made on the base branch.
    pub sha: String,
    /// GitHub's message.
    pub message: String,
}

/// The answer to a merge.
#[derive(Debug, Deserialize)]
pub(super) struct RawMergeResult {
    sha: String,
    merged: bool,
    message: String,
}

/// `github_merge_pull_request`.
pub struct MergePullRequest;

impl Tool for MergePullRequest {
    type Args = MergeArgs;
    type Output = Merged;
    const NAME: &'static str = "github_merge_pull_request";
    const DESCRIPTION: &'static str = "Merge a pull request into its base branch (merge commit, squash or rebase), optionally only if its head is still the commit you reviewed.";
    const HINTS: Hints = DESTRUCTIVE;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn preview(&self, cx: &ToolCall<'_>, a: MergeArgs) -> PreviewOutcome {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let pull = facts(cx, inst, &a.owner, &a.repo, a.number).await?;
        let method = a.method.unwrap_or(MergeMethod::Merge);
        let text = format!(
            "merge {}, merge method {}{}",
            pull.describe(&a.owner, &a.repo, a.number),
            method.as_str(),
            other_commit(a.expected_head_sha.as_deref(), &pull.head_sha)
        );
        Ok(effect(
            text,
            [
                ("head_sha", pull.head_sha.as_str()),
                ("merge_method", method.as_str()),
            ],
        ))
    }

    async fn run(&self, cx: &ToolCall<'_>, a: MergeArgs) -> Result<Rendered<Merged>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let method = a.method.unwrap_or(MergeMethod::Merge);
        if cx
            .bound("merge_method")
            .is_some_and(|m| m != method.as_str())
        {
            return Err(stale("the merge method"));
        }
        // GitHub merges only if the head is still this commit (409 otherwise).
        let approved = cx.approved_head(a.expected_head_sha.as_deref())?;
        let sha = approved.map(str::to_owned).or(a.expected_head_sha.clone());
        let mut payload = serde_json::json!({"merge_method": method.as_str()});
        if let Some(o) = payload.as_object_mut() {
            for (k, v) in [
                ("sha", &sha),
                ("commit_title", &a.commit_title),
                ("commit_message", &a.commit_message),
            ] {
                if let Some(v) = v {
                    o.insert(k.into(), serde_json::json!(v));
                }
            }
        }
        // Never repeated blindly: after a lost answer the pull request may be merged.
        let req = Request::write(
            Method::PUT,
            "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
            format!("{}/pulls/{}/merge", api::repo(&a.owner, &a.repo)?, a.number),
            payload,
            false,
        );
        let resp = cx.send(inst, &req).await?;
        if resp.status == StatusCode::CONFLICT && approved.is_some() {
            return Err(stale(&format!(
                "pull request {}/{}#{} (its head commit moved)",
                a.owner, a.repo, a.number
            )));
        }
        if !resp.status.is_success() {
            return Err(http::failure(&inst.config.name, &resp));
        }
        let r: RawMergeResult = resp.json()?;
        let text = format!(
            "{} {}/{}#{} ({}) as {}",
            if r.merged { "merged" } else { "did not merge" },
            a.owner,
            a.repo,
            a.number,
            method.as_str(),
            api::short(&r.sha)
        );
        Ok(Rendered {
            output: Merged {
                merged: r.merged,
                sha: r.sha,
                message: r.message,
            },
            text,
        })
    }
}
