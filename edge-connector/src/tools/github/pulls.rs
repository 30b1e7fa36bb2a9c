//! Pull request tools: list a repository's pull requests, read one as a summary (state,
//! branches, mergeability, reviews, changed files, checks), and open one.

use std::collections::BTreeMap;

use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use super::common;
use super::issues::StateFilter;
use crate::providers::Instance;
use crate::providers::github::api::{self, Label, User};
use crate::providers::http::Request;
use crate::providers::page::{Page, page_query, render_lines};
use crate::tools::tool::{CREATE, Hints, READ, Rendered, Tool, ToolCall, clip};

/// One side of a pull request.
#[derive(Debug, Deserialize)]
pub(super) struct RawBranchRef {
    #[serde(rename = "ref")]
    name: String,
    sha: String,
}

/// The fields of a GitHub pull request the tools read.
#[derive(Debug, Deserialize)]
pub(super) struct RawPull {
    number: u64,
    title: String,
    state: String,
    #[serde(default)]
    draft: bool,
    user: Option<User>,
    head: RawBranchRef,
    base: RawBranchRef,
    #[serde(default)]
    labels: Vec<Label>,
    #[serde(default)]
    assignees: Vec<User>,
    #[serde(default)]
    requested_reviewers: Vec<User>,
    created_at: String,
    updated_at: String,
    merged_at: Option<String>,
    html_url: String,
    body: Option<String>,
    mergeable: Option<bool>,
    mergeable_state: Option<String>,
    #[serde(default)]
    comments: u64,
    #[serde(default)]
    review_comments: u64,
    #[serde(default)]
    commits: u64,
    #[serde(default)]
    additions: u64,
    #[serde(default)]
    deletions: u64,
    #[serde(default)]
    changed_files: u64,
}

/// A pull request, compactly.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PullSummary {
    /// Number.
    pub number: u64,
    /// Title.
    pub title: String,
    /// `open`, `closed` or `merged`.
    pub state: String,
    /// Whether it is a draft.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub draft: bool,
    /// Author's login.
    pub author: String,
    /// Head branch (the changes).
    pub head: String,
    /// Base branch (merged into).
    pub base: String,
    /// Label names.
    pub labels: Vec<String>,
    /// Logins asked to review who have not yet.
    pub requested_reviewers: Vec<String>,
    /// Last update, RFC 3339.
    pub updated_at: String,
    /// Web URL.
    pub url: String,
}

impl From<&RawPull> for PullSummary {
    fn from(p: &RawPull) -> Self {
        Self {
            number: p.number,
            title: p.title.clone(),
            state: if p.merged_at.is_some() {
                "merged".into()
            } else {
                p.state.clone()
            },
            draft: p.draft,
            author: p.user.as_ref().map(|u| u.login.clone()).unwrap_or_default(),
            head: p.head.name.clone(),
            base: p.base.name.clone(),
            labels: p.labels.iter().map(|l| l.name.clone()).collect(),
            requested_reviewers: p
                .requested_reviewers
                .iter()
                .map(|u| u.login.clone())
                .collect(),
            updated_at: p.updated_at.clone(),
            url: p.html_url.clone(),
        }
    }
}

/// One line of a pull request for the text rendering.
pub fn pull_line(p: &PullSummary) -> String {
    let mut line = format!(
        "#{} [{}{}] {} ({} → {}) by {}",
        p.number,
        p.state,
        if p.draft { ", draft" } else { "" },
        p.title,
        p.head,
        p.base,
        p.author
    );
    if !p.labels.is_empty() {
        line.push_str(&format!(" ({})", p.labels.join(", ")));
    }
    if !p.requested_reviewers.is_empty() {
        line.push_str(&format!(
            " review requested: @{}",
            p.requested_reviewers.join(" @")
        ));
    }
    line
}

