//! GitLab payloads carry the documented examples' fields; writes and permission answers.

mod common;

use common::*;
use fake_upstream::Kind;
use reqwest::Method;
use serde_json::{Value, json};

/// Field names of the API reference's example responses (doc/api/*.md).
const ISSUE: &[&str] = &[
    "id",
    "iid",
    "project_id",
    "title",
    "description",
    "state",
    "created_at",
    "updated_at",
    "closed_at",
    "closed_by",
    "labels",
    "milestone",
    "assignees",
    "author",
    "assignee",
    "user_notes_count",
    "merge_requests_count",
    "upvotes",
    "downvotes",
    "due_date",
    "confidential",
    "discussion_locked",
    "web_url",
    "time_stats",
    "task_completion_status",
    "has_tasks",
    "task_status",
    "_links",
    "references",
    "moved_to_id",
];
const MR: &[&str] = &[
    "id",
    "iid",
    "project_id",
    "title",
    "description",
    "state",
    "merged_by",
    "merged_at",
    "closed_by",
    "closed_at",
    "created_at",
    "updated_at",
    "target_branch",
    "source_branch",
    "upvotes",
    "downvotes",
    "author",
    "assignee",
    "assignees",
    "source_project_id",
    "target_project_id",
    "labels",
    "work_in_progress",
    "milestone",
    "merge_when_pipeline_succeeds",
    "merge_status",
    "sha",
    "merge_commit_sha",
    "squash_commit_sha",
    "user_notes_count",
    "discussion_locked",
    "should_remove_source_branch",
    "force_remove_source_branch",
    "web_url",
    "references",
    "time_stats",
    "squash",
    "task_completion_status",
    "has_conflicts",
    "blocking_discussions_resolved",
];
const MR_SINGLE: &[&str] = &[
    "subscribed",
    "changes_count",
    "latest_build_started_at",
    "latest_build_finished_at",
    "first_deployed_to_production_at",
    "pipeline",
    "head_pipeline",
    "diff_refs",
    "merge_error",
    "user",
    "detailed_merge_status",
    "draft",
    "reviewers",
];
const PIPELINE: &[&str] = &[
    "id",
    "iid",
    "project_id",
    "status",
    "source",
    "ref",
    "sha",
    "name",
    "web_url",
    "created_at",
    "updated_at",
];
const PIPELINE_FULL: &[&str] = &[
    "before_sha",
    "tag",
    "yaml_errors",
    "user",
    "started_at",
    "finished_at",
    "committed_at",
    "duration",
    "queued_duration",
    "coverage",
    "detailed_status",
];
const JOB: &[&str] = &[
    "commit",
    "coverage",
    "allow_failure",
    "created_at",
    "started_at",
    "finished_at",
    "duration",
    "queued_duration",
    "artifacts_expire_at",
    "tag_list",
    "id",
    "name",
    "pipeline",
    "ref",
    "artifacts",
    "runner",
    "stage",
    "status",
    "failure_reason",
    "tag",
    "web_url",
    "project",
    "user",
];
const FILE: &[&str] = &[
    "file_name",
    "file_path",
    "size",
    "encoding",
    "content",
    "content_sha256",
    "ref",
    "blob_id",
    "commit_id",
    "last_commit_id",
    "execute_filemode",
];
const BRANCH: &[&str] = &[
    "name",
    "merged",
    "protected",
    "default",
    "developers_can_push",
    "developers_can_merge",
    "can_push",
    "web_url",
    "commit",
];
const COMMIT: &[&str] = &[
    "id",
    "short_id",
    "title",
    "author_name",
    "author_email",
    "authored_date",
    "committer_name",
    "committer_email",
    "committed_date",
    "created_at",
    "message",
    "parent_ids",
    "web_url",
];
const NOTE: &[&str] = &[
    "id",
    "body",
    "attachment",
    "author",
    "created_at",
    "updated_at",
    "system",
    "noteable_id",
    "noteable_type",
    "project_id",
    "noteable_iid",
    "resolvable",
    "confidential",
    "internal",
];
const BLOB: &[&str] = &[
    "basename",
    "data",
    "path",
    "filename",
    "id",
    "ref",
    "startline",
    "project_id",
];
const DIFF: &[&str] = &[
    "old_path",
    "new_path",
    "a_mode",
    "b_mode",
    "diff",
    "new_file",
    "renamed_file",
    "deleted_file",
];
const PROJECT: &[&str] = &[
    "id",
    "description",
    "name",
    "name_with_namespace",
    "path",
    "path_with_namespace",
    "created_at",
    "default_branch",
    "tag_list",
    "topics",
    "ssh_url_to_repo",
    "http_url_to_repo",
    "web_url",
    "readme_url",
    "avatar_url",
    "forks_count",
    "star_count",
    "last_activity_at",
    "namespace",
    "visibility",
    "_links",
    "archived",
    "issues_enabled",
    "merge_requests_enabled",
    "open_issues_count",
    "permissions",
    "merge_method",
];
const USER: &[&str] = &[
    "id",
    "username",
    "name",
    "state",
    "avatar_url",
    "web_url",
    "created_at",
    "bio",
    "location",
    "public_email",
    "skype",
    "linkedin",
    "twitter",
    "website_url",
    "organization",
    "last_sign_in_at",
    "confirmed_at",
    "email",
    "two_factor_enabled",
    "is_admin",
];

