//! Users: `GET /user` (the caller, full), `GET /users?username=` (basic), and the basic
//! user object other payloads embed.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Urls;
use crate::model::{User, World};
use crate::state::Ctx;

/// The basic user (`UserBasic`).
pub fn basic(u: &Urls, user: &User) -> Value {
    json!({
        "id": user.id,
        "username": user.login,
        "public_email": user.email,
        "name": user.name,
        "state": "active",
        "locked": false,
        "avatar_url": format!("{}/uploads/-/system/user/avatar/{}/avatar.png", u.web, user.id),
        "web_url": format!("{}/{}", u.web, user.login),
    })
}

/// The basic user for `login`, or GitLab's ghost user for a deleted account.
pub fn basic_by_login(u: &Urls, w: &World, login: &str) -> Value {
    match w.user(login) {
        Some(user) => basic(u, user),
        None => {
            json!({"id": 0, "username": "ghost", "name": "Ghost User", "state": "active", "locked": false,
                       "avatar_url": null, "web_url": format!("{}/ghost", u.web)})
        }
    }
}

/// `GET /user`.
pub async fn current(ctx: Ctx) -> Response {
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let Some(user) = w.user(&ctx.caller.login) else {
        return super::error::unauthorized_message();
    };
    let mut v = basic(&u, user);
    if let Some(o) = v.as_object_mut() {
        for (k, val) in [
            ("created_at", json!(user.created_at.gitlab())),
            ("bio", json!("")),
            ("location", json!("")),
            ("skype", json!("")),
            ("linkedin", json!("")),
            ("twitter", json!("")),
            ("discord", json!("")),
            ("website_url", json!("")),
            ("organization", json!("Acme")),
            ("job_title", json!("")),
            ("pronouns", json!(null)),
            ("bot", json!(false)),
            ("work_information", json!(null)),
            ("local_time", json!(null)),
            ("last_sign_in_at", json!(user.created_at.gitlab())),
            ("confirmed_at", json!(user.created_at.gitlab())),
            (
                "last_activity_on",
                json!(crate::time_fmt::Timestamp::now().github().get(..10)),
            ),
            ("email", json!(user.email)),
            ("theme_id", json!(1)),
            ("color_scheme_id", json!(1)),
            ("projects_limit", json!(100_000)),
            ("current_sign_in_at", json!(user.created_at.gitlab())),
            ("identities", json!([])),
            ("can_create_group", json!(true)),
            ("can_create_project", json!(true)),
            ("two_factor_enabled", json!(true)),
            ("external", json!(false)),
            ("private_profile", json!(false)),
            ("commit_email", json!(user.email)),
            ("is_admin", json!(user.site_admin)),
            ("note", json!(null)),
            ("namespace_id", json!(user.id + 100)),
            ("created_by", json!(null)),
        ] {
            o.insert(k.to_owned(), val);
        }
    }
    Json(v).into_response()
}

/// `GET /users?username=` (`search=` too): basic users, paged.
pub async fn list(ctx: Ctx) -> Response {
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let all = w
        .users
        .iter()
        .filter(|x| {
            ctx.query
                .non_empty("username")
                .is_none_or(|n| x.login.eq_ignore_ascii_case(n))
        })
        .filter(|x| {
            ctx.query.non_empty("search").is_none_or(|s| {
                let s = s.to_lowercase();
                x.login.to_lowercase().contains(&s) || x.name.to_lowercase().contains(&s)
            })
        })
        .map(|x| {
            let mut v = basic(&u, x);
            if let Some(o) = v.as_object_mut() {
                o.remove("public_email");
            }
            v
        })
        .collect();
    drop(w);
    ctx.paged(all)
}
