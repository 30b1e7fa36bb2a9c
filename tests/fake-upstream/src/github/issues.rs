//! Issues: list (per repository and `GET /issues` for the caller), get, create, update.
//! As on GitHub, pull requests are issues too: they appear in these lists with a
//! `pull_request` key, and share the number space.

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::repos::repo_json;
use super::users::{association, simple_user_by_login};
use super::{
    Urls, created, error, find_repo, json_object, node_id, number, opt_nullable_str, opt_str,
    opt_str_list,
};
use crate::model::{Issue, Item, Label, Repo, Role, State, World};
use crate::query::Query;
use crate::state::Ctx;
use crate::time_fmt::Timestamp;

const DOC_LIST: &str = "/issues/issues#list-repository-issues";
const DOC_GET: &str = "/issues/issues#get-an-issue";
const DOC_CREATE: &str = "/issues/issues#create-an-issue";
const DOC_UPDATE: &str = "/issues/issues#update-an-issue";

/// A `label`.
pub fn label_json(u: &Urls, repo: &Repo, l: &Label) -> Value {
    json!({
        "id": l.id,
        "node_id": node_id("05:Label", l.id),
        "url": format!("{}/labels/{}", u.repo_api(&repo.full_name()), l.name.replace(' ', "%20")),
        "name": l.name,
        "description": l.description,
        "color": l.color,
        "default": matches!(l.name.as_str(), "bug" | "documentation" | "enhancement" | "good first issue"),
    })
}

fn labels_json(u: &Urls, repo: &Repo, names: &[String]) -> Vec<Value> {
    names
        .iter()
        .filter_map(|n| repo.labels.iter().find(|l| &l.name == n))
        .map(|l| label_json(u, repo, l))
        .collect()
}

/// An `issue` object for an issue or (with `pull_request`) a pull request.
pub fn issue_json(u: &Urls, w: &World, repo: &Repo, item: Item<'_>) -> Value {
    let full = repo.full_name();
    let api = format!("{}/issues/{}", u.repo_api(&full), item.number());
    let (html, closed_by, state_reason) = match item {
        Item::Issue(i) => (
            format!("{}/issues/{}", u.repo_web(&full), i.number),
            i.closed_by
                .as_deref()
                .map(|c| simple_user_by_login(u, w, c)),
            json!(i.state_reason),
        ),
        Item::Pull(p) => (
            format!("{}/pull/{}", u.repo_web(&full), p.number),
            None,
            Value::Null,
        ),
    };
    let assignees: Vec<Value> = item
        .assignees()
        .iter()
        .map(|a| simple_user_by_login(u, w, a))
        .collect();
    let mut v = json!({
        "url": api,
        "repository_url": u.repo_api(&full),
        "labels_url": format!("{api}/labels{{/name}}"),
        "comments_url": format!("{api}/comments"),
        "events_url": format!("{api}/events"),
        "html_url": html,
        "id": item.id(),
        "node_id": node_id("05:Issue", item.id()),
        "number": item.number(),
        "title": item.title(),
        "user": simple_user_by_login(u, w, item.author()),
        "labels": labels_json(u, repo, item.labels()),
        "state": if item.is_open() { "open" } else { "closed" },
        "locked": false,
        "assignee": assignees.first().cloned().unwrap_or(Value::Null),
        "assignees": assignees,
        "milestone": null,
        "comments": item.comments().len(),
        "created_at": item.created_at().github(),
        "updated_at": item.updated_at().github(),
        "closed_at": item.closed_at().map(|t| t.github()),
        "author_association": association(w, repo, item.author()),
        "type": null,
        "active_lock_reason": null,
        "sub_issues_summary": {"total": 0, "completed": 0, "percent_completed": 0},
        "body": item.body(),
        "closed_by": closed_by,
        "reactions": {
            "url": format!("{api}/reactions"),
            "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0,
            "confused": 0, "heart": 0, "rocket": 0, "eyes": 0,
        },
        "timeline_url": format!("{api}/timeline"),
        "performed_via_github_app": null,
        "state_reason": state_reason,
    });
    if let (Item::Pull(p), Some(o)) = (item, v.as_object_mut()) {
        let pulls = format!("{}/pulls/{}", u.repo_api(&full), p.number);
        let web = format!("{}/pull/{}", u.repo_web(&full), p.number);
        o.insert("draft".into(), json!(p.draft));
        o.insert(
            "pull_request".into(),
            json!({
                "url": pulls,
                "html_url": web,
                "diff_url": format!("{web}.diff"),
                "patch_url": format!("{web}.patch"),
                "merged_at": p.merged_at.map(|t| t.github()),
            }),
        );
    }
    v
}

