//! Merge request actions: open one, review one (approve and/or comment), merge one at the
//! head commit that was reviewed.

use reqwest::{Method, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::{CallFailure, PreviewOutcome};
use shared::wire::ErrorCode;

use super::common::{self, MergeRequestSummary, Posted, merge_request_line};
use super::merge_requests::path;
use super::repository::default_branch;
use crate::providers::Instance;
use crate::providers::gitlab::api::{self, RawMergeRequest, RawNote};
use crate::providers::http::{Request, Response};
use crate::tools::tool::{
    CREATE, DESTRUCTIVE, Hints, Rendered, Tool, ToolCall, effect, quoted, stale,
};

/// What a confirmation shows of a merge request, read as the user just before asking:
/// `project!iid “title” from branch “source” into “target”, head commit sha`, and the head.
async fn describe(
    cx: &ToolCall<'_>,
    inst: &Instance,
    project: &str,
    iid: u64,
) -> Result<(String, String), CallFailure> {
    let req = Request::get("/projects/{id}/merge_requests/{iid}", path(project, iid)?);
    let raw: RawMergeRequest = cx.ok(inst, &req).await?.json()?;
    let head = raw.sha.unwrap_or_default();
    let state = if raw.state == "opened" {
        String::new()
    } else {
        format!(" [{}]", raw.state)
    };
    let text = format!(
        "merge request {project}!{iid} {}{state} from branch {} into {}, head commit {head}",
        quoted(&raw.title),
        quoted(&raw.source_branch),
        quoted(&raw.target_branch)
    );
    Ok((text, head))
}

/// A note for the user when the agent named another commit than the head.
fn other_commit(named: Option<&str>, head: &str) -> String {
    match named {
        Some(n) if n != head => {
            format!(" (the agent named commit {n}, which is not the head: GitLab will refuse)")
        }
        _ => String::new(),
    }
}

/// Arguments of `gitlab_create_merge_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// The branch with the changes.
    pub source_branch: String,
    /// The branch to merge into (default: the project's default branch).
    pub target_branch: Option<String>,
    /// Title.
    pub title: String,
    /// Markdown description.
    pub description: Option<String>,
    /// Open it as a draft (not mergeable until marked ready).
    #[serde(default)]
    pub draft: bool,
    /// Labels to set.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Usernames to assign.
    #[serde(default)]
    pub assignees: Vec<String>,
    /// Usernames to ask for review.
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// Delete the source branch once merged.
    pub remove_source_branch: Option<bool>,
}

/// `gitlab_create_merge_request`.
pub struct CreateMergeRequest;

impl Tool for CreateMergeRequest {
    type Args = CreateArgs;
    type Output = MergeRequestSummary;
    const NAME: &'static str = "gitlab_create_merge_request";
    const DESCRIPTION: &'static str = "Open a GitLab merge request from a source branch into a target branch (default: the default branch), optionally as a draft, with labels, assignees and reviewers.";
    const HINTS: Hints = CREATE;
    const TARGET: &'static [&'static str] = &["project"];

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: CreateArgs,
    ) -> Result<Rendered<MergeRequestSummary>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        common::require("title", &a.title)?;
        common::require("source_branch", &a.source_branch)?;
        let target = match a.target_branch.filter(|t| !t.trim().is_empty()) {
            Some(t) => t,
            None => default_branch(cx, inst, &a.project).await?,
        };
        let title = if a.draft && !a.title.starts_with("Draft:") {
            format!("Draft: {}", a.title)
        } else {
            a.title
        };
        let mut body = serde_json::Map::new();
        body.insert("source_branch".into(), a.source_branch.into());
        body.insert("target_branch".into(), target.into());
        body.insert("title".into(), title.into());
        if let Some(d) = a.description {
            body.insert("description".into(), d.into());
        }
        if !a.labels.is_empty() {
            body.insert("labels".into(), a.labels.join(",").into());
        }
        if !a.assignees.is_empty() {
            let ids = common::user_ids(cx, inst, &a.assignees).await?;
            body.insert("assignee_ids".into(), serde_json::json!(ids));
        }
        if !a.reviewers.is_empty() {
            let ids = common::user_ids(cx, inst, &a.reviewers).await?;
            body.insert("reviewer_ids".into(), serde_json::json!(ids));
        }
        if let Some(r) = a.remove_source_branch {
            body.insert("remove_source_branch".into(), r.into());
        }
        let req = Request::write(
            Method::POST,
            "/projects/{id}/merge_requests",
            format!("{}/merge_requests", api::project(&a.project)?),
            serde_json::Value::Object(body),
            false,
        );
        let raw: RawMergeRequest = cx.ok(inst, &req).await?.json()?;
        let mr = MergeRequestSummary::from(&raw);
        let text = format!(
            "opened {}\n{}",
            merge_request_line(&mr),
            mr.url.as_deref().unwrap_or_default()
        );
        Ok(Rendered { output: mr, text })
    }
}

