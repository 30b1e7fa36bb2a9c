//! Issue tools: list a repository's issues, search issues across repositories (assigned to
//! me, mentioning me, by label), read one with its comments, open one, change its state,
//! labels or assignees, and comment on it.

use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use super::common::{self, IssueSummary, issue_line};
use crate::providers::github::api::{self, RawIssue};
use crate::providers::http::Request;
use crate::providers::page::{Page, page_query, render_lines};
use crate::tools::tool::{CREATE, Hints, READ, Rendered, Tool, ToolCall, UPDATE, clip};

/// Open or closed.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    /// Open only (the default).
    Open,
    /// Closed only.
    Closed,
    /// Both.
    All,
}

impl StateFilter {
    fn as_str(self) -> &'static str {
        match self {
            StateFilter::Open => "open",
            StateFilter::Closed => "closed",
            StateFilter::All => "all",
        }
    }
}

/// Arguments of `github_list_issues`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner (user or organisation).
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// `open` (default), `closed` or `all`.
    pub state: Option<StateFilter>,
    /// Only issues assigned to this login; `me` for the calling user, `none` for
    /// unassigned.
    pub assignee: Option<String>,
    /// Only issues with all of these labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Only issues updated at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Issues per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `github_list_issues`.
pub struct ListIssues;

impl Tool for ListIssues {
    type Args = ListArgs;
    type Output = Page<IssueSummary>;
    const NAME: &'static str = "github_list_issues";
    const DESCRIPTION: &'static str = "List a repository's issues (not pull requests), newest activity first, filtered by state, assignee (\"me\" for yourself), labels and last update.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["owner", "repo"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: ListArgs,
    ) -> Result<Rendered<Page<IssueSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let assignee = match a.assignee.as_deref() {
            Some("me") => Some(me(cx, inst).await?),
            other => other.map(str::to_owned),
        };
        let req = Request::get(
            "/repos/{owner}/{repo}/issues",
            format!("{}/issues", api::repo(&a.owner, &a.repo)?),
        )
        .query([
            (
                "state",
                Some(a.state.unwrap_or(StateFilter::Open).as_str().to_owned()),
            ),
            ("assignee", assignee),
            ("labels", (!a.labels.is_empty()).then(|| a.labels.join(","))),
            ("since", a.since),
            ("sort", Some("updated".into())),
            ("direction", Some("desc".into())),
        ])
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let next_cursor = api::next_cursor(&resp);
        let raw: Vec<RawIssue> = resp.json()?;
        // GitHub lists pull requests among issues; this tool answers about issues.
        let items: Vec<IssueSummary> = raw
            .into_iter()
            .filter(|i| i.pull_request.is_none())
            .map(IssueSummary::from)
            .collect();
        let output = Page { items, next_cursor };
        let text = render_lines(&output, issue_line, "no matching issues");
        Ok(Rendered { output, text })
    }
}

/// The calling user's login at `inst`.
pub async fn me(
    cx: &ToolCall<'_>,
    inst: &crate::providers::Instance,
) -> Result<String, CallFailure> {
    Ok(cx.whoami::<RawLogin>(inst).await?.login)
}

/// Which relation to the calling user an issue search asks about.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Involvement {
    /// Assigned to me.
    AssignedToMe,
    /// Opened by me.
    CreatedByMe,
    /// Mentioning me.
    MentioningMe,
}

/// Arguments of `github_search_issues`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Words to look for in titles and bodies.
    pub text: Option<String>,
    /// How the issues relate to the calling user.
    pub involvement: Option<Involvement>,
    /// Only in this organisation or user's repositories.
    pub org: Option<String>,
    /// Only with these labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// `open` (default), `closed` or `all`.
    pub state: Option<StateFilter>,
    /// Pull requests instead of issues.
    #[serde(default)]
    pub pull_requests: bool,
    /// Results per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `github_search_issues`.
pub struct SearchIssues;

fn quoted(s: &str) -> String {
    if s.contains(' ') {
        format!("\"{}\"", s.replace('"', ""))
    } else {
        s.to_owned()
    }
}

