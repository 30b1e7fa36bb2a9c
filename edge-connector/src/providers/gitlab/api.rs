//! GitLab REST (`/api/v4`) specifics the tools share: project paths, pagination, the user
//! lookups the writes need, and the fields of GitLab's objects the tools read (the rest of
//! each payload is never kept: that is where most of a raw response's tokens go).

use reqwest::StatusCode;
use serde::{Deserialize, Deserializer};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use crate::providers::Instance;
use crate::providers::http::{self, Response};
use crate::providers::path::{file_path, seg};

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

/// A user's username, or `""` when GitLab sent none.
pub fn username(u: Option<User>) -> String {
    u.map(|u| u.username).unwrap_or_default()
}

/// The usernames of `us`.
pub fn usernames(us: Vec<User>) -> Vec<String> {
    us.into_iter().map(|u| u.username).collect()
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
pub fn project_of(references: Option<&References>, web_url: &str) -> String {
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

/// The first 8 characters of a commit id (GitLab's `short_id`).
pub fn short(sha: &str) -> String {
    sha.chars().take(8).collect()
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

/// The web URL of note `id` on `kind` (`issues`, `merge_requests`) `iid` of `project`.
pub fn note_url(inst: &Instance, project: &str, kind: &str, iid: u64, id: u64) -> String {
    format!(
        "{}/{}/-/{kind}/{iid}#note_{id}",
        inst.http.web_url().as_str().trim_end_matches('/'),
        project.trim_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::page::page_query;

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
        assert!(page_query(None, Some("abc")).is_err());
        assert!(page_query(None, Some("0")).is_err());
        assert_eq!(
            page_query(Some(500), Some("3")).unwrap()[0].1.as_deref(),
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
