//! Branch tools: list a project's branches, create one from a ref, delete one.

use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::{CallFailure, PreviewOutcome};

use super::common;
use super::repository::{RawCommit, default_branch};
use crate::providers::Instance;
use crate::providers::gitlab::api;
use crate::providers::http::Request;
use crate::providers::page::{Page, page_query, render_lines};
use crate::providers::path::seg;
use crate::tools::tool::{
    CREATE, DESTRUCTIVE, Hints, READ, Rendered, Tool, ToolCall, effect, quoted, stale,
};

/// A branch, compactly.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BranchSummary {
    /// Name.
    pub name: String,
    /// Short id of its head commit.
    pub sha: String,
    /// Title of its head commit.
    pub title: String,
    /// Date of its head commit, ISO 8601.
    pub committed_at: String,
    /// Whether it is the default branch.
    pub default: bool,
    /// Whether it is protected.
    pub protected: bool,
    /// Whether it is merged into the default branch.
    pub merged: bool,
}

#[derive(Deserialize)]
struct RawBranch {
    name: String,
    commit: Option<RawCommit>,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    protected: bool,
    #[serde(default)]
    merged: bool,
}

impl From<RawBranch> for BranchSummary {
    fn from(b: RawBranch) -> Self {
        let (sha, title, committed_at) = match b.commit {
            Some(c) => (
                api::short(&c.id),
                c.title,
                c.committed_date.or(c.created_at).unwrap_or_default(),
            ),
            None => Default::default(),
        };
        Self {
            name: b.name,
            sha,
            title,
            committed_at,
            default: b.default,
            protected: b.protected,
            merged: b.merged,
        }
    }
}

fn branch_line(b: &BranchSummary) -> String {
    let mut flags = Vec::new();
    if b.default {
        flags.push("default");
    }
    if b.protected {
        flags.push("protected");
    }
    if b.merged {
        flags.push("merged");
    }
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", flags.join(", "))
    };
    format!("{}{flags} {} {}", b.name, b.sha, b.title)
}

/// Arguments of `gitlab_list_branches`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Only branches whose name contains this.
    pub search: Option<String>,
    /// Branches per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `gitlab_list_branches`.
pub struct ListBranches;

impl Tool for ListBranches {
    type Args = ListArgs;
    type Output = Page<BranchSummary>;
    const NAME: &'static str = "gitlab_list_branches";
    const DESCRIPTION: &'static str = "List a GitLab project's branches with their head commit, and which are default, protected or already merged.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &["project"];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: ListArgs,
    ) -> Result<Rendered<Page<BranchSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let req = Request::get(
            "/projects/{id}/repository/branches",
            format!("{}/repository/branches", api::project(&a.project)?),
        )
        .query([("search", a.search.filter(|s| !s.is_empty()))])
        .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let next_cursor = api::next_cursor(&resp);
        let items: Vec<BranchSummary> = resp
            .json::<Vec<RawBranch>>()?
            .into_iter()
            .map(BranchSummary::from)
            .collect();
        let output = Page { items, next_cursor };
        let text = render_lines(&output, branch_line, "no matching branches");
        Ok(Rendered { output, text })
    }
}

/// Arguments of `gitlab_create_branch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Name of the new branch.
    pub branch: String,
    /// Branch, tag or commit to start it from (default: the default branch).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
}

/// `gitlab_create_branch`.
pub struct CreateBranch;

impl Tool for CreateBranch {
    type Args = CreateArgs;
    type Output = BranchSummary;
    const NAME: &'static str = "gitlab_create_branch";
    const DESCRIPTION: &'static str =
        "Create a branch in a GitLab project, from the default branch or a given ref.";
    const HINTS: Hints = CREATE;
    const TARGET: &'static [&'static str] = &["project"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: CreateArgs,
    ) -> Result<Rendered<BranchSummary>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        common::require("branch", &a.branch)?;
        let from = match a.git_ref.filter(|r| !r.trim().is_empty()) {
            Some(r) => r,
            None => default_branch(cx, inst, &a.project).await?,
        };
        // Not repeated blindly: after a lost answer the branch may exist already.
        let req = Request::write(
            Method::POST,
            "/projects/{id}/repository/branches",
            format!("{}/repository/branches", api::project(&a.project)?),
            serde_json::json!({"branch": a.branch, "ref": from}),
            false,
        );
        let branch = BranchSummary::from(cx.ok(inst, &req).await?.json::<RawBranch>()?);
        let text = format!(
            "created {} in {} from {from} at {}",
            branch.name, a.project, branch.sha
        );
        Ok(Rendered {
            output: branch,
            text,
        })
    }
}

/// Arguments of `gitlab_delete_branch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// The branch to delete (not the default branch; protected ones need a maintainer).
    pub branch: String,
}

/// A deleted branch.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    /// Project path.
    pub project: String,
    /// The branch that is gone.
    pub deleted: String,
}

/// The commit `branch` of `project` points at.
async fn branch_head(
    cx: &ToolCall<'_>,
    inst: &Instance,
    project: &str,
    branch: &str,
) -> Result<String, CallFailure> {
    let req = Request::get(
        "/projects/{id}/repository/branches/{branch}",
        format!(
            "{}/repository/branches/{}",
            api::project(project)?,
            seg(branch)?
        ),
    );
    let raw: RawBranch = cx.ok(inst, &req).await?.json()?;
    Ok(raw.commit.map(|c| c.id).unwrap_or_default())
}

/// `gitlab_delete_branch`.
pub struct DeleteBranch;

impl Tool for DeleteBranch {
    type Args = DeleteArgs;
    type Output = Deleted;
    const NAME: &'static str = "gitlab_delete_branch";
    const DESCRIPTION: &'static str = "Delete a branch of a GitLab project. Commits only on that branch become unreachable: check it is merged (gitlab_list_branches) first.";
    const HINTS: Hints = DESTRUCTIVE;
    const TARGET: &'static [&'static str] = &["project"];

    async fn preview(&self, cx: &ToolCall<'_>, a: DeleteArgs) -> PreviewOutcome {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let sha = branch_head(cx, inst, &a.project, &a.branch).await?;
        let text = format!(
            "delete branch {} of {}, which points at commit {sha}",
            quoted(&a.branch),
            a.project
        );
        Ok(effect(text, [("branch_sha", sha.as_str())]))
    }

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: DeleteArgs,
    ) -> Result<Rendered<Deleted>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        // GitLab deletes whatever the branch points at: check it is still the commit
        // the user approved.
        if let Some(bound) = cx.bound("branch_sha") {
            let sha = branch_head(cx, inst, &a.project, &a.branch).await?;
            if sha != bound {
                return Err(stale(&format!(
                    "branch {} of {} (it now points at {sha})",
                    a.branch, a.project
                )));
            }
        }
        let mut req = Request::get(
            "/projects/{id}/repository/branches/{branch}",
            format!(
                "{}/repository/branches/{}",
                api::project(&a.project)?,
                seg(&a.branch)?
            ),
        );
        req.method = Method::DELETE;
        // A repeat after a lost answer would read as "not found": say what happened
        // instead of retrying.
        req.idempotent = false;
        cx.ok(inst, &req).await?;
        let text = format!("deleted branch {} of {}", a.branch, a.project);
        Ok(Rendered {
            output: Deleted {
                project: a.project,
                deleted: a.branch,
            },
            text,
        })
    }
}
