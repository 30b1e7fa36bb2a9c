//! Users: `GET /user`, and the `simple-user` objects every other payload embeds.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Urls, node_id};
use crate::model::{Repo, User, World};
use crate::state::Ctx;

/// A `simple-user`.
pub fn simple_user(u: &Urls, user: &User) -> Value {
    account(u, user.id, &user.login, "User", user.site_admin)
}

/// The `simple-user` for `login`, or a placeholder ghost if the account is gone (as
/// GitHub shows deleted users).
pub fn simple_user_by_login(u: &Urls, w: &World, login: &str) -> Value {
    match w.user(login) {
        Some(user) => simple_user(u, user),
        None => account(u, 10137, "ghost", "User", false),
    }
}

/// The repository owner: its organization, or the user.
pub fn owner(u: &Urls, w: &World, repo: &Repo) -> Value {
    match w.namespace(repo.owner()) {
        Some(ns) => account(u, ns.id, &ns.path, "Organization", false),
        None => simple_user_by_login(u, w, repo.owner()),
    }
}

fn account(u: &Urls, id: u64, login: &str, kind: &str, site_admin: bool) -> Value {
    let api = format!("{}/users/{login}", u.api);
    json!({
        "login": login,
        "id": id,
        "node_id": node_id(if kind == "User" { "04:User" } else { "012:Organization" }, id),
        "avatar_url": format!("{}/avatars/u/{id}?", u.web),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("{}/{login}", u.web),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": kind,
        "site_admin": site_admin,
        "user_view_type": "public",
    })
}

/// `GET /user`: the authenticated user as a `private-user`.
pub async fn get_user(ctx: Ctx) -> Response {
    let u = ctx.urls();
    let w = ctx.app.world();
    let Some(user) = w.user(&ctx.caller.login) else {
        return super::error::unauthorized(crate::auth::AuthError::Bad);
    };
    let owned: Vec<&Repo> = w
        .repos
        .iter()
        .filter(|r| r.namespace == user.login)
        .collect();
    let private = owned.iter().filter(|r| r.private).count();
    let mut v = simple_user(&u, user);
    if let Some(o) = v.as_object_mut() {
        for (k, val) in [
            ("name", json!(user.name)),
            ("company", json!(null)),
            ("blog", json!("")),
            ("location", json!(null)),
            ("email", json!(user.email)),
            ("notification_email", json!(user.email)),
            ("hireable", json!(null)),
            ("bio", json!(null)),
            ("twitter_username", json!(null)),
            ("public_repos", json!(owned.len() - private)),
            ("public_gists", json!(0)),
            ("followers", json!(0)),
            ("following", json!(0)),
            ("created_at", json!(user.created_at.github())),
            ("updated_at", json!(user.created_at.github())),
            ("private_gists", json!(0)),
            ("total_private_repos", json!(private)),
            ("owned_private_repos", json!(private)),
            ("disk_usage", json!(0)),
            ("collaborators", json!(0)),
            ("two_factor_authentication", json!(true)),
            (
                "ldap_dn",
                json!(format!("uid={},ou=people,dc=acme,dc=test", user.login)),
            ),
        ] {
            o.insert(k.to_owned(), val);
        }
    }
    Json(v).into_response()
}

/// GitHub's `author_association` of `login` with `repo`.
pub fn association(w: &World, repo: &Repo, login: &str) -> &'static str {
    if repo.namespace == login {
        "OWNER"
    } else if w
        .namespaces
        .iter()
        .any(|n| n.path == repo.owner() && n.members.contains_key(login))
    {
        "MEMBER"
    } else if repo.members.contains_key(login) {
        "COLLABORATOR"
    } else if repo.git.commits.values().any(|c| c.author == login) {
        "CONTRIBUTOR"
    } else {
        "NONE"
    }
}
