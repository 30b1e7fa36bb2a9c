//! Issue tools: list a project's issues, search issues across projects (assigned to me,
//! opened by me), read one with a page of its notes, open one, change its state, labels
//! or assignees, and comment on it.

use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use super::common::{self, IssueSummary, Note, Posted, issue_line};
use crate::providers::gitlab::api::{self, RawIssue, RawNote};
use crate::providers::http::Request;
use crate::providers::page::{Page, page_query, render_lines};
use crate::tools::tool::{CREATE, Hints, READ, Rendered, Tool, ToolCall, UPDATE, clip};

/// Which issues by state.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    /// Open only (the default).
    #[serde(alias = "open")]
    Opened,
    /// Closed only.
    Closed,
    /// Both.
    All,
}

impl StateFilter {
    fn as_str(self) -> &'static str {
        match self {
            StateFilter::Opened => "opened",
            StateFilter::Closed => "closed",
            StateFilter::All => "all",
        }
    }
}

fn labels_param(labels: &[String]) -> Option<String> {
    (!labels.is_empty()).then(|| labels.join(","))
}

/// Arguments of `gitlab_list_issues`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// `opened` (default), `closed` or `all`.
    pub state: Option<StateFilter>,
    /// Only issues assigned to this username; `me` for the calling user, `none` for
    /// unassigned, `any` for assigned to anyone.
    pub assignee: Option<String>,
    /// Only issues opened by this username; `me` for the calling user.
    pub author: Option<String>,
    /// Only issues with all of these labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Words to look for in titles and descriptions.
    pub text: Option<String>,
    /// Only issues updated at or after this time (ISO 8601).
    pub updated_after: Option<String>,
    /// Issues per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `gitlab_list_issues`.
pub struct ListIssues;

impl Tool for ListIssues {
    type Args = ListArgs;
    type Output = Page<IssueSummary>;
    const NAME: &'static str = "gitlab_list_issues";
    const DESCRIPTION: &'static str = "List a GitLab project's issues, most recently updated first, filtered by state, assignee (\"me\" for yourself), author, labels, words and last update.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["project"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: ListArgs,
    ) -> Result<Rendered<Page<IssueSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        // GitLab knows "assigned to me" itself, which saves asking who "me" is.
        let (scope, assignee_id, assignee_username) = match a.assignee.as_deref() {
            Some("me") => (Some("assigned_to_me".to_owned()), None, None),
            Some(n) if n.eq_ignore_ascii_case("none") => (None, Some("None".into()), None),
            Some(n) if n.eq_ignore_ascii_case("any") => (None, Some("Any".into()), None),
            Some(n) => (None, None, Some(n.trim_start_matches('@').to_owned())),
            None => (None, None, None),
        };
        let author = match a.author.as_deref() {
            Some("me") => Some(common::me(cx, inst).await?),
            other => other.map(|n| n.trim_start_matches('@').to_owned()),
        };
        let req = Request::get(
            "/projects/{id}/issues",
            format!("{}/issues", api::project(&a.project)?),
        )
        .query([
            (
                "state",
                Some(a.state.unwrap_or(StateFilter::Opened).as_str().to_owned()),
            ),
            ("scope", scope),
            ("assignee_id", assignee_id),
            ("assignee_username", assignee_username),
            ("author_username", author),
            ("labels", labels_param(&a.labels)),
            ("search", a.text.filter(|t| !t.trim().is_empty())),
            ("updated_after", a.updated_after),
            ("order_by", Some("updated_at".into())),
            ("sort", Some("desc".into())),
        ])
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let next_cursor = api::next_cursor(&resp);
        let items: Vec<IssueSummary> = resp
            .json::<Vec<RawIssue>>()?
            .into_iter()
            .map(IssueSummary::listed)
            .collect();
        let output = Page { items, next_cursor };
        let text = render_lines(&output, issue_line, "no matching issues");
        Ok(Rendered { output, text })
    }
}

/// How the issues relate to the calling user.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Involvement {
    /// Assigned to me.
    AssignedToMe,
    /// Opened by me.
    CreatedByMe,
}

/// Arguments of `gitlab_search_issues`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// How the issues relate to the calling user; without it, every issue the user can
    /// see, which needs `text` or `labels`.
    pub involvement: Option<Involvement>,
    /// Words to look for in titles and descriptions.
    pub text: Option<String>,
    /// Only issues with all of these labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// `opened` (default), `closed` or `all`.
    pub state: Option<StateFilter>,
    /// Only issues updated at or after this time (ISO 8601).
    pub updated_after: Option<String>,
    /// Issues per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `gitlab_search_issues`.
pub struct SearchIssues;

