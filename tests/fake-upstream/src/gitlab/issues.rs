//! Issues: list (project, and `GET /issues` across projects by `scope`), get, create,
//! update (`state_event`, `labels`, `add_labels`, `remove_labels`, `assignee_ids`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::users::basic_by_login;
use super::{Params, Urls, error, find_project, iid};
use crate::model::{Issue, Label, Repo, Role, State, World};
use crate::query::Query;
use crate::state::Ctx;
use crate::time_fmt::Timestamp;

fn time_stats() -> Value {
    json!({"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": null, "human_total_time_spent": null})
}

/// Counts `- [ ]` / `- [x]` task items as GitLab's `task_completion_status` does.
pub fn tasks(body: &str) -> (usize, usize) {
    let all = body
        .lines()
        .filter(|l| l.trim_start().starts_with("- ["))
        .count();
    let done = body
        .lines()
        .filter(|l| l.trim_start().starts_with("- [x]") || l.trim_start().starts_with("- [X]"))
        .count();
    (all, done)
}

/// An issue.
pub fn issue_json(u: &Urls, w: &World, repo: &Repo, i: &Issue) -> Value {
    let full = repo.full_name();
    let api = format!("{}/projects/{}/issues/{}", u.api, repo.id, i.number);
    let assignees: Vec<Value> = i
        .assignees
        .iter()
        .map(|a| basic_by_login(u, w, a))
        .collect();
    let (count, done) = tasks(&i.body);
    let mrs = repo
        .pulls
        .iter()
        .filter(|p| p.body.contains(&format!("#{}", i.number)))
        .count();
    json!({
        "id": i.id,
        "iid": i.number,
        "project_id": repo.id,
        "title": i.title,
        "description": i.body,
        "state": if i.state == State::Open { "opened" } else { "closed" },
        "created_at": i.created_at.gitlab(),
        "updated_at": i.updated_at.gitlab(),
        "closed_at": i.closed_at.map(|t| t.gitlab()),
        "closed_by": i.closed_by.as_deref().map(|c| basic_by_login(u, w, c)),
        "labels": i.labels,
        "milestone": null,
        "assignees": assignees,
        "author": basic_by_login(u, w, &i.author),
        "type": "ISSUE",
        "assignee": assignees.first().cloned().unwrap_or(Value::Null),
        "user_notes_count": i.comments.len(),
        "merge_requests_count": mrs,
        "upvotes": 0,
        "downvotes": 0,
        "due_date": null,
        "confidential": false,
        "discussion_locked": null,
        "issue_type": "issue",
        "web_url": format!("{}/{full}/-/issues/{}", u.web, i.number),
        "time_stats": time_stats(),
        "task_completion_status": {"count": count, "completed_count": done},
        "has_tasks": count > 0,
        "task_status": if count > 0 { format!("{done} of {count} checklist items completed") } else { String::new() },
        "_links": {
            "self": api,
            "notes": format!("{api}/notes"),
            "award_emoji": format!("{api}/award_emoji"),
            "project": format!("{}/projects/{}", u.api, repo.id),
            "closed_as_duplicate_of": null,
        },
        "references": {
            "short": format!("#{}", i.number),
            "relative": format!("#{}", i.number),
            "full": format!("{full}#{}", i.number),
        },
        "severity": "UNKNOWN",
        "moved_to_id": null,
        "imported": false,
        "imported_from": "none",
        "service_desk_reply_to": null,
    })
}

fn filter(q: &Query, i: &Issue, default_state: &str) -> bool {
    let state_ok = match q.get("state").unwrap_or(default_state) {
        "opened" => i.state == State::Open,
        "closed" => i.state == State::Closed,
        _ => true,
    };
    let labels_ok = q.non_empty("labels").is_none_or(|ls| match ls {
        "None" => i.labels.is_empty(),
        "Any" => !i.labels.is_empty(),
        _ => ls
            .split(',')
            .all(|l| i.labels.iter().any(|x| x.eq_ignore_ascii_case(l.trim()))),
    });
    let assignee_ok = q
        .non_empty("assignee_username")
        .is_none_or(|a| i.assignees.iter().any(|x| x == a));
    let author_ok = q.non_empty("author_username").is_none_or(|a| i.author == a);
    let search_ok = q.non_empty("search").is_none_or(|s| {
        let s = s.to_lowercase();
        i.title.to_lowercase().contains(&s) || i.body.to_lowercase().contains(&s)
    });
    let after = |k: &str, t: Timestamp| {
        q.non_empty(k)
            .and_then(Timestamp::parse_filter)
            .is_none_or(|x| t >= x)
    };
    let before = |k: &str, t: Timestamp| {
        q.non_empty(k)
            .and_then(Timestamp::parse_filter)
            .is_none_or(|x| t <= x)
    };
    let iids = q.all("iids");
    let iids_ok = iids.is_empty() || iids.iter().any(|n| n.parse::<u64>().ok() == Some(i.number));
    state_ok
        && labels_ok
        && assignee_ok
        && author_ok
        && search_ok
        && iids_ok
        && after("updated_after", i.updated_at)
        && before("updated_before", i.updated_at)
        && after("created_after", i.created_at)
        && before("created_before", i.created_at)
}