impl Tool for SearchIssues {
    type Args = SearchArgs;
    type Output = Page<IssueSummary>;
    const NAME: &'static str = "github_search_issues";
    const DESCRIPTION: &'static str = "Find issues (or pull requests) across repositories: assigned to me, opened by me or mentioning me, by organisation, labels, state and words.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &[];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: SearchArgs,
    ) -> Result<Rendered<Page<IssueSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let mut q = vec![if a.pull_requests { "is:pr" } else { "is:issue" }.to_owned()];
        match a.state.unwrap_or(StateFilter::Open) {
            StateFilter::Open => q.push("is:open".into()),
            StateFilter::Closed => q.push("is:closed".into()),
            StateFilter::All => {}
        }
        if let Some(inv) = a.involvement {
            let login = me(cx, inst).await?;
            q.push(match inv {
                Involvement::AssignedToMe => format!("assignee:{login}"),
                Involvement::CreatedByMe => format!("author:{login}"),
                Involvement::MentioningMe => format!("mentions:{login}"),
            });
        }
        if let Some(org) = &a.org {
            q.push(format!("org:{}", quoted(org)));
        }
        q.extend(a.labels.iter().map(|l| format!("label:{}", quoted(l))));
        if let Some(t) = &a.text {
            q.push(t.clone());
        }
        if a.involvement.is_none() && a.org.is_none() && a.text.is_none() && a.labels.is_empty() {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "say what to look for: involvement, org, labels or text",
            ));
        }
        let req = Request::get("/search/issues", "search/issues".into())
            .query([
                ("q", Some(q.join(" "))),
                ("sort", Some("updated".into())),
                ("order", Some("desc".into())),
            ])
            .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let next_cursor = api::next_cursor(&resp);
        let items: Vec<IssueSummary> = resp
            .json::<FoundIssues>()?
            .items
            .into_iter()
            .map(IssueSummary::from)
            .collect();
        let output = Page { items, next_cursor };
        let text = render_lines(&output, issue_line, "nothing found");
        Ok(Rendered { output, text })
    }
}

/// A comment.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Comment {
    /// Author's login.
    pub author: String,
    /// When, RFC 3339.
    pub created_at: String,
    /// Markdown body (long ones are truncated, marked `…[truncated]`).
    pub body: String,
}

/// The caller (`GET /user`), by login.
#[derive(Debug, Deserialize)]
pub(super) struct RawLogin {
    login: String,
}

/// A page of `GET /search/issues`.
#[derive(Debug, Deserialize)]
pub(super) struct FoundIssues {
    items: Vec<RawIssue>,
}

/// A comment just created.
#[derive(Debug, Deserialize)]
pub(super) struct RawNewComment {
    html_url: String,
    created_at: String,
}

#[derive(Deserialize)]
pub(super) struct RawComment {
    user: Option<api::User>,
    created_at: String,
    body: Option<String>,
}

/// An issue with its comments.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IssueDetail {
    /// The issue.
    #[serde(flatten)]
    pub issue: IssueSummary,
    /// Its body (truncated past `max_body_chars`).
    pub body: String,
    /// Created, RFC 3339.
    pub created_at: String,
    /// A page of its comments, oldest first.
    pub comment_items: Vec<Comment>,
    /// Pass as `cursor` for the next page of comments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Arguments of `github_get_issue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Issue number.
    pub number: u64,
    /// Comments per page (default 20, at most 100; 0 for none).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page of comments.
    pub cursor: Option<String>,
    /// Longest body or comment kept, in characters (default 2000).
    pub max_body_chars: Option<usize>,
}

/// `github_get_issue`.
pub struct GetIssue;

impl Tool for GetIssue {
    type Args = GetArgs;
    type Output = IssueDetail;
    const NAME: &'static str = "github_get_issue";
    const DESCRIPTION: &'static str =
        "Read one issue: its state, labels, assignees and body, with a page of its comments.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: GetArgs,
    ) -> Result<Rendered<IssueDetail>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let base = format!("{}/issues/{}", api::repo(&a.owner, &a.repo)?, a.number);
        let resp = cx
            .ok(
                inst,
                &Request::get("/repos/{owner}/{repo}/issues/{issue_number}", base.clone()),
            )
            .await?;
        let raw: RawIssue = resp.json()?;
        let max = a.max_body_chars.unwrap_or(2000).min(100_000);
        let (body, _) = clip(raw.body.as_deref().unwrap_or_default(), max);
        let created_at = raw.created_at.clone();
        let issue = IssueSummary::from(raw);
        let (comment_items, next_cursor) = if a.limit == Some(0) || issue.comments == 0 {
            (Vec::new(), None)
        } else {
            let req = Request::get(
                "/repos/{owner}/{repo}/issues/{issue_number}/comments",
                format!("{base}/comments"),
            )
            .query(page_query(a.limit, a.cursor.as_deref())?);
            let resp = cx.ok(inst, &req).await?;
            let next = api::next_cursor(&resp);
            let comments = resp
                .json::<Vec<RawComment>>()?
                .into_iter()
                .map(|c| Comment {
                    author: c.user.map(|u| u.login).unwrap_or_default(),
                    created_at: c.created_at,
                    body: clip(c.body.as_deref().unwrap_or_default(), max).0,
                })
                .collect();
            (comments, next)
        };
        let mut text = format!("{}\n{}", issue_line(&issue), body);
        for c in &comment_items {
            text.push_str(&format!(
                "\n--- {} at {}:\n{}",
                c.author, c.created_at, c.body
            ));
        }
        if next_cursor.is_some() {
            text.push_str("\n(more comments: pass next_cursor)");
        }
        Ok(Rendered {
            output: IssueDetail {
                issue,
                body,
                created_at,
                comment_items,
                next_cursor,
            },
            text,
        })
    }
}

/// Arguments of `github_create_issue`.
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
    /// Markdown body.
    pub body: Option<String>,
    /// Labels to set (needs triage access; ignored by GitHub otherwise).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Logins to assign.
    #[serde(default)]
    pub assignees: Vec<String>,
}