/// Arguments of `gitlab_review_merge_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Merge request number within the project (`iid`).
    pub iid: u64,
    /// Approve it.
    #[serde(default)]
    pub approve: bool,
    /// A review comment (Markdown).
    pub body: Option<String>,
    /// With `approve`: approve only if the source branch's head is still this commit (the
    /// `sha` of `gitlab_get_merge_request`).
    pub sha: Option<String>,
}

/// What the review did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Reviewed {
    /// Whether it was approved by this call.
    pub approved: bool,
    /// Whether the user had approved it already (GitLab changed nothing; not an error).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub already_approved: bool,
    /// The comment posted, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<Posted>,
}

/// The failure of a refused approval or merge, said in GitLab's terms.
fn refused(inst: &Instance, resp: &Response, what: &str, why_401: &str) -> CallFailure {
    let upstream = resp.message().unwrap_or_else(|| resp.status.to_string());
    match resp.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CallFailure::new(
            ErrorCode::Forbidden,
            format!(
                "{} refused the {what} for this user: {why_401} ({upstream})",
                inst.config.name
            ),
        ),
        StatusCode::CONFLICT => CallFailure::new(
            ErrorCode::Rejected,
            format!(
                "{} rejected the {what}: the source branch has moved past the given sha; read the merge request again and review what changed ({upstream})",
                inst.config.name
            ),
        ),
        _ => api::failure(inst, resp),
    }
}

/// Whether the calling user has approved the merge request (`user_has_approved` of
/// `GET .../approvals`); `false` when that cannot be read.
async fn has_approved(cx: &ToolCall<'_>, inst: &Instance, base: &str) -> bool {
    #[derive(Deserialize)]
    struct Approvals {
        #[serde(default)]
        user_has_approved: bool,
    }
    let req = Request::get(
        "/projects/{id}/merge_requests/{iid}/approvals",
        format!("{base}/approvals"),
    );
    match cx.ok(inst, &req).await {
        Ok(resp) => resp.json::<Approvals>().is_ok_and(|a| a.user_has_approved),
        Err(_) => false,
    }
}

/// `gitlab_review_merge_request`.
pub struct ReviewMergeRequest;