/// Arguments of `github_list_pull_requests`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// `open` (default), `closed` (including merged) or `all`.
    pub state: Option<StateFilter>,
    /// Only pull requests into this base branch.
    pub base: Option<String>,
    /// Only pull requests from this head branch.
    pub head: Option<String>,
    /// Pull requests per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `github_list_pull_requests`.
pub struct ListPullRequests;

impl Tool for ListPullRequests {
    type Args = ListArgs;
    type Output = Page<PullSummary>;
    const NAME: &'static str = "github_list_pull_requests";
    const DESCRIPTION: &'static str = "List a repository's pull requests, most recently updated first, by state and base or head branch.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["owner", "repo"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: ListArgs,
    ) -> Result<Rendered<Page<PullSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let state = match a.state.unwrap_or(StateFilter::Open) {
            StateFilter::Open => "open",
            StateFilter::Closed => "closed",
            StateFilter::All => "all",
        };
        let req = Request::get(
            "/repos/{owner}/{repo}/pulls",
            format!("{}/pulls", api::repo(&a.owner, &a.repo)?),
        )
        .query([
            ("state", Some(state.to_owned())),
            ("base", a.base),
            // GitHub filters heads as `owner:branch`.
            ("head", a.head.map(|h| format!("{}:{h}", a.owner))),
            ("sort", Some("updated".into())),
            ("direction", Some("desc".into())),
        ])
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let out = Page {
            next_cursor: api::next_cursor(&resp),
            items: resp
                .json::<Vec<RawPull>>()?
                .iter()
                .map(PullSummary::from)
                .collect(),
        };
        let text = render_lines(&out, pull_line, "no matching pull requests");
        Ok(Rendered { output: out, text })
    }
}

/// A changed file, counted.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileChange {
    /// Path.
    pub path: String,
    /// `added`, `modified`, `removed`, `renamed`...
    pub status: String,
    /// Lines added.
    pub additions: u64,
    /// Lines deleted.
    pub deletions: u64,
}

/// What the pull request changes.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Changes {
    /// Commits.
    pub commits: u64,
    /// Files changed.
    pub files: u64,
    /// Lines added.
    pub additions: u64,
    /// Lines deleted.
    pub deletions: u64,
    /// The most changed files, most lines first.
    pub top_files: Vec<FileChange>,
    /// Changed files not in `top_files`.
    #[serde(skip_serializing_if = "is_zero")]
    pub other_files: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A reviewer's latest verdict.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReviewBy {
    /// Reviewer's login.
    pub author: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED` or `DISMISSED`.
    pub state: String,
}

/// Where reviewing stands.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReviewStatus {
    /// `approved`, `changes_requested`, `review_required` (reviewers asked, none
    /// decided) or `none`.
    pub decision: String,
    /// Each reviewer's latest review.
    pub reviews: Vec<ReviewBy>,
}

/// One check or commit status of the head commit.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Check {
    /// Check run or status context name.
    pub name: String,
    /// `success`, `failure`, `pending`, `skipped`, `neutral`, `cancelled`...
    pub state: String,
}

/// The head commit's checks and statuses.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Checks {
    /// Overall: `success`, `failure`, `pending` or `none`.
    pub state: String,
    /// Each check run and status.
    pub items: Vec<Check>,
}

/// A pull request summarised for review.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PullDetail {
    /// The pull request.
    #[serde(flatten)]
    pub pull: PullSummary,
    /// Head commit.
    pub head_sha: String,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Description (truncated past `max_body_chars`).
    pub body: String,
    /// Whether it can be merged (absent while GitHub computes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mergeable: Option<bool>,
    /// GitHub's merge state: `clean`, `unstable` (checks failing), `dirty` (conflicts),
    /// `blocked`, `behind`, `draft` or `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mergeable_state: Option<String>,
    /// Logins assigned.
    pub assignees: Vec<String>,
    /// Conversation and review comments.
    pub comments: u64,
    /// Reviews (absent when they could not be read: see `unread`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewStatus>,
    /// Changed files.
    pub changes: Changes,
    /// The head commit's checks and statuses (absent when neither could be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
    /// The parts of the summary that could not be read, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<Unread>,
}

