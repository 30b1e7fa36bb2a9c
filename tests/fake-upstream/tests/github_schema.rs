//! Every GitHub endpoint the connector calls, checked against the official GHES 3.19
//! response schema (`openapi/ghes-3.19-subset.json`).

mod common;

use common::openapi::Spec;
use common::*;
use fake_upstream::Kind;
use reqwest::Method;
use serde_json::{Value, json};

async fn check(
    h: &fake_upstream::Handle,
    spec: &Spec,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    op: (&str, &str, u16),
) -> Value {
    let r = call(h, token, method, path, body).await;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, op.2, "{path}: {v}");
    let errors = spec.validate(spec.response_schema(op.0, op.1, op.2), &v);
    assert!(errors.is_empty(), "{} {}: {errors:#?}", op.0, op.1);
    v
}

#[tokio::test]
async fn every_endpoint_matches_the_official_schema() {
    let h = start(Kind::Github).await;
    let s = Spec::load();
    let a = ALICE_GH;
    let g = Method::GET;
    let r = "/api/v3/repos/acme/widgets";
    let cases: Vec<(String, (&str, &str, u16))> = vec![
        ("/api/v3/user".into(), ("get", "/user", 200)),
        (
            "/api/v3/user/repos?sort=updated".into(),
            ("get", "/user/repos", 200),
        ),
        (
            "/api/v3/search/repositories?q=org:acme+widgets".into(),
            ("get", "/search/repositories", 200),
        ),
        (r.into(), ("get", "/repos/{owner}/{repo}", 200)),
        (
            format!("{r}/contents/README.md"),
            ("get", "/repos/{owner}/{repo}/contents/{path}", 200),
        ),
        (
            format!("{r}/contents/src?ref=feature/fast-render"),
            ("get", "/repos/{owner}/{repo}/contents/{path}", 200),
        ),
        (
            format!("{r}/branches"),
            ("get", "/repos/{owner}/{repo}/branches", 200),
        ),
        (
            format!("{r}/git/ref/heads/main"),
            ("get", "/repos/{owner}/{repo}/git/ref/{ref}", 200),
        ),
        (
            format!("{r}/commits?sha=feature/fast-render&path=src"),
            ("get", "/repos/{owner}/{repo}/commits", 200),
        ),
        (
            "/api/v3/search/code?q=Widget+repo:acme/widgets".into(),
            ("get", "/search/code", 200),
        ),
        (
            format!("{r}/issues?state=all"),
            ("get", "/repos/{owner}/{repo}/issues", 200),
        ),
        (
            "/api/v3/issues?filter=all&state=all".into(),
            ("get", "/issues", 200),
        ),
        (
            "/api/v3/search/issues?q=repo:acme/widgets+is:open".into(),
            ("get", "/search/issues", 200),
        ),
        (
            format!("{r}/issues/1"),
            ("get", "/repos/{owner}/{repo}/issues/{issue_number}", 200),
        ),
        (
            format!("{r}/issues/1/comments"),
            (
                "get",
                "/repos/{owner}/{repo}/issues/{issue_number}/comments",
                200,
            ),
        ),
        (
            format!("{r}/pulls?state=all"),
            ("get", "/repos/{owner}/{repo}/pulls", 200),
        ),
        (
            format!("{r}/pulls/5"),
            ("get", "/repos/{owner}/{repo}/pulls/{pull_number}", 200),
        ),
        (
            format!("{r}/pulls/5/files"),
            (
                "get",
                "/repos/{owner}/{repo}/pulls/{pull_number}/files",
                200,
            ),
        ),
        (
            format!("{r}/commits/feature%2Ffast-render/check-runs"),
            ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs", 200),
        ),
        (
            format!("{r}/commits/feature%2Ffast-render/status"),
            ("get", "/repos/{owner}/{repo}/commits/{ref}/status", 200),
        ),
        (
            format!("{r}/actions/runs"),
            ("get", "/repos/{owner}/{repo}/actions/runs", 200),
        ),
        (
            "/api/v3/repos/acme/widgets/contents/nope.txt".into(),
            ("get", "/repos/{owner}/{repo}/contents/{path}", 404),
        ),
    ];
    for (path, op) in cases {
        check(&h, &s, a, g.clone(), &path, None, op).await;
    }
    let runs = check(
        &h,
        &s,
        a,
        g.clone(),
        &format!("{r}/actions/runs?status=failure"),
        None,
        ("get", "/repos/{owner}/{repo}/actions/runs", 200),
    )
    .await;
    let run_id = runs["workflow_runs"][0]["id"].as_u64().unwrap();
    let jobs = check(
        &h,
        &s,
        a,
        g.clone(),
        &format!("{r}/actions/runs/{run_id}/jobs"),
        None,
        (
            "get",
            "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
            200,
        ),
    )
    .await;
    assert!(
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["conclusion"] == "failure")
    );

    // Writes.
    let main = call(&h, a, g.clone(), &format!("{r}/git/ref/heads/main"), None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let sha = main["object"]["sha"].as_str().unwrap().to_owned();
    check(
        &h,
        &s,
        a,
        Method::POST,
        &format!("{r}/git/refs"),
        Some(json!({"ref": "refs/heads/tmp", "sha": sha})),
        ("post", "/repos/{owner}/{repo}/git/refs", 201),
    )
    .await;
    check(
        &h,
        &s,
        a,
        Method::POST,
        &format!("{r}/git/refs"),
        Some(json!({"ref": "refs/heads/tmp", "sha": sha})),
        ("post", "/repos/{owner}/{repo}/git/refs", 422),
    )
    .await;
    let del = call(
        &h,
        a,
        Method::DELETE,
        &format!("{r}/git/refs/heads/tmp"),
        None,
    )
    .await;
    assert_eq!(del.status(), 204);
    check(
        &h,
        &s,
        a,
        Method::POST,
        &format!("{r}/issues"),
        Some(json!({"title": "New", "labels": ["bug"], "assignees": ["bob"]})),
        ("post", "/repos/{owner}/{repo}/issues", 201),
    )
    .await;
    check(&h, &s, a, Method::PATCH, &format!("{r}/issues/2"), Some(json!({"state": "closed", "state_reason": "not_planned", "labels": ["enhancement", "wontfix"]})), ("patch", "/repos/{owner}/{repo}/issues/{issue_number}", 200)).await;
    check(
        &h,
        &s,
        a,
        Method::POST,
        &format!("{r}/issues/2/comments"),
        Some(json!({"body": "Closing for now."})),
        (
            "post",
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            201,
        ),
    )
    .await;
    check(&h, &s, BOB_GH, Method::POST, &format!("{r}/pulls/5/reviews"), Some(json!({"event": "COMMENT", "body": "Looks fine", "comments": [{"path": "src/render.rs", "line": 3, "body": "nit"}]})), ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews", 200)).await;
    check(
        &h,
        &s,
        a,
        Method::POST,
        &format!("{r}/pulls/5/reviews"),
        Some(json!({"event": "APPROVE"})),
        (
            "post",
            "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
            422,
        ),
    )
    .await;
    let reviews = check(
        &h,
        &s,
        a,
        g.clone(),
        &format!("{r}/pulls/5/reviews"),
        None,
        (
            "get",
            "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
            200,
        ),
    )
    .await;
    assert_eq!(reviews[0]["state"], "COMMENTED", "{reviews}");
    check(
        &h,
        &s,
        a,
        Method::POST,
        &format!("{r}/git/refs"),
        Some(json!({"ref": "refs/heads/feature/docs", "sha": sha})),
        ("post", "/repos/{owner}/{repo}/git/refs", 201),
    )
    .await;
    check(
        &h,
        &s,
        a,
        Method::POST,
        &format!("{r}/pulls"),
        Some(json!({"title": "x", "head": "stale", "base": "main"})),
        ("post", "/repos/{owner}/{repo}/pulls", 422),
    )
    .await;
    check(
        &h,
        &s,
        a,
        Method::POST,
        &format!("{r}/pulls"),
        Some(json!({"title": "Docs", "head": "feature/fast-render", "base": "main"})),
        ("post", "/repos/{owner}/{repo}/pulls", 422),
    )
    .await;
    check(
        &h,
        &s,
        a,
        Method::PUT,
        &format!("{r}/pulls/7/merge"),
        Some(json!({})),
        (
            "put",
            "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
            405,
        ),
    )
    .await;
    check(
        &h,
        &s,
        a,
        Method::PUT,
        &format!("{r}/pulls/6/merge"),
        Some(json!({"sha": "0000000000000000000000000000000000000000"})),
        (
            "put",
            "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
            409,
        ),
    )
    .await;
    check(
        &h,
        &s,
        a,
        Method::PUT,
        &format!("{r}/pulls/6/merge"),
        Some(json!({"merge_method": "squash"})),
        (
            "put",
            "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
            200,
        ),
    )
    .await;
    let merged = check(
        &h,
        &s,
        a,
        g.clone(),
        &format!("{r}/pulls/6"),
        None,
        ("get", "/repos/{owner}/{repo}/pulls/{pull_number}", 200),
    )
    .await;
    assert_eq!(merged["merged"], true);
    h.stop().await;
}

#[tokio::test]
async fn job_logs_redirect_to_plain_text() {
    let h = start(Kind::Github).await;
    let (_, runs) = get_json(
        &h,
        ALICE_GH,
        "/api/v3/repos/acme/widgets/actions/runs?branch=feature/fast-render",
    )
    .await;
    let run = runs["workflow_runs"][0]["id"].as_u64().unwrap();
    let (_, jobs) = get_json(
        &h,
        ALICE_GH,
        &format!("/api/v3/repos/acme/widgets/actions/runs/{run}/jobs"),
    )
    .await;
    let failed = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["conclusion"] == "failure")
        .unwrap();
    let r = call(
        &h,
        ALICE_GH,
        Method::GET,
        &format!(
            "/api/v3/repos/acme/widgets/actions/jobs/{}/logs",
            failed["id"]
        ),
        None,
    )
    .await;
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&h.base_url()));
    let log = client().get(location).send().await.unwrap();
    assert!(
        log.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = log.text().await.unwrap();
    assert!(text.lines().count() > 300);
    assert!(text.contains("wide_characters_are_measured ... FAILED"));
    h.stop().await;
}
