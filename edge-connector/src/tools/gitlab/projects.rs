//! `gitlab_search_projects`: find projects by name or path, or list the caller's own.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;

use super::common;
use crate::providers::gitlab::api;
use crate::providers::http::Request;
use crate::providers::page::{Page, page_query, render_lines};
use crate::tools::tool::{Hints, READ, Rendered, Tool, ToolCall, clip};

/// Arguments of `gitlab_search_projects`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Words to look for in project names, paths (including their groups) and
    /// descriptions; without it, the projects the caller is a member of.
    pub query: Option<String>,
    /// Only projects the caller is a member of (default: true without `query`, false with
    /// one).
    pub membership: Option<bool>,
    /// Projects per page (default 20, at most 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A project, compactly.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProjectSummary {
    /// Full path (`group/sub/project`): what the other tools take as `project`.
    pub project: String,
    /// Description (long ones truncated).
    pub description: String,
    /// Default branch.
    pub default_branch: Option<String>,
    /// Last activity, ISO 8601.
    pub last_activity_at: Option<String>,
}

#[derive(Deserialize)]
struct RawProject {
    path_with_namespace: String,
    description: Option<String>,
    default_branch: Option<String>,
    last_activity_at: Option<String>,
}

/// Longest project description kept.
const MAX_DESCRIPTION: usize = 200;

/// `gitlab_search_projects`.
pub struct SearchProjects;

impl Tool for SearchProjects {
    type Args = Args;
    type Output = Page<ProjectSummary>;
    const NAME: &'static str = "gitlab_search_projects";
    const DESCRIPTION: &'static str = "Find GitLab projects by words in their name, group path or description, or list the projects you are a member of; gives each project's full path for the other gitlab_* tools.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &[];
    const SELECTABLE: bool = true;

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: Args,
    ) -> Result<Rendered<Page<ProjectSummary>>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let query = a.query.filter(|q| !q.trim().is_empty());
        let membership = a.membership.unwrap_or(query.is_none());
        // `simple` drops the permissions, links and settings that make up most of a
        // project's payload; it has no `visibility` either, so none is shown.
        let req = Request::get("/projects", "projects".into())
            .query([
                ("simple", Some("true".into())),
                ("membership", membership.then(|| "true".into())),
                ("search_namespaces", query.is_some().then(|| "true".into())),
                ("search", query),
                ("order_by", Some("last_activity_at".into())),
                ("sort", Some("desc".into())),
            ])
            .query(page_query(a.limit, a.cursor.as_deref())?);
        let resp = cx.ok(inst, &req).await?;
        let next_cursor = api::next_cursor(&resp);
        let items: Vec<ProjectSummary> = resp
            .json::<Vec<RawProject>>()?
            .into_iter()
            .map(|p| ProjectSummary {
                project: p.path_with_namespace,
                description: clip(
                    p.description.as_deref().unwrap_or_default(),
                    MAX_DESCRIPTION,
                )
                .0,
                default_branch: p.default_branch,
                last_activity_at: p.last_activity_at,
            })
            .collect();
        let output = Page { items, next_cursor };
        let text = render_lines(
            &output,
            |p| {
                let mut l = p.project.clone();
                if !p.description.is_empty() {
                    l.push_str(&format!(": {}", p.description));
                }
                l
            },
            "no matching projects",
        );
        Ok(Rendered { output, text })
    }
}