/// A part of a pull request's summary that could not be read.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Unread {
    /// `files`, `reviews`, `check runs` or `commit statuses`.
    pub part: String,
    /// Why, e.g. "not visible with this app's permissions (Checks: read)".
    pub reason: String,
}

/// A side read of the summary: its value, or what to say instead when the user (or the
/// GitHub App acting for them) may not read it. Other failures (rate limit, expired
/// authorization, an unavailable server) fail the call: a retry can fix those.
fn part<T>(
    result: Result<T, CallFailure>,
    name: &str,
    permission: &str,
    unread: &mut Vec<Unread>,
) -> Result<Option<T>, CallFailure> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(f) if matches!(f.code, ErrorCode::Forbidden | ErrorCode::NotFound) => {
            let reason = if f.code == ErrorCode::Forbidden {
                format!("not visible with this app's permissions ({permission})")
            } else {
                "not found".to_owned()
            };
            unread.push(Unread {
                part: name.to_owned(),
                reason,
            });
            Ok(None)
        }
        Err(f) => Err(f),
    }
}

/// Arguments of `github_get_pull_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Pull request number.
    pub number: u64,
    /// How many of the most changed files to list (default 10, at most 100).
    pub max_files: Option<usize>,
    /// Longest description kept, in characters (default 2000).
    pub max_body_chars: Option<usize>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawFile {
    filename: String,
    status: String,
    #[serde(default)]
    additions: u64,
    #[serde(default)]
    deletions: u64,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawReview {
    user: Option<User>,
    state: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawCheckRun {
    name: String,
    status: String,
    conclusion: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawStatus {
    context: String,
    state: String,
}

/// A page of `GET /commits/{ref}/check-runs`.
#[derive(Debug, Deserialize)]
pub(super) struct RunsBody {
    check_runs: Vec<RawCheckRun>,
}

/// The combined status (`GET /commits/{ref}/status`).
#[derive(Debug, Deserialize)]
pub(super) struct StatusBody {
    statuses: Vec<RawStatus>,
}

/// The latest decisive review of each reviewer, and the decision they add up to.
fn review_status(reviews: Vec<RawReview>, requested: &[String]) -> ReviewStatus {
    // Reviews come oldest first; a comment does not undo an earlier verdict.
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    for r in reviews {
        let Some(author) = r.user.map(|u| u.login) else {
            continue;
        };
        if r.state == "PENDING" {
            continue;
        }
        let decisive = r.state != "COMMENTED";
        match latest.get(&author) {
            Some(prev) if !decisive && prev != "COMMENTED" => {}
            _ => {
                latest.insert(author, r.state);
            }
        }
    }
    let has = |s: &str| latest.values().any(|v| v == s);
    let decision = if has("CHANGES_REQUESTED") {
        "changes_requested"
    } else if has("APPROVED") {
        "approved"
    } else if !requested.is_empty() {
        "review_required"
    } else {
        "none"
    };
    ReviewStatus {
        decision: decision.into(),
        reviews: latest
            .into_iter()
            .map(|(author, state)| ReviewBy { author, state })
            .collect(),
    }
}

/// Check runs and statuses as one list and an overall state.
fn checks_of(runs: Vec<RawCheckRun>, statuses: Vec<RawStatus>) -> Checks {
    let mut items: Vec<Check> = runs
        .into_iter()
        .map(|r| Check {
            name: r.name,
            state: match (r.status.as_str(), r.conclusion) {
                ("completed", Some(c)) => c,
                _ => "pending".into(),
            },
        })
        .collect();
    items.extend(statuses.into_iter().map(|s| Check {
        name: s.context,
        state: match s.state.as_str() {
            "error" => "failure".into(),
            _ => s.state,
        },
    }));
    let failed = |s: &str| {
        matches!(
            s,
            "failure" | "timed_out" | "cancelled" | "action_required" | "startup_failure"
        )
    };
    let state = if items.is_empty() {
        "none"
    } else if items.iter().any(|c| failed(&c.state)) {
        "failure"
    } else if items.iter().any(|c| c.state == "pending") {
        "pending"
    } else {
        "success"
    };
    Checks {
        state: state.into(),
        items,
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    cx: &ToolCall<'_>,
    inst: &Instance,
    route: &'static str,
    path: String,
) -> Result<T, CallFailure> {
    let req = Request::get(route, path).query([("per_page", Some("100".to_owned()))]);
    cx.ok(inst, &req).await?.json()
}

/// `github_get_pull_request`.
pub struct GetPullRequest;

impl Tool for GetPullRequest {
    type Args = GetArgs;
    type Output = PullDetail;
    const NAME: &'static str = "github_get_pull_request";
    const DESCRIPTION: &'static str = "Summarise a pull request: state, author, branches, whether it can be merged, where reviews stand, the most changed files with line counts, and the head commit's checks.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: GetArgs,
    ) -> Result<Rendered<PullDetail>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let repo = api::repo(&a.owner, &a.repo)?;
        let base = format!("{repo}/pulls/{}", a.number);
        let req = Request::get("/repos/{owner}/{repo}/pulls/{pull_number}", base.clone());
        let raw: RawPull = cx.ok(inst, &req).await?.json()?;
        let head = api::seg(&raw.head.sha)?;
        // The four reads are independent: one round trip's wait instead of four, and
        // one refused (a GitHub App without Checks or Commit statuses read
        // permission) leaves the others standing.
        let (files, reviews, runs, status) = tokio::join!(
            get_json::<Vec<RawFile>>(
                cx,
                inst,
                "/repos/{owner}/{repo}/pulls/{pull_number}/files",
                format!("{base}/files"),
            ),
            get_json::<Vec<RawReview>>(
                cx,
                inst,
                "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
                format!("{base}/reviews"),
            ),
            get_json::<RunsBody>(
                cx,
                inst,
                "/repos/{owner}/{repo}/commits/{ref}/check-runs",
                format!("{repo}/commits/{head}/check-runs"),
            ),
            get_json::<StatusBody>(
                cx,
                inst,
                "/repos/{owner}/{repo}/commits/{ref}/status",
                format!("{repo}/commits/{head}/status"),
            ),
        );
        let mut unread = Vec::new();
        let mut files =
            part(files, "files", "Pull requests: read", &mut unread)?.unwrap_or_default();
        let reviews = part(reviews, "reviews", "Pull requests: read", &mut unread)?;
        let runs = part(runs, "check runs", "Checks: read", &mut unread)?;
        let status = part(
            status,
            "commit statuses",
            "Commit statuses: read",
            &mut unread,
        )?;
        let pull = PullSummary::from(&raw);
        let review = reviews.map(|r| review_status(r, &pull.requested_reviewers));
        let checks = match (runs, status) {
            (None, None) => None,
            (runs, status) => Some(checks_of(
                runs.map(|r| r.check_runs).unwrap_or_default(),
                status.map(|s| s.statuses).unwrap_or_default(),
            )),
        };
        files.sort_by_key(|f| std::cmp::Reverse(f.additions + f.deletions));
        let max_files = a.max_files.unwrap_or(10).min(100);
        let top_files: Vec<FileChange> = files
            .into_iter()
            .take(max_files)
            .map(|f| FileChange {
                path: f.filename,
                status: f.status,
                additions: f.additions,
                deletions: f.deletions,
            })
            .collect();
        let changes = Changes {
            commits: raw.commits,
            files: raw.changed_files,
            additions: raw.additions,
            deletions: raw.deletions,
            other_files: raw.changed_files.saturating_sub(top_files.len() as u64),
            top_files,
        };
        let (body, _) = clip(
            raw.body.as_deref().unwrap_or_default(),
            a.max_body_chars.unwrap_or(2000).min(100_000),
        );
        let mut text = format!(
            "{}/{}{}\nhead {} at {}; mergeable: {}",
            a.owner,
            a.repo,
            pull_line(&pull),
            pull.head,
            api::short(&raw.head.sha),
            match (raw.mergeable, raw.mergeable_state.as_deref()) {
                (Some(m), Some(s)) => format!("{m} ({s})"),
                (Some(m), None) => m.to_string(),
                (None, _) => "unknown".into(),
            },
        );
        if let Some(review) = &review {
            text.push_str(&format!("\nreview: {}", review.decision));
            for r in &review.reviews {
                text.push_str(&format!(", {} {}", r.author, r.state.to_lowercase()));
            }
        }
        if let Some(checks) = &checks {
            text.push_str(&format!(
                "\nchecks: {}{}",
                checks.state,
                checks
                    .items
                    .iter()
                    .map(|c| format!(", {} {}", c.name, c.state))
                    .collect::<String>()
            ));
        }
        for u in &unread {
            text.push_str(&format!("\n{}: {}", u.part, u.reason));
        }
        text.push_str(&format!(
            "\n{} commits, {} files, +{} -{}:",
            changes.commits, changes.files, changes.additions, changes.deletions
        ));
        for f in &changes.top_files {
            text.push_str(&format!(
                "\n  {} ({}) +{} -{}",
                f.path, f.status, f.additions, f.deletions
            ));
        }
        if changes.other_files > 0 {
            text.push_str(&format!("\n  … and {} more files", changes.other_files));
        }
        if !body.is_empty() {
            text.push_str(&format!("\n{body}"));
        }
        Ok(Rendered {
            output: PullDetail {
                head_sha: raw.head.sha.clone(),
                created_at: raw.created_at.clone(),
                body,
                mergeable: raw.mergeable,
                mergeable_state: raw.mergeable_state.clone(),
                assignees: raw.assignees.iter().map(|u| u.login.clone()).collect(),
                comments: raw.comments + raw.review_comments,
                review,
                changes,
                checks,
                unread,
                pull,
            },
            text,
        })
    }
}

/// Arguments of `github_create_pull_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Title.
    pub title: String,
    /// The branch with the changes.
    pub head: String,
    /// The branch to merge into (default: the repository's default branch).
    pub base: Option<String>,
    /// Markdown description.
    pub body: Option<String>,
    /// Open it as a draft.
    #[serde(default)]
    pub draft: bool,
}

/// A repository, for its default branch.
#[derive(Debug, Deserialize)]
pub(super) struct RawDefaultBranch {
    default_branch: String,
}

/// `github_create_pull_request`.
pub struct CreatePullRequest;

impl Tool for CreatePullRequest {
    type Args = CreateArgs;
    type Output = PullSummary;
    const NAME: &'static str = "github_create_pull_request";
    const DESCRIPTION: &'static str = "Open a pull request from a branch into another (default: the repository's default branch).";
    const HINTS: Hints = CREATE;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: CreateArgs,
    ) -> Result<Rendered<PullSummary>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        if a.title.trim().is_empty() {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "title is empty",
            ));
        }
        let repo = api::repo(&a.owner, &a.repo)?;
        let base = match a.base {
            Some(b) => b,
            None => {
                let req = Request::get("/repos/{owner}/{repo}", repo.clone());
                cx.ok(inst, &req)
                    .await?
                    .json::<RawDefaultBranch>()?
                    .default_branch
            }
        };
        // A repeat would open a second pull request (or fail as a duplicate).
        let req = Request::write(
            Method::POST,
            "/repos/{owner}/{repo}/pulls",
            format!("{repo}/pulls"),
            api::without_nulls(
                serde_json::json!({"title": a.title, "head": a.head, "base": base, "body": a.body, "draft": a.draft}),
            ),
            false,
        );
        let raw: RawPull = cx.ok(inst, &req).await?.json()?;
        let pull = PullSummary::from(&raw);
        let text = format!(
            "opened {}/{}{}: {}",
            a.owner,
            a.repo,
            pull_line(&pull),
            pull.url
        );
        Ok(Rendered { output: pull, text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(who: &str, state: &str) -> RawReview {
        RawReview {
            user: Some(User { login: who.into() }),
            state: state.into(),
        }
    }

    #[test]
    fn the_latest_verdict_of_each_reviewer_decides() {
        let s = review_status(
            vec![
                review("bob", "CHANGES_REQUESTED"),
                review("bob", "COMMENTED"),
                review("carol", "APPROVED"),
            ],
            &[],
        );
        assert_eq!(s.decision, "changes_requested");
        assert_eq!(s.reviews[0].state, "CHANGES_REQUESTED");
        let s = review_status(
            vec![
                review("bob", "CHANGES_REQUESTED"),
                review("bob", "APPROVED"),
            ],
            &[],
        );
        assert_eq!(s.decision, "approved");
        assert_eq!(
            review_status(vec![], &["bob".into()]).decision,
            "review_required"
        );
        assert_eq!(
            review_status(vec![review("bob", "COMMENTED")], &[]).decision,
            "none"
        );
    }

    #[test]
    fn checks_add_up_to_the_worst_state() {
        let run = |status: &str, conclusion: Option<&str>| RawCheckRun {
            name: "t".into(),
            status: status.into(),
            conclusion: conclusion.map(str::to_owned),
        };
        let status = |state: &str| RawStatus {
            context: "s".into(),
            state: state.into(),
        };
        assert_eq!(checks_of(vec![], vec![]).state, "none");
        assert_eq!(
            checks_of(
                vec![run("completed", Some("success"))],
                vec![status("pending")]
            )
            .state,
            "pending"
        );
        assert_eq!(
            checks_of(vec![run("in_progress", None)], vec![status("error")]).state,
            "failure"
        );
        assert_eq!(
            checks_of(
                vec![run("completed", Some("skipped"))],
                vec![status("success")]
            )
            .state,
            "success"
        );
    }
}

/// What a confirmation shows of a pull request, read as the user just before asking.
#[derive(Debug)]
pub struct PullFacts {
    /// Title, as its author wrote it (quote it with [`crate::tools::tool::quoted`]).
    pub title: String,
    /// Head branch (the changes).
    pub head: String,
    /// Base branch (merged into).
    pub base: String,
    /// The head commit.
    pub head_sha: String,
    /// `open`, `closed` or `merged`.
    pub state: String,
}

/// Reads `owner/repo#number` for a confirmation.
pub async fn facts(
    cx: &ToolCall<'_>,
    inst: &Instance,
    owner: &str,
    repo: &str,
    number: u64,
) -> Result<PullFacts, CallFailure> {
    let req = Request::get(
        "/repos/{owner}/{repo}/pulls/{pull_number}",
        format!("{}/pulls/{number}", api::repo(owner, repo)?),
    );
    let raw: RawPull = cx.ok(inst, &req).await?.json()?;
    let summary = PullSummary::from(&raw);
    Ok(PullFacts {
        title: raw.title,
        head: raw.head.name,
        base: raw.base.name,
        head_sha: raw.head.sha,
        state: summary.state,
    })
}

impl PullFacts {
    /// `owner/repo#n “title” (head → base), head commit sha` for a confirmation.
    pub fn describe(&self, owner: &str, repo: &str, number: u64) -> String {
        let state = if self.state == "open" {
            String::new()
        } else {
            format!(" [{}]", self.state)
        };
        format!(
            "pull request {owner}/{repo}#{number} {}{state} from branch {} into {}, head commit {}",
            crate::tools::tool::quoted(&self.title),
            crate::tools::tool::quoted(&self.head),
            crate::tools::tool::quoted(&self.base),
            self.head_sha
        )
    }
}