impl Tool for SearchIssues {
    type Args = SearchArgs;
    type Output = Page<IssueSummary>;
    const NAME: &'static str = "gitlab_search_issues";
    const DESCRIPTION: &'static str = "Find GitLab issues across all projects you can see: assigned to you, opened by you, or matching words or labels; most recently updated first.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &[];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: SearchArgs,
    ) -> Result<Rendered<Page<IssueSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let text = a.text.filter(|t| !t.trim().is_empty());
        let scope = match a.involvement {
            Some(Involvement::AssignedToMe) => "assigned_to_me",
            Some(Involvement::CreatedByMe) => "created_by_me",
            None if text.is_none() && a.labels.is_empty() => {
                return Err(CallFailure::new(
                    ErrorCode::InvalidArguments,
                    "say what to look for: involvement, text or labels",
                ));
            }
            None => "all",
        };
        let req = Request::get("/issues", "issues".into())
            .query([
                ("scope", Some(scope.to_owned())),
                (
                    "state",
                    Some(a.state.unwrap_or(StateFilter::Opened).as_str().to_owned()),
                ),
                ("labels", labels_param(&a.labels)),
                ("search", text),
                ("updated_after", a.updated_after),
                ("order_by", Some("updated_at".into())),
                ("sort", Some("desc".into())),
            ])
            .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let next_cursor = api::next_cursor(&resp);
        let items: Vec<IssueSummary> = resp
            .json::<Vec<RawIssue>>()?
            .into_iter()
            .map(IssueSummary::listed)
            .collect();
        let output = Page { items, next_cursor };
        let text = render_lines(&output, issue_line, "nothing found");
        Ok(Rendered { output, text })
    }
}

/// An issue with a page of its notes.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IssueDetail {
    /// The issue.
    #[serde(flatten)]
    pub issue: IssueSummary,
    /// Its description (truncated past `max_body_chars`).
    pub description: String,
    /// Created, ISO 8601.
    pub created_at: String,
    /// Closed, ISO 8601.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    /// A page of its notes (comments), oldest first.
    pub notes: Vec<Note>,
    /// GitLab's own activity notes on this page that were left out.
    #[serde(skip_serializing_if = "is_zero")]
    pub system_notes_hidden: u64,
    /// Pass as `cursor` for the next page of notes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Arguments of `gitlab_get_issue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Issue number within the project (`iid`, as in `#12`).
    pub iid: u64,
    /// Notes per page (default 20, at most 100; 0 for none).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page of notes.
    pub cursor: Option<String>,
    /// Also show GitLab's own activity notes ("added label", "mentioned in"), marked
    /// `system` (default: left out).
    #[serde(default)]
    pub include_system: bool,
    /// Longest description or note kept, in characters (default 2000).
    pub max_body_chars: Option<usize>,
}

/// Default longest description or note kept.
pub const DEFAULT_BODY_CHARS: usize = 2000;
/// Largest `max_body_chars`.
pub const MAX_BODY_CHARS: usize = 100_000;

/// `gitlab_get_issue`.
pub struct GetIssue;

impl Tool for GetIssue {
    type Args = GetArgs;
    type Output = IssueDetail;
    const NAME: &'static str = "gitlab_get_issue";
    const DESCRIPTION: &'static str = "Read one GitLab issue: its state, labels, assignees and description, with a page of its comments (GitLab's activity notes left out unless asked for).";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["project"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: GetArgs,
    ) -> Result<Rendered<IssueDetail>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let base = format!("{}/issues/{}", api::project(&a.project)?, a.iid);
        let raw: RawIssue = cx
            .ok(
                inst,
                &Request::get("/projects/{id}/issues/{iid}", base.clone()),
            )
            .await?
            .json()?;
        let max = a
            .max_body_chars
            .unwrap_or(DEFAULT_BODY_CHARS)
            .min(MAX_BODY_CHARS);
        let (description, _) = clip(raw.description.as_deref().unwrap_or_default(), max);
        let (created_at, closed_at) = (raw.created_at.clone(), raw.closed_at.clone());
        let issue = IssueSummary::from(raw);
        // `user_notes_count` counts people's notes only: with none and no system notes
        // wanted, there is nothing to fetch.
        let skip = a.limit == Some(0) || (issue.comments == 0 && !a.include_system);
        let (notes, system_notes_hidden, next_cursor) = if skip {
            (Vec::new(), 0, None)
        } else {
            let req = Request::get("/projects/{id}/issues/{iid}/notes", format!("{base}/notes"))
                .query([
                    ("sort", Some("asc".into())),
                    ("order_by", Some("created_at".into())),
                ])
                .query(page_query(a.limit, a.cursor.as_deref())?);
            let resp = cx.ok(inst, &req).await?;
            let next = api::next_cursor(&resp);
            let page = resp.json::<Vec<RawNote>>()?;
            let (notes, hidden) = shown_notes(page, a.include_system, max);
            (notes, hidden, next)
        };
        let mut text = format!("{}\n{}", issue_line(&issue), description);
        for n in &notes {
            let mark = if n.system { " (system)" } else { "" };
            text.push_str(&format!(
                "\n--- {}{mark} at {}:\n{}",
                n.author, n.created_at, n.body
            ));
        }
        if next_cursor.is_some() {
            text.push_str("\n(more notes: pass next_cursor)");
        }
        Ok(Rendered {
            output: IssueDetail {
                issue,
                description,
                created_at,
                closed_at,
                notes,
                system_notes_hidden,
                next_cursor,
            },
            text,
        })
    }
}