fn has(v: &Value, fields: &[&str], what: &str) {
    for f in fields {
        assert!(v.get(*f).is_some(), "{what} lacks {f}: {v}");
    }
}

#[tokio::test]
async fn payloads_carry_the_documented_fields() {
    let h = start(Kind::Gitlab).await;
    let a = ALICE_GL;
    let p = "/api/v4/projects/acme%2Fplatform%2Fapi";
    let (_, user) = get_json(&h, a, "/api/v4/user").await;
    has(&user, USER, "user");
    let (_, project) = get_json(&h, a, p).await;
    has(&project, PROJECT, "project");
    // `simple=true` (`BasicProjectDetails`) has no visibility.
    let (_, simple) = get_json(&h, a, "/api/v4/projects?simple=true&membership=true").await;
    assert!(simple[0].get("visibility").is_none(), "{simple}");
    assert!(simple[0]["path_with_namespace"].is_string(), "{simple}");
    let id = project["id"].as_u64().unwrap();
    let (_, by_id) = get_json(&h, a, &format!("/api/v4/projects/{id}")).await;
    assert_eq!(by_id["path_with_namespace"], "acme/platform/api");
    let (_, issues) = get_json(&h, a, &format!("{p}/issues")).await;
    has(&issues[0], ISSUE, "issue");
    let (_, mrs) = get_json(&h, a, &format!("{p}/merge_requests?state=opened")).await;
    has(&mrs[0], MR, "merge request");
    let (_, mr) = get_json(&h, a, &format!("{p}/merge_requests/2")).await;
    has(&mr, MR, "merge request");
    has(&mr, MR_SINGLE, "single merge request");
    has(&mr["head_pipeline"], PIPELINE_FULL, "head pipeline");
    let (_, diffs) = get_json(&h, a, &format!("{p}/merge_requests/2/diffs")).await;
    has(&diffs[0], DIFF, "diff");
    assert!(
        diffs
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["new_file"] == true)
    );
    let (_, pipes) = get_json(&h, a, &format!("{p}/pipelines?ref=feature/health")).await;
    has(&pipes[0], PIPELINE, "pipeline");
    let pid = pipes[0]["id"].as_u64().unwrap();
    let (_, jobs) = get_json(&h, a, &format!("{p}/pipelines/{pid}/jobs?scope[]=failed")).await;
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    has(&jobs[0], JOB, "job");
    let trace = call(
        &h,
        a,
        Method::GET,
        &format!("{p}/jobs/{}/trace", jobs[0]["id"]),
        None,
    )
    .await;
    assert!(
        trace
            .text()
            .await
            .unwrap()
            .contains("result of w.Write call not checked")
    );
    let (_, file) = get_json(
        &h,
        a,
        &format!("{p}/repository/files/main.go?ref=feature%2Fhealth"),
    )
    .await;
    has(&file, FILE, "file");
    let (_, branches) = get_json(&h, a, &format!("{p}/repository/branches")).await;
    has(&branches[0], BRANCH, "branch");
    has(&branches[0]["commit"], COMMIT, "commit");
    let (_, commits) = get_json(
        &h,
        a,
        &format!("{p}/repository/commits?ref_name=feature/health&path=main.go"),
    )
    .await;
    assert_eq!(commits.as_array().unwrap().len(), 2);
    let (_, notes) = get_json(&h, a, &format!("{p}/issues/1/notes")).await;
    has(&notes[0], NOTE, "note");
    let (_, blobs) = get_json(
        &h,
        a,
        "/api/v4/projects/acme%2Fwidgets/search?scope=blobs&search=unwrap",
    )
    .await;
    has(&blobs[0], BLOB, "blob");
    h.stop().await;
}

