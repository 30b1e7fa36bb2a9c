//! GitHub Enterprise Server: the `github_*` tools, on the REST API (`/api/v3`).
//!
//! - [`common`]: the instance a call names, the compact issue.
//! - [`account`]: who am I.
//! - [`repos`]: find repositories.
//! - [`code`]: read a file or directory, search code.
//! - [`branches`]: list, create and delete branches; list commits.
//! - [`issues`]: list, search, read, open, update, comment.
//! - [`pulls`]: list, summarise and open pull requests.
//! - [`diff`]: a pull request's bounded per-file diff.
//! - [`reviews`]: review and merge pull requests.
//! - [`actions`]: CI runs and the tail of a failed job's log.

pub mod account;
pub mod actions;
pub mod branches;
pub mod code;
pub mod common;
pub mod diff;
pub mod issues;
pub mod pulls;
pub mod repos;
pub mod reviews;
#[cfg(test)]
mod schema_examples;

use crate::tools::tool::{DynTool, erase};

/// Every GitHub tool.
pub fn tools() -> Vec<Box<dyn DynTool>> {
    vec![
        erase(account::Whoami),
        erase(repos::SearchRepositories),
        erase(code::GetFile),
        erase(code::SearchCode),
        erase(branches::ListBranches),
        erase(branches::CreateBranch),
        erase(branches::DeleteBranch),
        erase(branches::ListCommits),
        erase(issues::ListIssues),
        erase(issues::SearchIssues),
        erase(issues::GetIssue),
        erase(issues::CreateIssue),
        erase(issues::UpdateIssue),
        erase(issues::CommentOnIssue),
        erase(pulls::ListPullRequests),
        erase(pulls::GetPullRequest),
        erase(diff::GetPullRequestDiff),
        erase(pulls::CreatePullRequest),
        erase(reviews::ReviewPullRequest),
        erase(reviews::MergePullRequest),
        erase(actions::ListWorkflowRuns),
        erase(actions::GetFailedJobLog),
    ]
}