fn sort(q: &Query, items: &mut [(&Repo, &Issue)]) {
    match q.get("order_by").unwrap_or("created_at") {
        "updated_at" => items.sort_by_key(|(_, i)| (i.updated_at, i.id)),
        _ => items.sort_by_key(|(_, i)| (i.created_at, i.id)),
    }
    if q.get("sort").unwrap_or("desc") != "asc" {
        items.reverse();
    }
}

/// `GET /projects/:id/issues` (`state`, `labels`, `assignee_username`, `author_username`,
/// `search`, `updated_after`..., `scope`, `order_by`, `sort`, paged).
pub async fn list(ctx: Ctx, Path(id): Path<String>) -> Response {
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let me = ctx.caller.login.as_str();
    let mut items: Vec<(&Repo, &Issue)> = repo
        .issues
        .iter()
        .filter(|i| filter(&ctx.query, i, "all"))
        .filter(|i| scope_ok(ctx.query.get("scope").unwrap_or("all"), me, i))
        .map(|i| (repo, i))
        .collect();
    sort(&ctx.query, &mut items);
    let all = items
        .into_iter()
        .map(|(r, i)| issue_json(&u, &w, r, i))
        .collect();
    drop(w);
    ctx.paged(all)
}

fn scope_ok(scope: &str, me: &str, i: &Issue) -> bool {
    match scope {
        "created_by_me" | "created-by-me" => i.author == me,
        "assigned_to_me" | "assigned-to-me" => i.assignees.iter().any(|a| a == me),
        _ => true,
    }
}

/// `GET /issues`: `scope=created_by_me` (default), `assigned_to_me` or `all`, across the
/// projects the caller can see.
pub async fn list_global(ctx: Ctx) -> Response {
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let me = ctx.caller.login.as_str();
    let scope = ctx.query.get("scope").unwrap_or("created_by_me");
    let mut items: Vec<(&Repo, &Issue)> = w
        .repos
        .iter()
        .filter(|r| w.effective_role(me, r).is_some())
        .flat_map(|r| r.issues.iter().map(move |i| (r, i)))
        .filter(|(_, i)| filter(&ctx.query, i, "all") && scope_ok(scope, me, i))
        .collect();
    sort(&ctx.query, &mut items);
    let all = items
        .into_iter()
        .map(|(r, i)| issue_json(&u, &w, r, i))
        .collect();
    drop(w);
    ctx.paged(all)
}

/// `GET /projects/:id/issues/:iid`.
pub async fn get(ctx: Ctx, Path((id, n)): Path<(String, String)>) -> Response {
    let n = match iid(&n, "Issue") {
        Ok(n) => n,
        Err(e) => return e,
    };
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    match repo.issues.iter().find(|i| i.number == n) {
        Some(i) => {
            let mut v = issue_json(&ctx.gitlab_urls(), &w, repo, i);
            if let Some(o) = v.as_object_mut() {
                o.insert("subscribed".into(), json!(i.author == ctx.caller.login));
            }
            Json(v).into_response()
        }
        None => error::not_found("Issue"),
    }
}

fn ensure_labels(w: &mut World, idx: usize, names: &[String]) {
    for n in names {
        if !w.repos[idx].labels.iter().any(|l| &l.name == n) {
            let id = w.next_id();
            w.repos[idx].labels.push(Label {
                id,
                name: n.clone(),
                color: "#6699cc".into(),
                description: String::new(),
            });
        }
    }
}

/// Turns `assignee_ids` into logins of users who can see the project.
fn assignees(w: &World, repo: &Repo, p: &Params) -> Result<Option<Vec<String>>, Response> {
    let Some(ids) = p.list("assignee_ids").or_else(|| p.list("assignee_id")) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for id in ids {
        let Ok(n) = id.parse::<u64>() else {
            return Err(error::bad_param("assignee_ids is invalid"));
        };
        if n == 0 {
            continue;
        }
        // GitLab silently skips users who cannot be assigned.
        if let Some(u) = w
            .user_by_id(n)
            .filter(|u| w.effective_role(&u.login, repo).is_some())
        {
            out.push(u.login.clone());
        }
    }
    Ok(Some(out))
}

