//! Rate limits, pagination, OAuth, permissions, faults and the journal, on both kinds.

mod common;

use std::time::Duration;

use common::*;
use fake_upstream::{Config, Kind};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn github_rate_limit_headers_and_exhaustion() {
    let mut c = Config::new(Kind::Github, fake_upstream::builtin::builtin().unwrap());
    c.core.limit = 3;
    let h = start_with(c).await;
    for left in [2, 1, 0] {
        let r = call(&h, ALICE_GH, Method::GET, "/api/v3/user", None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["x-ratelimit-remaining"],
            left.to_string().as_str()
        );
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
        assert_eq!(r.headers()["x-ratelimit-resource"], "core");
        assert!(r.headers().contains_key("x-ratelimit-reset"));
    }
    let r = call(&h, ALICE_GH, Method::GET, "/api/v3/user", None).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("API rate limit exceeded for user ID 1.")
    );
    // Per user and per resource.
    assert_eq!(
        call(&h, BOB_GH, Method::GET, "/api/v3/user", None)
            .await
            .status(),
        200
    );
    let s = call(
        &h,
        ALICE_GH,
        Method::GET,
        "/api/v3/search/issues?q=bug",
        None,
    )
    .await;
    assert_eq!(s.headers()["x-ratelimit-resource"], "search");
    h.stop().await;
}

#[tokio::test]
async fn github_pagination_links_use_the_callers_host() {
    let h = start(Kind::Github).await;
    let r = client()
        .get(format!(
            "{}/api/v3/repos/acme/widgets/issues?state=all&per_page=2&page=2",
            h.base_url()
        ))
        .header("authorization", format!("token {ALICE_GH}"))
        .header("host", "ghes.acme.test")
        .send()
        .await
        .unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains("<http://ghes.acme.test/api/v3/repos/acme/widgets/issues?state=all&per_page=2&page=1>; rel=\"prev\""), "{link}");
    assert!(link.contains("page=3>; rel=\"next\""));
    assert!(link.contains("page=4>; rel=\"last\""));
    let items: Vec<Value> = r.json().await.unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items[0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://ghes.acme.test/api/v3/")
    );
    // Pull requests come back from the issues list, marked.
    let (_, all) = get_json(
        &h,
        ALICE_GH,
        "/api/v3/repos/acme/widgets/issues?state=all&per_page=100",
    )
    .await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|i| i.get("pull_request").is_some())
    );
    h.stop().await;
}

