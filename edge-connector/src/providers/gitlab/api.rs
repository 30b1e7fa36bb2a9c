//! GitLab REST (`/api/v4`) specifics the tools share: project paths, pagination, the user
//! lookups the writes need, and the fields of GitLab's objects the tools read (the rest of
//! each payload is never kept: that is where most of a raw response's tokens go).

use std::sync::Arc;

use reqwest::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use crate::config::ProviderKind;
use crate::providers::Instance;
use crate::providers::http::{self, Request, Response};
use crate::providers::path::{file_path, seg};
use crate::tools::tool::ToolCall;

/// The instance a call names.
pub fn instance<'a>(
    cx: &'a ToolCall<'a>,
    name: Option<&str>,
) -> Result<&'a Arc<Instance>, CallFailure> {
    cx.providers.pick(ProviderKind::Gitlab, name)
}

/// `projects/{id}` for a project's full path (`group/sub/project`), the path escaped as
/// ONE segment, as GitLab wants it (`acme%2Fplatform%2Fapi`). Each part is checked first,
/// so no `..` or empty part reaches GitLab's own path resolution.
pub fn project(path: &str) -> Result<String, CallFailure> {
    let path = path.trim_matches('/');
    file_path(path).map_err(|_| {
        CallFailure::new(
            ErrorCode::InvalidArguments,
            format!("{path:?} is not a project path (group/sub/project)"),
        )
    })?;
    Ok(format!("projects/{}", seg(path)?))
}

/// Default page size of the tools (small: answers, not dumps).
pub const DEFAULT_LIMIT: u32 = 20;
/// GitLab's largest page.
pub const MAX_LIMIT: u32 = 100;

