//! `GET /projects/:id/search?scope=blobs&search=` (also `issues` and `merge_requests`),
//! over the default branch (or `ref`).

use axum::extract::Path;
use axum::response::Response;
use serde_json::json;

use super::issues::issue_json;
use super::merge_requests::mr_json;
use super::{error, find_project};
use crate::model::Item;
use crate::state::Ctx;

/// `GET /projects/:id/search`.
pub async fn project_search(ctx: Ctx, Path(id): Path<String>) -> Response {
    let u = ctx.gitlab_urls();
    let w = ctx.app.world();
    let repo = match find_project(&w, &ctx.caller, &id) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let Some(scope) = ctx.query.non_empty("scope") else {
        return error::bad_param("scope is missing, scope does not have a valid value");
    };
    let Some(term) = ctx.query.non_empty("search").map(str::to_lowercase) else {
        return error::bad_param("search is missing");
    };
    let all = match scope {
        "blobs" => {
            let rev = ctx
                .query
                .non_empty("ref")
                .unwrap_or(&repo.default_branch)
                .to_owned();
            let Some(sha) = repo.git.resolve(&rev) else {
                return error::not_found("Commit");
            };
            let mut hits = Vec::new();
            for (path, content) in repo.git.tree(&sha) {
                let lines: Vec<&str> = content.lines().collect();
                if let Some(n) = lines.iter().position(|l| l.to_lowercase().contains(&term)) {
                    // GitLab returns the match with a little context before and after.
                    let start = n.saturating_sub(1);
                    let data: String = lines
                        .iter()
                        .skip(start)
                        .take(3)
                        .map(|l| format!("{l}\n"))
                        .collect();
                    hits.push(json!({
                        "basename": path.rsplit_once('.').map_or(path.as_str(), |(b, _)| b),
                        "data": data,
                        "path": path,
                        "filename": path,
                        "id": null,
                        "ref": rev,
                        "startline": start + 1,
                        "project_id": repo.id,
                    }));
                }
            }
            hits
        }
        "issues" => repo
            .issues
            .iter()
            .filter(|i| {
                format!("{}\n{}", i.title, i.body)
                    .to_lowercase()
                    .contains(&term)
            })
            .map(|i| issue_json(&u, &w, repo, i))
            .collect(),
        "merge_requests" => repo
            .pulls
            .iter()
            .filter(|p| {
                Item::Pull(p).title().to_lowercase().contains(&term)
                    || p.body.to_lowercase().contains(&term)
            })
            .map(|p| mr_json(&u, &w, repo, p, false))
            .collect(),
        _ => return error::bad_param("scope does not have a valid value"),
    };
    drop(w);
    ctx.paged(all)
}
