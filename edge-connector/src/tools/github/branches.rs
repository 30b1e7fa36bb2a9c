//! Branch and history tools: list branches, create one from a branch, tag or commit,
//! delete one, and list commits.

use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::{CallFailure, PreviewOutcome};
use shared::wire::ErrorCode;

use super::common;
use crate::providers::Instance;
use crate::providers::github::api;
use crate::providers::http::Request;
use crate::providers::page::{Page, page_query, render_lines};
use crate::tools::tool::{
    CREATE, DESTRUCTIVE, Hints, READ, Rendered, Tool, ToolCall, clip, effect, quoted, stale,
};

/// Arguments of `github_list_branches`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListBranchesArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Only protected (`true`) or only unprotected (`false`) branches.
    pub protected: Option<bool>,
    /// Branches per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A branch.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Branch {
    /// Name.
    pub name: String,
    /// The commit it points at.
    pub sha: String,
    /// Whether branch protection applies.
    pub protected: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawSha {
    sha: String,
}

/// A git reference (`GET /git/ref/{ref}`).
#[derive(Debug, Deserialize)]
pub(super) struct RawRef {
    object: RawSha,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawBranch {
    name: String,
    commit: RawSha,
    #[serde(default)]
    protected: bool,
}

/// `github_list_branches`.
pub struct ListBranches;

impl Tool for ListBranches {
    type Args = ListBranchesArgs;
    type Output = Page<Branch>;
    const NAME: &'static str = "github_list_branches";
    const DESCRIPTION: &'static str =
        "List a repository's branches with the commit each points at and whether it is protected.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["owner", "repo"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: ListBranchesArgs,
    ) -> Result<Rendered<Page<Branch>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let req = Request::get(
            "/repos/{owner}/{repo}/branches",
            format!("{}/branches", api::repo(&a.owner, &a.repo)?),
        )
        .query([("protected", a.protected.map(|p| p.to_string()))])
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let out = Page {
            next_cursor: api::next_cursor(&resp),
            items: resp
                .json::<Vec<RawBranch>>()?
                .into_iter()
                .map(|b| Branch {
                    name: b.name,
                    sha: b.commit.sha,
                    protected: b.protected,
                })
                .collect(),
        };
        let text = render_lines(
            &out,
            |b| {
                format!(
                    "{} {}{}",
                    b.name,
                    api::short(&b.sha),
                    if b.protected { " (protected)" } else { "" }
                )
            },
            "no branches",
        );
        Ok(Rendered { output: out, text })
    }
}

/// The git identity of a commit (`nullable-git-user`: every field optional).
#[derive(Debug, Deserialize)]
pub(super) struct RawPerson {
    name: Option<String>,
    email: Option<String>,
    date: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawCommitData {
    message: String,
    author: Option<RawPerson>,
}

/// A commit of the commits list.
#[derive(Debug, Deserialize)]
pub(super) struct RawCommit {
    sha: String,
    commit: RawCommitData,
    /// The author's account: `null` or `{}` when the commit matches none.
    #[serde(default, deserialize_with = "api::maybe_user")]
    author: Option<api::User>,
}

/// A commit, compactly.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CommitSummary {
    /// Commit id.
    pub sha: String,
    /// First line of the message.
    pub title: String,
    /// Author's login, or their git name when no account matches.
    pub author: String,
    /// The author's git e-mail address, when no account matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author_email: Option<String>,
    /// Authored, RFC 3339.
    pub date: String,
}

impl From<RawCommit> for CommitSummary {
    fn from(c: RawCommit) -> Self {
        let person = c.commit.author;
        let (author, author_email) = match c.author {
            Some(u) => (u.login, None),
            None => (
                person
                    .as_ref()
                    .and_then(|p| p.name.clone())
                    .unwrap_or_default(),
                person
                    .as_ref()
                    .and_then(|p| p.email.clone())
                    .filter(|e| !e.is_empty()),
            ),
        };
        Self {
            title: clip(c.commit.message.lines().next().unwrap_or_default(), 200).0,
            author,
            author_email,
            date: person.and_then(|p| p.date).unwrap_or_default(),
            sha: c.sha,
        }
    }
}

