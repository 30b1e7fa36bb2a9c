//! GitHub REST specifics the tools share: path building, pagination, and the fields of
//! GitHub's objects the tools read (the rest of each payload is never kept: that is where
//! most of a raw response's tokens go).

use serde::Deserialize;
use shared::call::CallFailure;
use shared::wire::ErrorCode;

use crate::providers::http::Response;
pub use crate::providers::path::{file_path, seg};

/// `repos/{owner}/{repo}` (escaped).
pub fn repo(owner: &str, repo: &str) -> Result<String, CallFailure> {
    Ok(format!("repos/{}/{}", seg(owner)?, seg(repo)?))
}

/// The next page's cursor, from the `Link` header's `rel="next"` (only its page number is
/// kept: the URL itself is never followed, so a response cannot point us elsewhere).
pub fn next_cursor(resp: &Response) -> Option<String> {
    let links = crate::providers::link::parse(resp.header("link")?)?;
    let next = url::Url::parse(crate::providers::link::target(&links, "next")?).ok()?;
    next.query_pairs()
        .find(|(k, _)| k == "page")
        .map(|(_, v)| v.into_owned())
        .filter(|v| v.parse::<u32>().is_ok())
}

/// A write's JSON body without its `null` fields: GitHub's schema declares most request
/// fields plain strings (a pull request's or an issue's `body`...), and its request
/// validation refuses `null` for them (422), so a value the caller did not give is left
/// out instead.
pub fn without_nulls(mut body: serde_json::Value) -> serde_json::Value {
    if let Some(o) = body.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    body
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

/// A user field GitHub may send as a user, `null` or `{}` (the schema's nullable
/// `oneOf [simple-user, empty-object]`, e.g. a commit's `author` with no matching
/// account): the last two both mean "no account".
pub fn maybe_user<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<User>, D::Error> {
    #[derive(Deserialize)]
    struct Loose {
        login: Option<String>,
    }
    Ok(Option::<Loose>::deserialize(d)?
        .and_then(|l| l.login)
        .map(|login| User { login }))
}

/// A list GitHub's schema marks nullable: `null` reads as empty, like a missing key.
pub fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A label.
#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    /// Name.
    pub name: String,
}

/// A `labels` list as GitHub's schemas allow it: `null`, and each label an object whose
/// `name` may be absent (search results) or a bare name (issues: `oneOf [string,
/// object]`). Labels without a name are left out.
pub fn labels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Label>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Bare(String),
        Object { name: Option<String> },
    }
    Ok(Option::<Vec<Loose>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .filter_map(|l| match l {
            Loose::Bare(name) => Some(name),
            Loose::Object { name } => name,
        })
        .map(|name| Label { name })
        .collect())
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
    /// Assignees (`null` in search results when there are none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub assignees: Vec<User>,
    /// Labels.
    #[serde(default, deserialize_with = "labels")]
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

/// `owner/repo` from an API URL ending in `/repos/{owner}/{repo}`.
pub fn repo_of(repository_url: Option<&str>) -> String {
    repository_url
        .and_then(|u| u.split("/repos/").nth(1))
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::page::page_query;

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
    fn absent_fields_are_left_out_of_write_bodies() {
        let body = without_nulls(
            serde_json::json!({"title": "t", "body": None::<String>, "draft": false}),
        );
        assert_eq!(body, serde_json::json!({"title": "t", "draft": false}));
    }

    #[test]
    fn cursors_are_page_numbers_only() {
        assert!(page_query(None, Some("abc")).is_err());
        assert!(page_query(None, Some("0")).is_err());
        assert_eq!(
            page_query(Some(500), Some("3")).unwrap()[0].1.as_deref(),
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
