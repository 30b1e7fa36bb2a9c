//! GitLab: the `gitlab_*` tools, on the REST API (`/api/v4`). Every project-scoped tool
//! takes the project's full path (`group/sub/project`) as `project`, its policy target.
//!
//! - [`common`]: the instance a call names, user lookups, the compact issue, merge request
//!   and note.
//! - [`account`]: who am I.
//! - [`projects`]: find projects.
//! - [`repository`]: files, commits, code search.
//! - [`branches`]: list, create, delete.
//! - [`issues`]: list, search, read, open, update, comment.
//! - [`merge_requests`]: list, read with changed files and pipeline, diff.
//! - [`merge_request_actions`]: open, review (approve, comment), merge.
//! - [`pipelines`]: list, a failed job's log.

pub mod account;
pub mod branches;
pub mod common;
pub mod issues;
pub mod merge_request_actions;
pub mod merge_requests;
pub mod pipelines;
pub mod projects;
pub mod repository;

use crate::tools::tool::{DynTool, erase};

/// Every GitLab tool.
pub fn tools() -> Vec<Box<dyn DynTool>> {
    vec![
        erase(account::Whoami),
        erase(projects::SearchProjects),
        erase(repository::GetFile),
        erase(repository::ListCommits),
        erase(repository::SearchCode),
        erase(branches::ListBranches),
        erase(branches::CreateBranch),
        erase(branches::DeleteBranch),
        erase(issues::ListIssues),
        erase(issues::SearchIssues),
        erase(issues::GetIssue),
        erase(issues::CreateIssue),
        erase(issues::UpdateIssue),
        erase(issues::CommentOnIssue),
        erase(merge_requests::ListMergeRequests),
        erase(merge_requests::GetMergeRequest),
        erase(merge_requests::GetMergeRequestDiff),
        erase(merge_request_actions::CreateMergeRequest),
        erase(merge_request_actions::ReviewMergeRequest),
        erase(merge_request_actions::MergeMergeRequest),
        erase(pipelines::ListPipelines),
        erase(pipelines::GetFailedJobLog),
    ]
}