/// How a commit's author reads in text: the login, or `Name <email>` with no account.
fn author_text(c: &CommitSummary) -> String {
    match &c.author_email {
        Some(e) => format!("{} <{e}>", c.author),
        None => c.author.clone(),
    }
}

/// The commit `rev` (a branch, tag or sha; the default branch when absent) names.
async fn resolve(
    cx: &ToolCall<'_>,
    inst: &Instance,
    owner: &str,
    repo: &str,
    rev: Option<&str>,
) -> Result<String, CallFailure> {
    // The commit list starting at `rev` resolves every kind of ref in one request.
    let req = Request::get(
        "/repos/{owner}/{repo}/commits",
        format!("{}/commits", api::repo(owner, repo)?),
    )
    .query([
        ("sha", rev.map(str::to_owned)),
        ("per_page", Some("1".into())),
    ]);
    let resp = cx.ok(inst, &req).await?;
    resp.json::<Vec<RawSha>>()?
        .into_iter()
        .next()
        .map(|c| c.sha)
        .ok_or_else(|| {
            CallFailure::new(
                ErrorCode::NotFound,
                format!(
                    "{owner}/{repo} has no commit at {}",
                    rev.unwrap_or("its default branch")
                ),
            )
        })
}

/// Arguments of `github_create_branch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBranchArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// The new branch's name (`feature/x`).
    pub branch: String,
    /// Where it starts: a branch, tag or commit sha (default: the default branch).
    pub from: Option<String>,
}

/// A branch made.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedBranch {
    /// Its name.
    pub branch: String,
    /// The commit it points at.
    pub sha: String,
}

/// `github_create_branch`.
pub struct CreateBranch;

impl Tool for CreateBranch {
    type Args = CreateBranchArgs;
    type Output = CreatedBranch;
    const NAME: &'static str = "github_create_branch";
    const DESCRIPTION: &'static str =
        "Create a branch from another branch, a tag or a commit (default: the default branch).";
    const HINTS: Hints = CREATE;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: CreateBranchArgs,
    ) -> Result<Rendered<CreatedBranch>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let branch = a.branch.trim().trim_start_matches("refs/heads/");
        if branch.is_empty() {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "branch is empty",
            ));
        }
        let sha = resolve(cx, inst, &a.owner, &a.repo, a.from.as_deref()).await?;
        // Not repeated on a lost answer: the repeat would fail with "already exists".
        let req = Request::write(
            Method::POST,
            "/repos/{owner}/{repo}/git/refs",
            format!("{}/git/refs", api::repo(&a.owner, &a.repo)?),
            serde_json::json!({"ref": format!("refs/heads/{branch}"), "sha": sha}),
            false,
        );
        cx.ok(inst, &req).await?;
        let text = format!(
            "created branch {branch} at {} (from {}) in {}/{}",
            api::short(&sha),
            a.from.as_deref().unwrap_or("the default branch"),
            a.owner,
            a.repo
        );
        Ok(Rendered {
            output: CreatedBranch {
                branch: branch.to_owned(),
                sha,
            },
            text,
        })
    }
}

/// Arguments of `github_delete_branch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBranchArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// The branch to delete.
    pub branch: String,
}

/// A branch deleted.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeletedBranch {
    /// Its name.
    pub branch: String,
    /// The commit it pointed at (create the branch from it to undo).
    pub sha: String,
}

/// The commit `branch` of `owner/repo` points at.
async fn branch_head(
    cx: &ToolCall<'_>,
    inst: &Instance,
    owner: &str,
    repo: &str,
    branch: &str,
) -> Result<String, CallFailure> {
    let req = Request::get(
        "/repos/{owner}/{repo}/git/ref/{ref}",
        format!(
            "{}/git/ref/heads/{}",
            api::repo(owner, repo)?,
            api::file_path(branch)?
        ),
    );
    Ok(cx.ok(inst, &req).await?.json::<RawRef>()?.object.sha)
}

