//! Repository tools: find the repositories the user can see (search, or the ones they
//! belong to).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;

use super::common;
use crate::providers::github::api;
use crate::providers::http::Request;
use crate::providers::page::{Page, page_query, render_lines};
use crate::tools::tool::{Hints, READ, Rendered, Tool, ToolCall, clip};

/// The caller's access, as GitHub reports it per repository.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawPermissions {
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    maintain: bool,
    #[serde(default)]
    push: bool,
    #[serde(default)]
    triage: bool,
}

impl RawPermissions {
    /// The highest role these permissions amount to.
    fn role(&self) -> &'static str {
        if self.admin {
            "admin"
        } else if self.maintain {
            "maintain"
        } else if self.push {
            "write"
        } else if self.triage {
            "triage"
        } else {
            "read"
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RawRepo {
    full_name: String,
    description: Option<String>,
    #[serde(default)]
    private: bool,
    visibility: Option<String>,
    default_branch: Option<String>,
    language: Option<String>,
    pushed_at: Option<String>,
    html_url: String,
    #[serde(default)]
    archived: bool,
    permissions: Option<RawPermissions>,
}

/// A page of `GET /search/repositories`.
#[derive(Debug, Deserialize)]
pub(super) struct FoundRepos {
    items: Vec<RawRepo>,
}

/// A repository, compactly.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RepoSummary {
    /// `owner/repo`.
    pub full_name: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `public`, `internal` or `private`.
    pub visibility: String,
    /// The default branch.
    pub default_branch: String,
    /// Main language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The calling user's role: `read`, `triage`, `write`, `maintain` or `admin`.
    pub permission: String,
    /// Archived (read-only).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
    /// Last push, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<String>,
    /// Web URL.
    pub url: String,
}

impl From<RawRepo> for RepoSummary {
    fn from(r: RawRepo) -> Self {
        let visibility = r
            .visibility
            .unwrap_or_else(|| if r.private { "private" } else { "public" }.to_owned());
        Self {
            full_name: r.full_name,
            description: r.description.filter(|d| !d.is_empty()),
            visibility,
            default_branch: r.default_branch.unwrap_or_default(),
            language: r.language,
            permission: r.permissions.unwrap_or_default().role().to_owned(),
            archived: r.archived,
            pushed_at: r.pushed_at,
            url: r.html_url,
        }
    }
}

fn repo_line(r: &RepoSummary) -> String {
    let mut line = format!(
        "{} [{}, {}] default {}",
        r.full_name, r.visibility, r.permission, r.default_branch
    );
    if let Some(l) = &r.language {
        line.push_str(&format!(", {l}"));
    }
    if r.archived {
        line.push_str(", archived");
    }
    if let Some(d) = &r.description {
        line.push_str(&format!(": {}", clip(d, 120).0));
    }
    line
}

/// Arguments of `github_search_repositories`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Words to find in repository names and descriptions.
    pub text: Option<String>,
    /// Only repositories of this organisation or user.
    pub org: Option<String>,
    /// Only repositories whose main language is this.
    pub language: Option<String>,
    /// Repositories per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `github_search_repositories`.
pub struct SearchRepositories;

/// A search qualifier's value, quoted when it has spaces.
fn qualifier(key: &str, value: &str) -> String {
    if value.contains(char::is_whitespace) {
        format!("{key}:\"{}\"", value.replace('"', ""))
    } else {
        format!("{key}:{value}")
    }
}

impl Tool for SearchRepositories {
    type Args = SearchArgs;
    type Output = Page<RepoSummary>;
    const NAME: &'static str = "github_search_repositories";
    const DESCRIPTION: &'static str = "Find repositories the calling user can see, by words in their name or description, organisation and language. Without filters: the repositories the user belongs to, most recently updated first.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &[];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: SearchArgs,
    ) -> Result<Rendered<Page<RepoSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let mut q: Vec<String> = Vec::new();
        if let Some(org) = &a.org {
            q.push(qualifier("org", org));
        }
        if let Some(l) = &a.language {
            q.push(qualifier("language", l));
        }
        if let Some(t) = a.text.as_deref().filter(|t| !t.trim().is_empty()) {
            q.push(t.to_owned());
        }
        let page = page_query(a.limit, a.cursor.as_deref())?;
        let (resp, raw) = if q.is_empty() {
            let req = Request::get("/user/repos", "user/repos".into())
                .query([("sort", Some("updated".to_owned()))])
                .query(page);
            let resp = cx.ok(inst, &req).await?;
            let raw: Vec<RawRepo> = resp.json()?;
            (resp, raw)
        } else {
            let req = Request::get("/search/repositories", "search/repositories".into())
                .query([("q", Some(q.join(" ")))])
                .query(page);
            let resp = cx.ok(inst, &req).await?;
            let raw = resp.json::<FoundRepos>()?.items;
            (resp, raw)
        };
        let out = Page {
            items: raw.into_iter().map(RepoSummary::from).collect(),
            next_cursor: api::next_cursor(&resp),
        };
        let text = render_lines(&out, repo_line, "no repositories found");
        Ok(Rendered { output: out, text })
    }
}