/// The notes of a page to show: people's, and GitLab's own activity notes only when asked
/// for (then marked `system`); with how many were left out.
fn shown_notes(page: Vec<RawNote>, include_system: bool, max: usize) -> (Vec<Note>, u64) {
    let mut hidden = 0;
    let notes = page
        .into_iter()
        .filter(|n| {
            let keep = include_system || !n.system;
            if !keep {
                hidden += 1;
            }
            keep
        })
        .map(|n| n.compact(max))
        .collect();
    (notes, hidden)
}

/// Arguments of `gitlab_create_issue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Title.
    pub title: String,
    /// Markdown description.
    pub description: Option<String>,
    /// Labels to set (needs reporter access; GitLab drops them otherwise).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Usernames to assign (needs reporter access).
    #[serde(default)]
    pub assignees: Vec<String>,
}

/// `gitlab_create_issue`.
pub struct CreateIssue;

/// The text after a write, with what GitLab did not apply.
fn written(verb: &str, issue: &IssueSummary, labels: &[String], assignees: &[String]) -> String {
    let mut text = format!("{verb} {}", issue_line(issue));
    let (l, u) = (
        common::unapplied(labels, &issue.labels),
        common::unapplied(assignees, &issue.assignees),
    );
    if !l.is_empty() || !u.is_empty() {
        text.push_str(&format!(
            "\nnote: GitLab did not apply {}; the user may lack reporter access here",
            [
                (!l.is_empty()).then(|| format!("labels {}", l.join(", "))),
                (!u.is_empty()).then(|| format!("assignees {}", u.join(", "))),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ")
        ));
    }
    text
}

impl Tool for CreateIssue {
    type Args = CreateArgs;
    type Output = IssueSummary;
    const NAME: &'static str = "gitlab_create_issue";
    const DESCRIPTION: &'static str =
        "Open a new issue in a GitLab project, optionally with labels and assignees.";
    const HINTS: Hints = CREATE;
    const TARGET: &'static [&'static str] = &["project"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: CreateArgs,
    ) -> Result<Rendered<IssueSummary>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        common::require("title", &a.title)?;
        let path = format!("{}/issues", api::project(&a.project)?);
        let mut body = serde_json::Map::new();
        body.insert("title".into(), a.title.clone().into());
        if let Some(d) = a.description {
            body.insert("description".into(), d.into());
        }
        if !a.labels.is_empty() {
            body.insert("labels".into(), a.labels.join(",").into());
        }
        if !a.assignees.is_empty() {
            let ids = common::user_ids(cx, inst, &a.assignees).await?;
            body.insert("assignee_ids".into(), serde_json::json!(ids));
        }
        let req = Request::write(
            Method::POST,
            "/projects/{id}/issues",
            path,
            serde_json::Value::Object(body),
            false,
        );
        let issue = IssueSummary::from(cx.ok(inst, &req).await?.json::<RawIssue>()?);
        let text = written("opened", &issue, &a.labels, &a.assignees);
        Ok(Rendered {
            output: issue,
            text,
        })
    }
}

/// Close or reopen.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateEvent {
    /// Close the issue.
    Close,
    /// Reopen it.
    Reopen,
}

/// Arguments of `gitlab_update_issue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Issue number within the project (`iid`).
    pub iid: u64,
    /// `close` or `reopen`.
    pub state_event: Option<StateEvent>,
    /// New title.
    pub title: Option<String>,
    /// New Markdown description.
    pub description: Option<String>,
    /// Replace the labels with these (`[]` removes all).
    pub labels: Option<Vec<String>>,
    /// Labels to add, keeping the others.
    #[serde(default)]
    pub add_labels: Vec<String>,
    /// Labels to remove, keeping the others.
    #[serde(default)]
    pub remove_labels: Vec<String>,
    /// Replace the assignees with these usernames (`[]` unassigns everyone).
    pub assignees: Option<Vec<String>>,
}

/// `gitlab_update_issue`.
pub struct UpdateIssue;