/// `github_delete_branch`.
pub struct DeleteBranch;

impl Tool for DeleteBranch {
    type Args = DeleteBranchArgs;
    type Output = DeletedBranch;
    const NAME: &'static str = "github_delete_branch";
    const DESCRIPTION: &'static str =
        "Delete a branch; the answer names the commit it pointed at, to recreate it if needed.";
    const HINTS: Hints = DESTRUCTIVE;
    const TARGET: &'static [&'static str] = &["owner", "repo"];

    async fn preview(&self, cx: &ToolCall<'_>, a: DeleteBranchArgs) -> PreviewOutcome {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let branch = a.branch.trim().trim_start_matches("refs/heads/");
        let sha = branch_head(cx, inst, &a.owner, &a.repo, branch).await?;
        let text = format!(
            "delete branch {} of {}/{}, which points at commit {sha}",
            quoted(branch),
            a.owner,
            a.repo
        );
        Ok(effect(text, [("branch_sha", sha.as_str())]))
    }

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: DeleteBranchArgs,
    ) -> Result<Rendered<DeletedBranch>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let branch = a.branch.trim().trim_start_matches("refs/heads/");
        let repo = api::repo(&a.owner, &a.repo)?;
        let name = api::file_path(branch)?;
        // Read first: the answer can then say what to recreate, a missing branch is a
        // plain "not found", and a branch moved since the user approved is not deleted.
        let sha = branch_head(cx, inst, &a.owner, &a.repo, branch).await?;
        if cx.bound("branch_sha").is_some_and(|b| b != sha) {
            return Err(stale(&format!(
                "branch {branch} of {}/{} (it now points at {sha})",
                a.owner, a.repo
            )));
        }
        let mut req = Request::get(
            "/repos/{owner}/{repo}/git/refs/{ref}",
            format!("{repo}/git/refs/heads/{name}"),
        );
        // Deleting twice deletes nothing more.
        req.method = Method::DELETE;
        cx.ok(inst, &req).await?;
        let text = format!(
            "deleted branch {branch} of {}/{} (it pointed at {sha})",
            a.owner, a.repo
        );
        Ok(Rendered {
            output: DeletedBranch {
                branch: branch.to_owned(),
                sha,
            },
            text,
        })
    }
}

/// Arguments of `github_list_commits`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListCommitsArgs {
    /// The GitHub Enterprise instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Branch, tag or commit sha to list back from (default: the default branch).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Only commits touching this file or directory.
    pub path: Option<String>,
    /// Only commits by this login or e-mail address.
    pub author: Option<String>,
    /// Only commits at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only commits at or before this time (RFC 3339).
    pub until: Option<String>,
    /// Commits per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `github_list_commits`.
pub struct ListCommits;

impl Tool for ListCommits {
    type Args = ListCommitsArgs;
    type Output = Page<CommitSummary>;
    const NAME: &'static str = "github_list_commits";
    const DESCRIPTION: &'static str = "List commits, newest first, from a branch, tag or commit; filtered by a path, an author and a time range.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["owner", "repo"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: ListCommitsArgs,
    ) -> Result<Rendered<Page<CommitSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let req = Request::get(
            "/repos/{owner}/{repo}/commits",
            format!("{}/commits", api::repo(&a.owner, &a.repo)?),
        )
        .query([
            ("sha", a.git_ref),
            ("path", a.path.map(|p| p.trim_matches('/').to_owned())),
            ("author", a.author),
            ("since", a.since),
            ("until", a.until),
        ])
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let out = Page {
            next_cursor: api::next_cursor(&resp),
            items: resp
                .json::<Vec<RawCommit>>()?
                .into_iter()
                .map(CommitSummary::from)
                .collect(),
        };
        let text = render_lines(
            &out,
            |c| {
                format!(
                    "{} {} {} {}",
                    api::short(&c.sha),
                    c.date.get(..10).unwrap_or(&c.date),
                    author_text(c),
                    c.title
                )
            },
            "no matching commits",
        );
        Ok(Rendered { output: out, text })
    }
}