impl Tool for ReviewMergeRequest {
    type Args = ReviewArgs;
    type Output = Reviewed;
    const NAME: &'static str = "gitlab_review_merge_request";
    const DESCRIPTION: &'static str = "Review a GitLab merge request: approve it (optionally only at the head commit you reviewed) and/or post a review comment.";
    const HINTS: Hints = CREATE;
    const TARGET: &'static [&'static str] = &["project"];
    // An approval lets a merge request merge where approval rules gate it: the user
    // confirms it like a merge.
    const CONFIRM_WHEN: &'static [(&'static str, &'static str)] = &[("approve", "true")];

    async fn preview(&self, cx: &ToolCall<'_>, a: ReviewArgs) -> PreviewOutcome {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let (mr, head) = describe(cx, inst, &a.project, a.iid).await?;
        let verb = match (a.approve, a.body.is_some()) {
            (true, true) => "approve and comment on",
            (true, false) => "approve",
            (false, _) => "comment on",
        };
        let text = format!("{verb} {mr}{}", other_commit(a.sha.as_deref(), &head));
        Ok(effect(text, [("head_sha", head.as_str())]))
    }

    async fn run(
        &self,
        cx: &ToolCall<'_>,
        a: ReviewArgs,
    ) -> Result<Rendered<Reviewed>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        // GitLab approves only if the head is still this commit (409 otherwise).
        let approved = cx.approved_head(a.sha.as_deref())?;
        let body = a.body.filter(|b| !b.trim().is_empty());
        if !a.approve && body.is_none() {
            return Err(CallFailure::new(
                ErrorCode::InvalidArguments,
                "nothing to do: set approve, give a body, or both",
            ));
        }
        let base = path(&a.project, a.iid)?;
        let mut text = Vec::new();
        let mut already = false;
        if a.approve {
            let mut payload = serde_json::Map::new();
            if let Some(sha) = approved.or(a.sha.as_deref()) {
                payload.insert("sha".into(), sha.into());
            }
            // A repeat after a lost answer would read as "already approved" (401).
            let req = Request::write(
                Method::POST,
                "/projects/{id}/merge_requests/{iid}/approve",
                format!("{base}/approve"),
                serde_json::Value::Object(payload),
                false,
            );
            let resp = cx.send(inst, &req).await?;
            if resp.status == StatusCode::CONFLICT && approved.is_some() {
                return Err(stale(&format!(
                    "merge request {}!{} (its head commit moved)",
                    a.project, a.iid
                )));
            }
            already = match resp.status {
                s if s.is_success() => false,
                // GitLab's `not_modified!` when this user has approved already.
                StatusCode::NOT_MODIFIED => true,
                // Versions before it answered 401 for that too: ask whether it is so.
                StatusCode::UNAUTHORIZED if has_approved(cx, inst, &base).await => true,
                _ => {
                    return Err(refused(
                        inst,
                        &resp,
                        "approval",
                        "GitLab refuses an approval by the author or by a user who may not approve here",
                    ));
                }
            };
            text.push(if already {
                format!("already approved by you: {}!{}", a.project, a.iid)
            } else {
                format!("approved {}!{}", a.project, a.iid)
            });
        }
        let comment = match body {
            None => None,
            Some(b) => {
                let req = Request::write(
                    Method::POST,
                    "/projects/{id}/merge_requests/{iid}/notes",
                    format!("{base}/notes"),
                    serde_json::json!({"body": b}),
                    false,
                );
                let posted = cx.ok(inst, &req).await;
                let note: RawNote = match posted.and_then(|r| r.json()) {
                    Ok(n) => n,
                    // Say that the approval stands, so the agent does not approve again.
                    Err(mut f) if a.approve => {
                        f.message = format!("approved, but the comment failed: {}", f.message);
                        return Err(f);
                    }
                    Err(f) => return Err(f),
                };
                let url = api::note_url(inst, &a.project, "merge_requests", a.iid, note.id);
                text.push(format!("commented on {}!{}: {url}", a.project, a.iid));
                Some(Posted {
                    id: note.id,
                    url,
                    created_at: note.created_at,
                })
            }
        };
        Ok(Rendered {
            output: Reviewed {
                approved: a.approve && !already,
                already_approved: already,
                comment,
            },
            text: text.join("\n"),
        })
    }
}

/// Arguments of `gitlab_merge_merge_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeArgs {
    /// The GitLab instance; needed only when the connector has several.
    pub instance: Option<String>,
    /// Project path (`group/sub/project`).
    pub project: String,
    /// Merge request number within the project (`iid`).
    pub iid: u64,
    /// The head commit you reviewed (the `sha` of `gitlab_get_merge_request`): GitLab
    /// refuses the merge if the source branch has moved since.
    pub sha: String,
    /// Squash its commits into one.
    pub squash: Option<bool>,
    /// Delete the source branch after merging.
    pub remove_source_branch: Option<bool>,
    /// The merge commit's message (default: GitLab's).
    pub commit_message: Option<String>,
}

/// A merged merge request.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Merged {
    /// Project path.
    pub project: String,
    /// Merge request number.
    pub iid: u64,
    /// Its state now (`merged`).
    pub state: String,
    /// The merge (or squash) commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_commit_sha: Option<String>,
    /// Web URL.
    pub url: String,
}