impl Tool for UpdateIssue {
    type Args = UpdateArgs;
    type Output = IssueSummary;
    const NAME: &'static str = "gitlab_update_issue";
    const DESCRIPTION: &'static str = "Change a GitLab issue: close or reopen it, retitle it, edit its description, set, add or remove labels, set its assignees (by username).";
    const HINTS: Hints = UPDATE;
    const TARGET: &'static [&'static str] = &["project"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: UpdateArgs,
    ) -> Result<Rendered<IssueSummary>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let mut body = serde_json::Map::new();
        if let Some(s) = a.state_event {
            let event = match s {
                StateEvent::Close => "close",
                StateEvent::Reopen => "reopen",
            };
            body.insert("state_event".into(), event.into());
        }
        if let Some(t) = &a.title {
            common::require("title", t)?;
            body.insert("title".into(), t.clone().into());
        }
        if let Some(d) = a.description {
            body.insert("description".into(), d.into());
        }
        if let Some(l) = &a.labels {
            body.insert("labels".into(), l.join(",").into());
        }
        if !a.add_labels.is_empty() {
            body.insert("add_labels".into(), a.add_labels.join(",").into());
        }
        if !a.remove_labels.is_empty() {
            body.insert("remove_labels".into(), a.remove_labels.join(",").into());
        }
        if let Some(names) = &a.assignees {
            // GitLab reads `[0]` as "unassign everyone".
            let ids = if names.is_empty() {
                vec![0]
            } else {
                common::user_ids(cx, inst, names).await?
            };
            body.insert("assignee_ids".into(), serde_json::json!(ids));
        }
        if body.is_empty() {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "nothing to change: give state_event, title, description, labels, add_labels, remove_labels or assignees",
            ));
        }
        // Setting fields to given values: repeating it changes nothing more.
        let req = Request::write(
            Method::PUT,
            "/projects/{id}/issues/{iid}",
            format!("{}/issues/{}", api::project(&a.project)?, a.iid),
            serde_json::Value::Object(body),
            true,
        );
        let issue = IssueSummary::from(cx.ok(inst, &req).await?.json::<RawIssue>()?);
        let mut labels = a.labels.unwrap_or_default();
        labels.extend(a.add_labels);
        let text = written("updated", &issue, &labels, &a.assignees.unwrap_or_default());
        Ok(Rendered {
            output: issue,
            text,
        })
    }
}

/// Arguments of `gitlab_comment_on_issue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Issue number within the project (`iid`).
    pub iid: u64,
    /// Markdown body.
    pub body: String,
}

/// `gitlab_comment_on_issue`.
pub struct CommentOnIssue;

impl Tool for CommentOnIssue {
    type Args = CommentArgs;
    type Output = Posted;
    const NAME: &'static str = "gitlab_comment_on_issue";
    const DESCRIPTION: &'static str = "Add a comment to a GitLab issue.";
    const HINTS: Hints = CREATE;
    const TARGET: &'static [&'static str] = &["project"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: CommentArgs,
    ) -> Result<Rendered<Posted>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        common::require("body", &a.body)?;
        let req = Request::write(
            Method::POST,
            "/projects/{id}/issues/{iid}/notes",
            format!("{}/issues/{}/notes", api::project(&a.project)?, a.iid),
            serde_json::json!({"body": a.body}),
            false,
        );
        let n: RawNote = cx.ok(inst, &req).await?.json()?;
        let url = api::note_url(inst, &a.project, "issues", a.iid, n.id);
        let text = format!("commented on {}#{}: {url}", a.project, a.iid);
        Ok(Rendered {
            output: Posted {
                id: n.id,
                url,
                created_at: n.created_at,
            },
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_notes_are_left_out_unless_asked_for_then_marked() {
        let page = || -> Vec<RawNote> {
            serde_json::from_value(serde_json::json!([
                {"id": 1, "body": "added ~bug label", "author": {"username": "alice"}, "created_at": "t1", "system": true},
                {"id": 2, "body": "Confirmed.", "author": {"username": "bob"}, "created_at": "t2", "system": false},
            ]))
            .unwrap()
        };
        let (notes, hidden) = shown_notes(page(), false, 100);
        assert_eq!((notes.len(), hidden), (1, 1));
        assert_eq!(notes[0].body, "Confirmed.");
        let (notes, hidden) = shown_notes(page(), true, 5);
        assert_eq!((notes.len(), hidden), (2, 0));
        assert!(notes[0].system && !notes[1].system);
        assert_eq!(notes[0].body, "added…[truncated]");
        let shown = serde_json::to_value(&notes[1]).unwrap();
        assert!(
            shown.get("system").is_none(),
            "only system notes carry the mark"
        );
    }
}
