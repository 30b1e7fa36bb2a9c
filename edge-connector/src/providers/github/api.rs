//! GitHub REST specifics the tools share: path building, pagination, and the fields of
//! GitHub's objects the tools read (the rest of each payload is never kept: that is where
//! most of a raw response's tokens go).

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use crate::config::ProviderKind;
use crate::providers::Instance;
use crate::providers::http::Response;
pub use crate::providers::path::{file_path, seg};
use crate::tools::tool::ToolCall;
pub use crate::tools::tool::clip;

/// `repos/{owner}/{repo}` (escaped).
pub fn repo(owner: &str, repo: &str) -> Result<String, CallFailure> {
    Ok(format!("repos/{}/{}", seg(owner)?, seg(repo)?))
}

/// The instance a call names.
pub fn instance<'a>(
    cx: &'a ToolCall<'a>,
    name: Option<&str>,
) -> Result<&'a Arc<Instance>, CallFailure> {
    cx.providers.pick(ProviderKind::Github, name)
}

/// Default page size of the tools (small: answers, not dumps).
pub const DEFAULT_LIMIT: u32 = 20;
/// GitHub's largest page.
pub const MAX_LIMIT: u32 = 100;

/// `per_page` and `page` from a tool's `limit` and `cursor`.
pub fn page(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<[(&'static str, Option<String>); 2], CallFailure> {
    let per_page = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let page = match cursor {
        None => 1,
        Some(c) => c
            .parse::<u32>()
            .ok()
            .filter(|p| (1..=10_000).contains(p))
            .ok_or_else(|| {
                CallFailure::new(
                    ErrorCode::InvalidArguments,
                    "cursor must be a next_cursor value returned by this tool",
                )
            })?,
    };
    Ok([
        ("per_page", Some(per_page.to_string())),
        ("page", Some(page.to_string())),
    ])
}

/// The next page's cursor, from the `Link` header's `rel="next"` (only its page number is
/// kept: the URL itself is never followed, so a response cannot point us elsewhere).
pub fn next_cursor(resp: &Response) -> Option<String> {
    let link = resp.header("link")?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        if !params.split(';').any(|p| p.trim() == "rel=\"next\"") {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        let parsed = url::Url::parse(url).ok()?;
        parsed
            .query_pairs()
            .find(|(k, _)| k == "page")
            .map(|(_, v)| v.into_owned())
            .filter(|v| v.parse::<u32>().is_ok())
    })
}

/// The first 7 characters of a commit id, as people write them.
pub fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// A login, or `""` for a deleted ("ghost") account.
pub fn login(u: Option<User>) -> String {
    u.map(|u| u.login).unwrap_or_default()
}

/// Checks that `owner` and `repo` are plain GitHub names before they go into a search
/// query: a space or a qualifier smuggled into either would widen the search past the
/// repository the policy allowed.
pub fn searchable_repo(owner: &str, repo: &str) -> Result<String, CallFailure> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if plain(owner) && plain(repo) {
        Ok(format!("{owner}/{repo}"))
    } else {
        Err(CallFailure::new(
            ErrorCode::InvalidArguments,
            "owner and repo must be plain names (letters, digits, '-', '_', '.')",
        ))
    }
}

/// Refuses search words that carry a scope qualifier (`repo:`, `org:`, `user:`...): GitHub
/// would search those scopes too, past the repository the policy allowed.
pub fn unscoped_words(words: &str) -> Result<&str, CallFailure> {
    const SCOPES: [&str; 4] = ["repo:", "org:", "user:", "owner:"];
    let scoped = words.split_whitespace().any(|w| {
        let w = w.trim_start_matches(['-', '"', '(']).to_ascii_lowercase();
        SCOPES.iter().any(|s| w.starts_with(s))
    });
    if scoped {
        return Err(CallFailure::new(
            ErrorCode::InvalidArguments,
            "the search words may not name other repositories (repo:, org:, user:); the repository is given by owner and repo",
        ));
    }
    Ok(words)
}

/// A user as GitHub names them.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// Login.
    pub login: String,
}

/// A label.
#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    /// Name.
    pub name: String,
}

/// The fields of a GitHub issue the tools read.
#[derive(Debug, Clone, Deserialize)]
pub struct RawIssue {
    /// Number.
    pub number: u64,
    /// Title.
    pub title: String,
    /// `open` / `closed`.
    pub state: String,
    /// Author.
    pub user: Option<User>,
    /// Assignees.
    #[serde(default)]
    pub assignees: Vec<User>,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<Label>,
    /// Comment count.
    #[serde(default)]
    pub comments: u64,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: String,
    /// Web URL.
    pub html_url: String,
    /// Body (Markdown).
    pub body: Option<String>,
    /// Present when the "issue" is a pull request.
    pub pull_request: Option<serde_json::Value>,
    /// `owner/repo`, from `repository_url`.
    pub repository_url: Option<String>,
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

/// `owner/repo` from an API URL ending in `/repos/{owner}/{repo}`.
pub fn repo_of(repository_url: Option<&str>) -> String {
    repository_url
        .and_then(|u| u.split("/repos/").nth(1))
        .unwrap_or_default()
        .to_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_scope_cannot_be_widened() {
        assert_eq!(
            searchable_repo("acme", "widgets.rs").unwrap(),
            "acme/widgets.rs"
        );
        assert!(searchable_repo("acme", "widgets repo:acme/infra").is_err());
        assert!(searchable_repo("acme/infra", "x").is_err());
        assert!(searchable_repo("", "x").is_err());
        assert!(unscoped_words("fn render path:src").is_ok());
        for bad in [
            "x repo:acme/infra",
            "x ORG:acme",
            "-user:bob x",
            "(repo:a/b OR y)",
        ] {
            assert!(unscoped_words(bad).is_err(), "{bad}");
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
        let resp = Response {
            status: reqwest::StatusCode::OK,
            headers: {
                let mut h = reqwest::header::HeaderMap::new();
                h.insert(
                    "link",
                    "<https://evil.example/x?page=3&per_page=2>; rel=\"next\", <https://h/x?page=9>; rel=\"last\""
                        .parse()
                        .unwrap(),
                );
                h
            },
            body: bytes::Bytes::new(),
        };
        assert_eq!(next_cursor(&resp).as_deref(), Some("3"));
    }
}