/// `per_page` and `page` from a tool's `limit` and `cursor`.
pub fn page(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<[(&'static str, Option<String>); 2], CallFailure> {
    let per_page = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    Ok([
        ("per_page", Some(per_page.to_string())),
        ("page", Some(page_number(cursor)?.to_string())),
    ])
}

/// The page a cursor names (1 without one).
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

/// The next page's cursor, from GitLab's `x-next-page` header (empty on the last page).
/// Only a page number is kept, never a URL, so a response cannot point us elsewhere.
pub fn next_cursor(resp: &Response) -> Option<String> {
    resp.header("x-next-page")
        .map(str::trim)
        .filter(|p| p.parse::<u32>().is_ok_and(|n| n > 0))
        .map(str::to_owned)
}

/// The typed failure of a non-success response. GitLab answers `406` when a merge
/// conflicts, which is the request being refused as it stands, not an outage.
pub fn failure(inst: &Instance, resp: &Response) -> CallFailure {
    if resp.status == StatusCode::NOT_ACCEPTABLE {
        return CallFailure::new(
            ErrorCode::Rejected,
            format!(
                "{} rejected the request (406): {}",
                inst.config.name,
                resp.message().unwrap_or_else(|| "not acceptable".into())
            ),
        );
    }
    http::failure(&inst.config.name, resp)
}

/// `null` read as the type's default (GitLab sends `null` for some empty lists).
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A user as GitLab embeds them.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// Numeric id.
    #[serde(default)]
    pub id: u64,
    /// Username.
    pub username: String,
}

fn username(u: Option<User>) -> String {
    u.map(|u| u.username).unwrap_or_default()
}

fn usernames(us: Vec<User>) -> Vec<String> {
    us.into_iter().map(|u| u.username).collect()
}

/// The calling user's username.
pub async fn me(cx: &ToolCall<'_>, inst: &Instance) -> Result<String, CallFailure> {
    let resp = inst
        .ok_as(
            cx.ctx,
            cx.user(),
            cx.deadline,
            &Request::get("/user", "user".into()),
        )
        .await?;
    Ok(resp.json::<User>()?.username)
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
        let found: Vec<User> = inst
            .ok_as(cx.ctx, cx.user(), cx.deadline, &req)
            .await?
            .json()?;
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

/// `references.full` of issues and merge requests (`group/project#1`, `group/project!2`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct References {
    /// The full reference.
    #[serde(default)]
    pub full: String,
}

/// The project path of an issue or merge request: from its full reference, else from its
/// web URL (`https://host/group/project/-/issues/1`).
fn project_of(references: Option<&References>, web_url: &str) -> String {
    if let Some((p, _)) = references.and_then(|r| r.full.rsplit_once(['#', '!'])) {
        return p.to_owned();
    }
    url::Url::parse(web_url)
        .ok()
        .and_then(|u| {
            u.path()
                .split_once("/-/")
                .map(|(p, _)| p.trim_matches('/').to_owned())
        })
        .unwrap_or_default()
}

/// The fields of a GitLab issue the tools read.
#[derive(Debug, Clone, Deserialize)]
pub struct RawIssue {
    /// Number within the project.
    pub iid: u64,
    /// Title.
    pub title: String,
    /// `opened` / `closed`.
    pub state: String,
    /// Author.
    pub author: Option<User>,
    /// Assignees.
    #[serde(default, deserialize_with = "nullable")]
    pub assignees: Vec<User>,
    /// Label names.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: Vec<String>,
    /// Comment count (without system notes).
    #[serde(default)]
    pub user_notes_count: u64,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: String,
    /// Closed.
    pub closed_at: Option<String>,
    /// Web URL.
    #[serde(default)]
    pub web_url: String,
    /// Description (Markdown).
    pub description: Option<String>,
    /// References.
    pub references: Option<References>,
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

/// A pipeline as GitLab lists it (and embeds it in a merge request).
#[derive(Debug, Clone, Deserialize)]
pub struct RawPipeline {
    /// Id.
    pub id: u64,
    /// Status (`success`, `failed`, `running`...).
    pub status: String,
    /// Branch or tag.
    #[serde(rename = "ref", default)]
    pub git_ref: String,
    /// Commit.
    #[serde(default)]
    pub sha: String,
    /// What started it (`push`, `merge_request_event`...).
    #[serde(default)]
    pub source: Option<String>,
    /// Created.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// The fields of a GitLab merge request the tools read.
#[derive(Debug, Clone, Deserialize)]
pub struct RawMergeRequest {
    /// Number within the project.
    pub iid: u64,
    /// Title.
    pub title: String,
    /// `opened`, `closed`, `merged`, `locked`.
    pub state: String,
    /// Draft.
    #[serde(default)]
    pub draft: bool,
    /// Author.
    pub author: Option<User>,
    /// Assignees.
    #[serde(default, deserialize_with = "nullable")]
    pub assignees: Vec<User>,
    /// Reviewers.
    #[serde(default, deserialize_with = "nullable")]
    pub reviewers: Vec<User>,
    /// Label names.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: Vec<String>,
    /// Source branch.
    pub source_branch: String,
    /// Target branch.
    pub target_branch: String,
    /// Head commit of the source branch.
    #[serde(default)]
    pub sha: Option<String>,
    /// The merge commit, once merged.
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    /// `mergeable`, `conflict`, `draft_status`, `ci_must_pass`... (GitLab 15.6+).
    #[serde(default)]
    pub detailed_merge_status: Option<String>,
    /// `can_be_merged` / `cannot_be_merged` (older GitLab's only status).
    #[serde(default)]
    pub merge_status: Option<String>,
    /// Conflicts with the target.
    #[serde(default)]
    pub has_conflicts: bool,
    /// Comment count.
    #[serde(default)]
    pub user_notes_count: u64,
    /// Updated.
    pub updated_at: String,
    /// Web URL.
    #[serde(default)]
    pub web_url: String,
    /// Description (Markdown).
    pub description: Option<String>,
    /// References.
    pub references: Option<References>,
    /// Number of changed files, as text (`"3"`, `"1000+"`); single merge requests only.
    #[serde(default)]
    pub changes_count: Option<String>,
    /// The latest pipeline of the head commit; single merge requests only.
    #[serde(default)]
    pub head_pipeline: Option<RawPipeline>,
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

/// The first 8 characters of a commit id (GitLab's `short_id`).
pub fn short(sha: &str) -> String {
    sha.chars().take(8).collect()
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

/// A note (comment) as GitLab returns it.
#[derive(Debug, Deserialize)]
pub struct RawNote {
    /// Id.
    pub id: u64,
    /// Markdown body.
    #[serde(default)]
    pub body: String,
    /// Author.
    pub author: Option<User>,
    /// Created.
    #[serde(default)]
    pub created_at: String,
    /// Written by GitLab itself ("changed the label", "mentioned in"), not by a person.
    #[serde(default)]
    pub system: bool,
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
            body: crate::tools::tool::clip(&self.body, max).0,
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

/// The web URL of note `id` on `kind` (`issues`, `merge_requests`) `iid` of `project`.
pub fn note_url(inst: &Instance, project: &str, kind: &str, iid: u64, id: u64) -> String {
    format!(
        "{}/{}/-/{kind}/{iid}#note_{id}",
        inst.http.web_url().as_str().trim_end_matches('/'),
        project.trim_matches('/')
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(name: &'static str, value: &str) -> Response {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        Response {
            status: StatusCode::OK,
            headers,
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn cursors_are_page_numbers_only() {
        assert!(page(None, Some("abc")).is_err());
        assert!(page(None, Some("0")).is_err());
        assert_eq!(
            page(Some(500), Some("3")).unwrap()[0].1.as_deref(),
            Some("100")
        );
        assert_eq!(
            next_cursor(&with_header("x-next-page", "2")).as_deref(),
            Some("2")
        );
        // The last page has an empty x-next-page.
        assert_eq!(next_cursor(&with_header("x-next-page", "")), None);
        assert_eq!(
            next_cursor(&with_header("x-next-page", "https://evil/x?page=2")),
            None
        );
    }

    #[test]
    fn project_paths_are_one_escaped_segment() {
        assert_eq!(
            project("acme/platform/api").unwrap(),
            "projects/acme%2Fplatform%2Fapi"
        );
        assert_eq!(
            project("/acme/widgets/").unwrap(),
            "projects/acme%2Fwidgets"
        );
        assert!(project("acme/../admin").is_err());
        assert!(project("acme//x").is_err());
        assert!(project("").is_err());
        let base = url::Url::parse("https://h/api/v4/").unwrap();
        let p = base.join(&project("a/%2e%2e/b").unwrap_or_default());
        assert!(p.map_or(true, |u| u.path().starts_with("/api/v4/projects/")));
    }

    #[test]
    fn the_project_comes_from_the_reference_or_the_url() {
        let r = References {
            full: "acme/platform/api!2".into(),
        };
        assert_eq!(project_of(Some(&r), ""), "acme/platform/api");
        assert_eq!(
            project_of(None, "https://h/acme/widgets/-/issues/1"),
            "acme/widgets"
        );
    }
}