#[tokio::test]
async fn github_permissions() {
    let h = start(Kind::Github).await;
    // Carol is not a member of the private repo: 404, as GitHub hides it.
    let (s, v) = get_json(&h, CAROL_GH, "/api/v3/repos/acme/infra").await;
    assert_eq!((s, v["message"].as_str()), (404, Some("Not Found")));
    let (s, _) = get_json(&h, "ghp_nope", "/api/v3/user").await;
    assert_eq!(s, 401);
    // Bob (triage) may label and comment, not push refs or merge.
    let r = "/api/v3/repos/acme/widgets";
    let lab = call(
        &h,
        BOB_GH,
        Method::PATCH,
        &format!("{r}/issues/1"),
        Some(json!({"labels": ["bug", "needs-triage"]})),
    )
    .await;
    assert_eq!(lab.status(), 200);
    let (_, main) = get_json(&h, BOB_GH, &format!("{r}/git/ref/heads/main")).await;
    let push = call(
        &h,
        BOB_GH,
        Method::POST,
        &format!("{r}/git/refs"),
        Some(json!({"ref": "refs/heads/b", "sha": main["object"]["sha"]})),
    )
    .await;
    assert_eq!(push.status(), 403);
    let merge = call(
        &h,
        BOB_GH,
        Method::PUT,
        &format!("{r}/pulls/6/merge"),
        Some(json!({})),
    )
    .await;
    assert_eq!(merge.status(), 403);
    // Carol (read) cannot edit someone else's issue title.
    let edit = call(
        &h,
        CAROL_GH,
        Method::PATCH,
        &format!("{r}/issues/1"),
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(edit.status(), 403);
    // Bad bodies get GitHub's answers.
    let bad = client()
        .post(format!("{}{r}/issues", h.base_url()))
        .bearer_auth(ALICE_GH)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let typed = call(
        &h,
        ALICE_GH,
        Method::POST,
        &format!("{r}/issues"),
        Some(json!({"title": "t", "body": 5})),
    )
    .await;
    assert_eq!(typed.status(), 422);
    h.stop().await;
}

async fn form_post(url: &str, form: &[(&str, &str)]) -> reqwest::Response {
    client()
        .post(url)
        .header("accept", "application/json")
        .form(form)
        .send()
        .await
        .unwrap()
}

fn code_from(r: &reqwest::Response) -> String {
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    loc.query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test]
async fn github_app_oauth_code_and_refresh_rotation() {
    let h = start(Kind::Github).await;
    let base = h.base_url();
    let (id, secret, cb) = (
        "Iv23liFakeGitHubApp1",
        "fake-github-app-secret",
        "http://127.0.0.1:8765/callback",
    );
    let page = client()
        .get(format!(
            "{base}/login/oauth/authorize?client_id={id}&state=s1"
        ))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("name=\"username\""));
    let r = form_post(
        &format!("{base}/login/oauth/authorize"),
        &[
            ("client_id", id),
            ("redirect_uri", cb),
            ("state", "s1"),
            ("username", "alice"),
            ("decision", "authorize"),
        ],
    )
    .await;
    assert_eq!(r.status(), 302);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .contains("state=s1")
    );
    let code = code_from(&r);
    let token_url = format!("{base}/login/oauth/access_token");
    let bad: Value = form_post(
        &token_url,
        &[
            ("client_id", id),
            ("client_secret", "wrong"),
            ("code", &code),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(bad["error"], "incorrect_client_credentials");
    let t = form_post(
        &token_url,
        &[
            ("client_id", id),
            ("client_secret", secret),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(t.status(), 200);
    let t: Value = t.json().await.unwrap();
    assert_eq!(t["expires_in"], 28800);
    assert!(t["refresh_token"].as_str().unwrap().starts_with("ghr_"));
    let again: Value = form_post(
        &token_url,
        &[
            ("client_id", id),
            ("client_secret", secret),
            ("code", &code),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(again["error"], "bad_verification_code");
    let access = t["access_token"].as_str().unwrap();
    let (s, me) = get_json(&h, access, "/api/v3/user").await;
    assert_eq!((s, me["login"].as_str()), (200, Some("alice")));
    // Expire: the token stops working; the refresh token works once.
    client()
        .post(format!("{base}/_fake/tokens/expire"))
        .json(&json!({"user": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(get_json(&h, access, "/api/v3/user").await.0, 401);
    let rt = t["refresh_token"].as_str().unwrap();
    let refresh = [
        ("client_id", id),
        ("client_secret", secret),
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
    ];
    let t2: Value = form_post(&token_url, &refresh).await.json().await.unwrap();
    assert!(t2["access_token"].is_string());
    assert_ne!(t2["refresh_token"], t["refresh_token"]);
    let replay: Value = form_post(&token_url, &refresh).await.json().await.unwrap();
    assert_eq!(replay["error"], "bad_refresh_token");
    // Revocation ends the new grant too.
    client()
        .post(format!("{base}/_fake/grants/revoke"))
        .json(&json!({"user": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_json(&h, t2["access_token"].as_str().unwrap(), "/api/v3/user")
            .await
            .0,
        401
    );
    // Denial goes back with error=access_denied.
    let d = form_post(
        &format!("{base}/login/oauth/authorize"),
        &[
            ("client_id", id),
            ("redirect_uri", cb),
            ("state", "s2"),
            ("username", "alice"),
            ("decision", "deny"),
        ],
    )
    .await;
    assert!(
        d.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error=access_denied")
    );
    h.stop().await;
}

#[tokio::test]
async fn gitlab_oauth_checks_pkce() {
    let h = start(Kind::Gitlab).await;
    let base = h.base_url();
    let (id, secret, cb) = (
        "fake-gitlab-application-id",
        "gloas-fake-gitlab-app-secret",
        "http://127.0.0.1:8765/callback",
    );
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = |state: &'static str| {
        let base = base.clone();
        async move {
            form_post(
                &format!("{base}/oauth/authorize"),
                &[
                    ("client_id", id),
                    ("redirect_uri", cb),
                    ("response_type", "code"),
                    ("state", state),
                    ("scope", "api"),
                    ("code_challenge", challenge),
                    ("code_challenge_method", "S256"),
                    ("username", "bob"),
                    ("decision", "authorize"),
                ],
            )
            .await
        }
    };
    let code = code_from(&authorize("a").await);
    let token = format!("{base}/oauth/token");
    let wrong = form_post(
        &token,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", id),
            ("client_secret", secret),
            ("code", &code),
            ("redirect_uri", cb),
            (
                "code_verifier",
                "wrong-verifier-wrong-verifier-wrong-verifier",
            ),
        ],
    )
    .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let code = code_from(&authorize("b").await);
    let ok = form_post(
        &token,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", id),
            ("client_secret", secret),
            ("code", &code),
            ("redirect_uri", cb),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(ok.status(), 200);
    let t: Value = ok.json().await.unwrap();
    assert_eq!(
        (t["token_type"].as_str(), t["expires_in"].as_i64()),
        (Some("Bearer"), Some(7200))
    );
    let (s, me) = get_json(&h, t["access_token"].as_str().unwrap(), "/api/v4/user").await;
    assert_eq!((s, me["username"].as_str()), (200, Some("bob")));
    let rt = t["refresh_token"].as_str().unwrap();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", id),
        ("client_secret", secret),
        ("refresh_token", rt),
    ];
    assert_eq!(form_post(&token, &refresh).await.status(), 200);
    assert_eq!(form_post(&token, &refresh).await.status(), 400);
    h.stop().await;
}

#[tokio::test]
async fn faults_and_journal() {
    let h = start(Kind::Github).await;
    let base = h.base_url();
    let arm = |rule: Value| {
        let base = base.clone();
        async move {
            assert_eq!(
                client()
                    .post(format!("{base}/_fake/faults"))
                    .json(&rule)
                    .send()
                    .await
                    .unwrap()
                    .status(),
                201
            )
        }
    };
    arm(json!({"method": "GET", "path_prefix": "/api/v3/user", "count": 2, "action": "status", "status": 502})).await;
    assert_eq!(get_json(&h, ALICE_GH, "/api/v3/user").await.0, 502);
    assert_eq!(get_json(&h, ALICE_GH, "/api/v3/user").await.0, 502);
    assert_eq!(get_json(&h, ALICE_GH, "/api/v3/user").await.0, 200);
    arm(json!({"path_regex": "^/api/v3/repos/[^/]+/[^/]+$", "action": "secondary_rate_limit", "status": 429, "retry_after": 7})).await;
    let r = call(
        &h,
        ALICE_GH,
        Method::GET,
        "/api/v3/repos/acme/widgets",
        None,
    )
    .await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "7")
    );
    arm(json!({"path_prefix": "/api/v3/user", "action": "reset"})).await;
    let reset = client()
        .get(format!("{base}/api/v3/user"))
        .bearer_auth(ALICE_GH)
        .send()
        .await;
    assert!(reset.is_err(), "the connection should have been cut");
    arm(json!({"path_prefix": "/api/v3/user", "action": "delay", "delay_ms": 300})).await;
    let t0 = std::time::Instant::now();
    assert_eq!(get_json(&h, ALICE_GH, "/api/v3/user").await.0, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    let journal: Vec<Value> = client()
        .get(format!("{base}/_fake/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(journal.len(), 6);
    assert!(
        journal
            .windows(2)
            .all(|w| w[0]["index"].as_u64() < w[1]["index"].as_u64())
    );
    assert_eq!(journal[0]["fault"], "status");
    assert_eq!(journal[4]["status"], Value::Null);
    assert_eq!(journal[5]["user"], "alice");
    client()
        .delete(format!("{base}/_fake/requests"))
        .send()
        .await
        .unwrap();
    let journal: Vec<Value> = client()
        .get(format!("{base}/_fake/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(journal.is_empty());
    h.stop().await;
}

#[tokio::test]
async fn github_refuses_null_for_fields_declared_plain_strings() {
    let h = start(Kind::Github).await;
    let r = "/api/v3/repos/acme/widgets";
    // (method, path, body, expected status): null is refused where the schema says
    // `type: string` and read as absent where it says `nullable: true`.
    let cases = [
        (
            Method::POST,
            format!("{r}/pulls"),
            json!({"title": "t", "head": "fix/readme-typo", "base": "main", "body": null}),
            422,
        ),
        (
            Method::POST,
            format!("{r}/issues"),
            json!({"title": "t", "body": null}),
            422,
        ),
        (
            Method::POST,
            format!("{r}/issues"),
            json!({"title": "t", "labels": null}),
            422,
        ),
        (
            Method::PATCH,
            format!("{r}/issues/1"),
            json!({"body": null}),
            200,
        ),
        (
            Method::POST,
            format!("{r}/issues"),
            json!({"title": "t", "assignee": null}),
            201,
        ),
    ];
    for (method, path, body, status) in cases {
        let resp = call(&h, ALICE_GH, method.clone(), &path, Some(body.clone())).await;
        assert_eq!(resp.status().as_u16(), status, "{method} {path} {body}");
        if status == 422 {
            let v: Value = resp.json().await.unwrap();
            assert!(
                v["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("nil is not"),
                "{v}"
            );
        }
    }
    h.stop().await;
}