/// The filters the issue lists share: state, labels, since, sort and direction.
fn common_filter(q: &Query, item: Item<'_>) -> bool {
    let state_ok = match q.get("state").unwrap_or("open") {
        "closed" => !item.is_open(),
        "all" => true,
        _ => item.is_open(),
    };
    let labels_ok = q.non_empty("labels").is_none_or(|ls| {
        ls.split(',').all(|l| {
            item.labels()
                .iter()
                .any(|x| x.eq_ignore_ascii_case(l.trim()))
        })
    });
    let since_ok = q
        .non_empty("since")
        .and_then(Timestamp::parse_filter)
        .is_none_or(|s| item.updated_at() >= s);
    state_ok && labels_ok && since_ok
}

fn sort_items(q: &Query, items: &mut [(&Repo, Item<'_>)]) {
    match q.get("sort").unwrap_or("created") {
        "updated" => items.sort_by_key(|(_, i)| (i.updated_at(), i.id())),
        "comments" => items.sort_by_key(|(_, i)| (i.comments().len(), i.id())),
        _ => items.sort_by_key(|(_, i)| (i.created_at(), i.id())),
    }
    if q.get("direction").unwrap_or("desc") != "asc" {
        items.reverse();
    }
}

/// `GET /repos/{o}/{r}/issues`: `state`, `assignee` (login, `none`, `*`), `creator`,
/// `mentioned`, `labels`, `since`, `sort`, `direction`; pull requests included.
pub async fn list(ctx: Ctx, Path((o, r)): Path<(String, String)>) -> Response {
    let u = ctx.urls();
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_LIST) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let q = &ctx.query;
    let mut items: Vec<(&Repo, Item<'_>)> = repo
        .items()
        .into_iter()
        .filter(|i| common_filter(q, *i))
        .filter(|i| match q.non_empty("assignee") {
            None => true,
            Some("none") => i.assignees().is_empty(),
            Some("*") => !i.assignees().is_empty(),
            Some(a) => i.assignees().iter().any(|x| x.eq_ignore_ascii_case(a)),
        })
        .filter(|i| {
            q.non_empty("creator")
                .is_none_or(|c| i.author().eq_ignore_ascii_case(c))
        })
        .filter(|i| q.non_empty("mentioned").is_none_or(|m| i.mentions(m)))
        .map(|i| (repo, i))
        .collect();
    sort_items(q, &mut items);
    let all = items
        .into_iter()
        .map(|(repo, i)| issue_json(&u, &w, repo, i))
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `GET /issues`: issues across the caller's repositories, `filter=assigned` (default),
/// `created`, `mentioned`, `subscribed`, `repos` or `all`; each with its `repository`.
pub async fn list_for_user(ctx: Ctx) -> Response {
    let u = ctx.urls();
    let w = ctx.app.world();
    let me = ctx.caller.login.as_str();
    let q = &ctx.query;
    let filter = q.get("filter").unwrap_or("assigned");
    let mut items: Vec<(&Repo, Item<'_>)> = w
        .repos
        .iter()
        .filter(|r| w.member_role(me, r).is_some())
        .flat_map(|r| r.items().into_iter().map(move |i| (r, i)))
        .filter(|(_, i)| common_filter(q, *i))
        .filter(|(_, i)| match filter {
            "created" => i.author() == me,
            "mentioned" => i.mentions(me),
            "subscribed" => {
                i.author() == me || i.assignees().iter().any(|a| a == me) || i.mentions(me)
            }
            "repos" | "all" => true,
            _ => i.assignees().iter().any(|a| a == me),
        })
        .collect();
    sort_items(q, &mut items);
    let all = items
        .into_iter()
        .map(|(repo, i)| {
            let mut v = issue_json(&u, &w, repo, i);
            if let Some(o) = v.as_object_mut() {
                let role = w.member_role(me, repo);
                o.insert("repository".into(), repo_json(&u, &w, repo, role));
            }
            v
        })
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `GET /repos/{o}/{r}/issues/{n}`.
pub async fn get(ctx: Ctx, Path((o, r, n)): Path<(String, String, String)>) -> Response {
    let n = match number(&n, DOC_GET) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, &o, &r, DOC_GET) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    match repo.items().into_iter().find(|i| i.number() == n) {
        Some(item) => Json(issue_json(&ctx.urls(), &w, repo, item)).into_response(),
        None => error::not_found(DOC_GET),
    }
}

/// Checks assignees exist and can see the repository, as GitHub's 422 `invalid` does.
fn check_assignees(
    w: &World,
    repo: &Repo,
    assignees: &[String],
    doc: &str,
) -> Result<(), Response> {
    match assignees
        .iter()
        .find(|a| w.user(a).is_none() || w.effective_role(a, repo).is_none())
    {
        Some(bad) => Err(error::validation(
            vec![
                json!({"value": bad, "resource": "Issue", "field": "assignees", "code": "invalid"}),
            ],
            doc,
        )),
        None => Ok(()),
    }
}

/// Makes sure every label exists, creating missing ones as GitHub does.
fn ensure_labels(w: &mut World, idx: usize, names: &[String]) {
    for n in names {
        if !w.repos[idx].labels.iter().any(|l| &l.name == n) {
            let id = w.next_id();
            w.repos[idx].labels.push(Label {
                id,
                name: n.clone(),
                color: "ededed".into(),
                description: String::new(),
            });
        }
    }
}

/// `POST /repos/{o}/{r}/issues` `{title, body, assignees, labels}`: 201. Labels and
/// assignees from users below triage are dropped silently, as GitHub documents.
pub async fn create(ctx: Ctx, Path((o, r)): Path<(String, String)>, body: Bytes) -> Response {
    let m = match json_object(&body, DOC_CREATE) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let title = match m.get("title") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return error::validation(
                vec![json!({"resource": "Issue", "code": "missing_field", "field": "title"})],
                DOC_CREATE,
            );
        }
        Some(v) => return error::invalid_field("title", v, "a string or integer", DOC_CREATE),
    };
    let (body_text, mut assignees, labels) = match (
        opt_str(&m, "body", DOC_CREATE),
        opt_str_list(&m, "assignees", DOC_CREATE),
        opt_str_list(&m, "labels", DOC_CREATE),
        opt_nullable_str(&m, "assignee", DOC_CREATE),
    ) {
        (Ok(b), Ok(a), Ok(l), Ok(single)) => {
            let mut a = a.unwrap_or_default();
            a.extend(single);
            (b.unwrap_or_default(), a, l.unwrap_or_default())
        }
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return e,
    };
    assignees.dedup();
    let mut w = ctx.app.world();
    let (idx, role) = match find_repo(&w, &ctx.caller, &o, &r, DOC_CREATE) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let (assignees, labels) = if role >= Role::Triage {
        (assignees, labels)
    } else {
        (vec![], vec![])
    };
    if let Err(e) = check_assignees(&w, &w.repos[idx], &assignees, DOC_CREATE) {
        return e;
    }
    ensure_labels(&mut w, idx, &labels);
    let id = w.next_id();
    let now = Timestamp::now();
    let repo = &mut w.repos[idx];
    let issue = Issue {
        id,
        number: repo.next_number,
        title,
        body: body_text,
        state: State::Open,
        state_reason: None,
        author: ctx.caller.login.clone(),
        assignees,
        labels,
        comments: vec![],
        created_at: now,
        updated_at: now,
        closed_at: None,
        closed_by: None,
    };
    repo.next_number += 1;
    repo.issues.push(issue);
    let repo = &w.repos[idx];
    let item = repo.issues.last().map(Item::Issue);
    let Some(item) = item else {
        return error::not_found(DOC_CREATE);
    };
    let v = issue_json(&ctx.urls(), &w, repo, item);
    let location = v["url"].as_str().unwrap_or_default().to_owned();
    created(&location, v)
}

/// `PATCH /repos/{o}/{r}/issues/{n}` `{title, body, state, state_reason, labels, assignees}`.
/// Title and body need the author or write; state the author or triage; labels and
/// assignees triage (dropped silently below it).
pub async fn update(
    ctx: Ctx,
    Path((o, r, n)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let n = match number(&n, DOC_UPDATE) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let m = match json_object(&body, DOC_UPDATE) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let parsed = (
        opt_nullable_str(&m, "title", DOC_UPDATE),
        opt_nullable_str(&m, "body", DOC_UPDATE),
        opt_str(&m, "state", DOC_UPDATE),
        opt_nullable_str(&m, "state_reason", DOC_UPDATE),
        opt_str_list(&m, "labels", DOC_UPDATE),
        opt_str_list(&m, "assignees", DOC_UPDATE),
    );
    let (title, body_text, state, reason, labels, assignees) = match parsed {
        (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e), Ok(f)) => (a, b, c, d, e, f),
        (Err(e), ..)
        | (_, Err(e), ..)
        | (_, _, Err(e), ..)
        | (_, _, _, Err(e), ..)
        | (.., Err(e), _)
        | (.., Err(e)) => {
            return e;
        }
    };
    if let Some(s) = &state
        && s != "open"
        && s != "closed"
    {
        return error::validation(
            vec![json!({"resource": "Issue", "code": "invalid", "field": "state"})],
            DOC_UPDATE,
        );
    }
    if let Some(s) = &reason
        && !matches!(
            s.as_str(),
            "completed" | "not_planned" | "reopened" | "duplicate"
        )
    {
        return error::validation(
            vec![json!({"resource": "Issue", "code": "invalid", "field": "state_reason"})],
            DOC_UPDATE,
        );
    }
    let mut w = ctx.app.world();
    let (idx, role) = match find_repo(&w, &ctx.caller, &o, &r, DOC_UPDATE) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let me = ctx.caller.login.clone();
    let Some(item) = w.repos[idx].items().into_iter().find(|i| i.number() == n) else {
        return error::not_found(DOC_UPDATE);
    };
    let is_author = item.author() == me;
    let may_edit_text = is_author || role >= Role::Write;
    let may_change_state = is_author || role >= Role::Triage;
    if ((title.is_some() || body_text.is_some()) && !may_edit_text)
        || (state.is_some() && !may_change_state)
    {
        return error::forbidden("Must have admin rights to Repository.", DOC_UPDATE);
    }
    let (labels, assignees) = if role >= Role::Triage {
        (labels, assignees)
    } else {
        (None, None)
    };
    if let Some(a) = &assignees
        && let Err(e) = check_assignees(&w, &w.repos[idx], a, DOC_UPDATE)
    {
        return e;
    }
    if let Some(l) = &labels {
        ensure_labels(&mut w, idx, l);
    }
    let now = Timestamp::now();
    let repo = &mut w.repos[idx];
    if let Some(i) = repo.issues.iter_mut().find(|i| i.number == n) {
        if let Some(t) = title {
            i.title = t;
        }
        if let Some(b) = body_text {
            i.body = b;
        }
        if let Some(l) = labels {
            i.labels = l;
        }
        if let Some(a) = assignees {
            i.assignees = a;
        }
        match state.as_deref() {
            Some("closed") if i.state == State::Open => {
                i.state = State::Closed;
                i.closed_at = Some(now);
                i.closed_by = Some(me.clone());
                i.state_reason = Some(reason.clone().unwrap_or_else(|| "completed".into()));
            }
            Some("open") if i.state != State::Open => {
                i.state = State::Open;
                i.closed_at = None;
                i.state_reason = Some("reopened".into());
            }
            _ => {
                if let Some(r) = reason {
                    i.state_reason = Some(r);
                }
            }
        }
        i.updated_at = now;
    } else if let Some(p) = repo.pulls.iter_mut().find(|p| p.number == n) {
        if let Some(t) = title {
            p.title = t;
        }
        if let Some(b) = body_text {
            p.body = b;
        }
        if let Some(l) = labels {
            p.labels = l;
        }
        if let Some(a) = assignees {
            p.assignees = a;
        }
        match state.as_deref() {
            Some("closed") if p.state == State::Open => {
                p.state = State::Closed;
                p.closed_at = Some(now);
            }
            Some("open") if p.state == State::Closed => {
                p.state = State::Open;
                p.closed_at = None;
            }
            _ => {}
        }
        p.updated_at = now;
    }
    repo.updated_at = now;
    let repo = &w.repos[idx];
    match repo.items().into_iter().find(|i| i.number() == n) {
        Some(item) => Json(issue_json(&ctx.urls(), &w, repo, item)).into_response(),
        None => error::not_found(DOC_UPDATE),
    }
}