#[tokio::test]
async fn pagination_headers() {
    let h = start(Kind::Gitlab).await;
    let r = call(
        &h,
        ALICE_GL,
        Method::GET,
        "/api/v4/projects/acme%2Fwidgets/repository/branches?per_page=2",
        None,
    )
    .await;
    let hd = r.headers();
    assert_eq!(
        (
            hd["x-page"].to_str().unwrap(),
            hd["x-per-page"].to_str().unwrap(),
            hd["x-total"].to_str().unwrap()
        ),
        ("1", "2", "5")
    );
    assert_eq!(
        (
            hd["x-next-page"].to_str().unwrap(),
            hd["x-total-pages"].to_str().unwrap()
        ),
        ("2", "3")
    );
    assert!(hd["link"].to_str().unwrap().contains("rel=\"next\""));
    assert!(hd.contains_key("ratelimit-remaining"));
    h.stop().await;
}

#[tokio::test]
async fn writes_and_permissions() {
    let h = start(Kind::Gitlab).await;
    let w = "/api/v4/projects/acme%2Fwidgets";
    let (s, v) = get_json(&h, CAROL_GL, "/api/v4/projects/acme%2Finfra").await;
    assert_eq!(
        (s, v["message"].as_str()),
        (404, Some("404 Project Not Found"))
    );
    assert_eq!(
        get_json(&h, "nope", "/api/v4/user").await,
        (401, json!({"message": "401 Unauthorized"}))
    );
    // Reporter bob cannot merge; alice can; merging twice is 405.
    assert_eq!(
        call(
            &h,
            BOB_GL,
            Method::PUT,
            &format!("{w}/merge_requests/6/merge"),
            None
        )
        .await
        .status(),
        401
    );
    let bad_sha = call(
        &h,
        ALICE_GL,
        Method::PUT,
        &format!("{w}/merge_requests/6/merge"),
        Some(json!({"sha": "abc"})),
    )
    .await;
    assert_eq!(bad_sha.status(), 409);
    let ok = call(
        &h,
        ALICE_GL,
        Method::PUT,
        &format!("{w}/merge_requests/6/merge"),
        None,
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["state"], "merged");
    assert_eq!(
        call(
            &h,
            ALICE_GL,
            Method::PUT,
            &format!("{w}/merge_requests/6/merge"),
            None
        )
        .await
        .status(),
        405
    );
    // Approve: once, then 304 Not Modified (current GitLab), and the approval state says so.
    assert_eq!(
        call(
            &h,
            ALICE_GL,
            Method::POST,
            &format!("{w}/merge_requests/7/approve"),
            None
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        call(
            &h,
            ALICE_GL,
            Method::POST,
            &format!("{w}/merge_requests/7/approve"),
            None
        )
        .await
        .status(),
        304
    );
    let (status, approvals) =
        get_json(&h, ALICE_GL, &format!("{w}/merge_requests/7/approvals")).await;
    assert_eq!(status, 200);
    assert_eq!(approvals["user_has_approved"], true, "{approvals}");
    assert_eq!(approvals["user_can_approve"], false, "{approvals}");
    // Branches and merge requests.
    let b = call(
        &h,
        ALICE_GL,
        Method::POST,
        &format!("{w}/repository/branches?branch=topic&ref=main"),
        None,
    )
    .await;
    assert_eq!(b.status(), 201);
    let again = call(
        &h,
        ALICE_GL,
        Method::POST,
        &format!("{w}/repository/branches?branch=topic&ref=main"),
        None,
    )
    .await;
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        json!({"message": "Branch already exists"})
    );
    let dup = call(&h, ALICE_GL, Method::POST, &format!("{w}/merge_requests"), Some(json!({"source_branch": "feature/fast-render", "target_branch": "main", "title": "dup"}))).await;
    assert_eq!(dup.status(), 409);
    assert_eq!(
        call(
            &h,
            ALICE_GL,
            Method::DELETE,
            &format!("{w}/repository/branches/topic"),
            None
        )
        .await
        .status(),
        204
    );
    // Issues: create, close, relabel; list shows the change.
    let created = call(
        &h,
        CAROL_GL,
        Method::POST,
        &format!("{w}/issues"),
        Some(json!({"title": "From carol", "labels": "bug"})),
    )
    .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["labels"], json!([]), "a guest's labels are dropped");
    let iid = created["iid"].as_u64().unwrap();
    let put = call(
        &h,
        BOB_GL,
        Method::PUT,
        &format!("{w}/issues/{iid}"),
        Some(json!({"state_event": "close", "add_labels": "bug"})),
    )
    .await;
    let put: Value = put.json().await.unwrap();
    assert_eq!(
        (put["state"].as_str(), put["labels"].clone()),
        (Some("closed"), json!(["bug"]))
    );
    let (_, closed) = get_json(&h, ALICE_GL, &format!("{w}/issues?state=closed")).await;
    assert!(closed.as_array().unwrap().iter().any(|i| i["iid"] == iid));
    let missing = call(
        &h,
        ALICE_GL,
        Method::POST,
        &format!("{w}/issues"),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({"error": "title is missing"})
    );
    h.stop().await;
}