/// `POST /projects/:id/issues` (`title`, `description`, `labels`, `assignee_ids`): 201.
pub async fn create(ctx: Ctx, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let p = match Params::from(&ctx.query, &headers, &body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if p.invalid_str("title") {
        return error::bad_param("title is invalid");
    }
    let Some(title) = p.str("title") else {
        return error::bad_param("title is missing");
    };
    if title.trim().is_empty() {
        return error::validation("title", &["can't be blank"]);
    }
    let mut w = ctx.app.world();
    let (idx, role) = match find_project(&w, &ctx.caller, &id) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let assignees = match assignees(&w, &w.repos[idx], &p) {
        Ok(a) => a.unwrap_or_default(),
        Err(e) => return e,
    };
    // Guests may open issues; labels and assignees need reporter, else are dropped.
    let (labels, assignees) = if role >= Role::Triage {
        (p.list("labels").unwrap_or_default(), assignees)
    } else {
        (vec![], vec![])
    };
    ensure_labels(&mut w, idx, &labels);
    let id = w.next_id();
    let now = Timestamp::now();
    let repo = &mut w.repos[idx];
    let number = repo.next_number;
    repo.next_number += 1;
    repo.issues.push(Issue {
        id,
        number,
        title,
        body: p.str("description").unwrap_or_default(),
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
    });
    let repo = &w.repos[idx];
    let Some(i) = repo.issues.last() else {
        return error::not_found("Issue");
    };
    (
        StatusCode::CREATED,
        Json(issue_json(&ctx.gitlab_urls(), &w, repo, i)),
    )
        .into_response()
}

/// `PUT /projects/:id/issues/:iid`. The author or a reporter may edit and close; labels
/// and assignees need reporter.
pub async fn update(
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = match iid(&n, "Issue") {
        Ok(n) => n,
        Err(e) => return e,
    };
    let p = match Params::from(&ctx.query, &headers, &body) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let state_event = p.str("state_event");
    if state_event
        .as_deref()
        .is_some_and(|s| s != "close" && s != "reopen")
    {
        return error::bad_param("state_event does not have a valid value");
    }
    let mut w = ctx.app.world();
    let (idx, role) = match find_project(&w, &ctx.caller, &id) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let me = ctx.caller.login.clone();
    let Some(author) = w.repos[idx]
        .issues
        .iter()
        .find(|i| i.number == n)
        .map(|i| i.author.clone())
    else {
        return error::not_found("Issue");
    };
    if author != me && role < Role::Triage {
        return error::forbidden();
    }
    let assignees = match assignees(&w, &w.repos[idx], &p) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let may_triage = role >= Role::Triage;
    let (set, add, remove) = (
        p.list("labels"),
        p.list("add_labels"),
        p.list("remove_labels"),
    );
    if may_triage {
        for l in [&set, &add].into_iter().flatten() {
            ensure_labels(&mut w, idx, l);
        }
    }
    let now = Timestamp::now();
    let repo = &mut w.repos[idx];
    let Some(i) = repo.issues.iter_mut().find(|i| i.number == n) else {
        return error::not_found("Issue");
    };
    if let Some(t) = p.str("title") {
        if t.trim().is_empty() {
            return error::validation("title", &["can't be blank"]);
        }
        i.title = t;
    }
    if let Some(d) = p.str("description") {
        i.body = d;
    }
    if may_triage {
        if let Some(l) = set {
            i.labels = l;
        }
        for l in add.unwrap_or_default() {
            if !i.labels.contains(&l) {
                i.labels.push(l);
            }
        }
        let remove = remove.unwrap_or_default();
        i.labels.retain(|l| !remove.contains(l));
        if let Some(a) = assignees {
            i.assignees = a;
        }
    }
    match state_event.as_deref() {
        Some("close") if i.state == State::Open => {
            i.state = State::Closed;
            i.closed_at = Some(now);
            i.closed_by = Some(me);
        }
        Some("reopen") if i.state == State::Closed => {
            i.state = State::Open;
            i.closed_at = None;
            i.closed_by = None;
        }
        _ => {}
    }
    i.updated_at = now;
    let repo = &w.repos[idx];
    match repo.issues.iter().find(|i| i.number == n) {
        Some(i) => Json(issue_json(&ctx.gitlab_urls(), &w, repo, i)).into_response(),
        None => error::not_found("Issue"),
    }
}