/// The merge method a confirmation names.
fn merge_method(squash: Option<bool>) -> &'static str {
    if squash == Some(true) {
        "squash"
    } else {
        "merge commit (or the project's default)"
    }
}

/// `gitlab_merge_merge_request`.
pub struct MergeMergeRequest;

impl Tool for MergeMergeRequest {
    type Args = MergeArgs;
    type Output = Merged;
    const NAME: &'static str = "gitlab_merge_merge_request";
    const DESCRIPTION: &'static str = "Merge a GitLab merge request into its target branch, exactly at the head commit you reviewed (sha); optionally squash and delete the source branch.";
    const HINTS: Hints = DESTRUCTIVE;
    const TARGET: &'static [&'static str] = &["project"];

    async fn preview(&self, cx: &ToolCall<'_>, a: MergeArgs) -> PreviewOutcome {
        let inst = common::instance(cx, a.instance.as_deref())?;
        let (mr, head) = describe(cx, inst, &a.project, a.iid).await?;
        let method = merge_method(a.squash);
        let text = format!(
            "merge {mr}, merge method {method}{}{}",
            if a.remove_source_branch == Some(true) {
                ", then delete the source branch"
            } else {
                ""
            },
            other_commit(Some(&a.sha), &head)
        );
        Ok(effect(
            text,
            [("head_sha", head.as_str()), ("merge_method", method)],
        ))
    }

    async fn run(&self, cx: &ToolCall<'_>, a: MergeArgs) -> Result<Rendered<Merged>, CallFailure> {
        let inst = common::instance(cx, a.instance.as_deref())?;
        common::require("sha", &a.sha)?;
        if cx
            .bound("merge_method")
            .is_some_and(|m| m != merge_method(a.squash))
        {
            return Err(stale("the merge method"));
        }
        let approved = cx.approved_head(Some(&a.sha))?;
        let mut body = serde_json::Map::new();
        body.insert("sha".into(), a.sha.clone().into());
        if let Some(s) = a.squash {
            body.insert("squash".into(), s.into());
        }
        if let Some(r) = a.remove_source_branch {
            body.insert("should_remove_source_branch".into(), r.into());
        }
        if let Some(m) = a.commit_message.filter(|m| !m.trim().is_empty()) {
            body.insert("merge_commit_message".into(), m.into());
        }
        let req = Request::write(
            Method::PUT,
            "/projects/{id}/merge_requests/{iid}/merge",
            format!("{}/merge", path(&a.project, a.iid)?),
            serde_json::Value::Object(body),
            false,
        );
        let resp = cx.send(inst, &req).await?;
        match resp.status {
            s if s.is_success() => {}
            StatusCode::METHOD_NOT_ALLOWED => {
                return Err(CallFailure::new(
                    ErrorCode::Rejected,
                    format!(
                        "{} cannot merge {}!{} now: it is a draft, closed, or blocked by its pipeline or approvals (see gitlab_get_merge_request's merge_status)",
                        inst.config.name, a.project, a.iid
                    ),
                ));
            }
            StatusCode::CONFLICT if approved.is_some() => {
                return Err(stale(&format!(
                    "merge request {}!{} (its head commit moved)",
                    a.project, a.iid
                )));
            }
            _ => {
                return Err(refused(
                    inst,
                    &resp,
                    "merge",
                    "they may not merge into this target branch here",
                ));
            }
        }
        let raw: RawMergeRequest = resp.json()?;
        let merged = Merged {
            project: a.project,
            iid: raw.iid,
            state: raw.state,
            merge_commit_sha: raw.merge_commit_sha,
            url: raw.web_url,
        };
        let text = match (merged.state.as_str(), &merged.merge_commit_sha) {
            ("merged", Some(c)) => format!(
                "merged {}!{} as {}",
                merged.project,
                merged.iid,
                api::short(c)
            ),
            ("merged", None) => format!("merged {}!{}", merged.project, merged.iid),
            (state, _) => format!(
                "{}!{} is {state}: GitLab accepted the merge and will complete it when it can",
                merged.project, merged.iid
            ),
        };
        Ok(Rendered {
            output: merged,
            text,
        })
    }
}