/// `github_create_issue`.
pub struct CreateIssue;

impl Tool for CreateIssue {
    type Args = CreateArgs;
    type Output = IssueSummary;
    const NAME: &'static str = "github_create_issue";
    const DESCRIPTION: &'static str = "Open a new issue in a repository.";
    const HINTS: Hints = CREATE;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: CreateArgs,
    ) -> Result<Rendered<IssueSummary>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        if a.title.trim().is_empty() {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "title is empty",
            ));
        }
        let req = Request::write(
            Method::POST,
            "/repos/{owner}/{repo}/issues",
            format!("{}/issues", api::repo(&a.owner, &a.repo)?),
            api::without_nulls(
                serde_json::json!({"title": a.title, "body": a.body, "labels": a.labels, "assignees": a.assignees}),
            ),
            false,
        );
        let issue = IssueSummary::from(cx.ok(inst, &req).await?.json::<RawIssue>()?);
        let text = format!("opened {}", issue_line(&issue));
        Ok(Rendered {
            output: issue,
            text,
        })
    }
}

/// Why an issue was closed.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Done.
    Completed,
    /// Won't be done.
    NotPlanned,
}

/// Arguments of `github_update_issue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Issue number.
    pub number: u64,
    /// `open` or `closed`.
    pub state: Option<OpenClosed>,
    /// With `state: closed`: why.
    pub close_reason: Option<CloseReason>,
    /// New title.
    pub title: Option<String>,
    /// Replace the labels with these.
    pub labels: Option<Vec<String>>,
    /// Replace the assignees with these logins.
    pub assignees: Option<Vec<String>>,
}

/// Open or closed.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OpenClosed {
    /// Open.
    Open,
    /// Closed.
    Closed,
}

/// `github_update_issue`.
pub struct UpdateIssue;

impl Tool for UpdateIssue {
    type Args = UpdateArgs;
    type Output = IssueSummary;
    const NAME: &'static str = "github_update_issue";
    const DESCRIPTION: &'static str =
        "Change an issue: close or reopen it, retitle it, set its labels or assignees.";
    const HINTS: Hints = UPDATE;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: UpdateArgs,
    ) -> Result<Rendered<IssueSummary>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let mut body = serde_json::Map::new();
        if let Some(s) = a.state {
            body.insert(
                "state".into(),
                serde_json::json!(match s {
                    OpenClosed::Open => "open",
                    OpenClosed::Closed => "closed",
                }),
            );
        }
        if let Some(r) = a.close_reason {
            body.insert(
                "state_reason".into(),
                serde_json::json!(match r {
                    CloseReason::Completed => "completed",
                    CloseReason::NotPlanned => "not_planned",
                }),
            );
        }
        if let Some(t) = a.title {
            body.insert("title".into(), serde_json::json!(t));
        }
        if let Some(l) = a.labels {
            body.insert("labels".into(), serde_json::json!(l));
        }
        if let Some(s) = a.assignees {
            body.insert("assignees".into(), serde_json::json!(s));
        }
        if body.is_empty() {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "nothing to change: give state, title, labels or assignees",
            ));
        }
        // Setting fields to given values: repeating it changes nothing more.
        let req = Request::write(
            Method::PATCH,
            "/repos/{owner}/{repo}/issues/{issue_number}",
            format!("{}/issues/{}", api::repo(&a.owner, &a.repo)?, a.number),
            serde_json::Value::Object(body),
            true,
        );
        let issue = IssueSummary::from(cx.ok(inst, &req).await?.json::<RawIssue>()?);
        let text = format!("updated {}", issue_line(&issue));
        Ok(Rendered {
            output: issue,
            text,
        })
    }
}

/// Arguments of `github_comment_on_issue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Issue (or pull request) number.
    pub number: u64,
    /// Markdown body.
    pub body: String,
}

/// A posted comment.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Posted {
    /// Its web URL.
    pub url: String,
    /// When.
    pub created_at: String,
}

/// `github_comment_on_issue`.
pub struct CommentOnIssue;

impl Tool for CommentOnIssue {
    type Args = CommentArgs;
    type Output = Posted;
    const NAME: &'static str = "github_comment_on_issue";
    const DESCRIPTION: &'static str = "Add a comment to an issue or pull request.";
    const HINTS: Hints = CREATE;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: CommentArgs,
    ) -> Result<Rendered<Posted>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        if a.body.trim().is_empty() {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "body is empty",
            ));
        }
        let req = Request::write(
            Method::POST,
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            format!(
                "{}/issues/{}/comments",
                api::repo(&a.owner, &a.repo)?,
                a.number
            ),
            serde_json::json!({"body": a.body}),
            false,
        );
        let c: RawNewComment = cx.ok(inst, &req).await?.json()?;
        let text = format!(
            "commented on {}/{}#{}: {}",
            a.owner, a.repo, a.number, c.html_url
        );
        Ok(Rendered {
            output: Posted {
                url: c.html_url,
                created_at: c.created_at,
            },
            text,
        })
    }
}
