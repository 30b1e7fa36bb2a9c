//! `GET /repos/{o}/{r}/contents/{path}?ref=`: a file object with base64 `content`, or a
//! directory's entries as an array; `Accept: application/vnd.github.raw` gives the bytes.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Urls, accepts, error, find_repo};
use crate::git::blob_sha;
use crate::model::Repo;
use crate::state::Ctx;

const DOC: &str = "/repos/contents#get-repository-content";

/// Files above 1 MiB come back without content (`encoding: "none"`), as on GitHub.
const MAX_INLINE: usize = 1024 * 1024;

/// `GET /repos/{o}/{r}/contents` (the root directory).
pub async fn get_root(ctx: Ctx, Path((o, r)): Path<(String, String)>) -> Response {
    serve(ctx, &o, &r, "")
}

/// `GET /repos/{o}/{r}/contents/{path}`.
pub async fn get_path(ctx: Ctx, Path((o, r, path)): Path<(String, String, String)>) -> Response {
    serve(ctx, &o, &r, path.trim_end_matches('/'))
}

fn serve(ctx: Ctx, o: &str, r: &str, path: &str) -> Response {
    let w = ctx.app.world();
    let repo = match find_repo(&w, &ctx.caller, o, r, DOC) {
        Ok((idx, _)) => &w.repos[idx],
        Err(e) => return e,
    };
    let rev = ctx
        .query
        .non_empty("ref")
        .unwrap_or(&repo.default_branch)
        .to_owned();
    let Some(sha) = repo.git.resolve(&rev) else {
        return error::error(
            StatusCode::NOT_FOUND,
            &format!("No commit found for the ref {rev}"),
            DOC,
        );
    };
    let tree = repo.git.tree(&sha);
    let u = ctx.urls();
    if let Some(content) = tree.get(path) {
        if accepts(&ctx.headers, "application/vnd.github.raw") {
            return (
                [("content-type", "application/vnd.github.raw")],
                content.clone(),
            )
                .into_response();
        }
        return Json(file_json(&u, repo, &rev, path, content, true)).into_response();
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let mut entries: BTreeMap<String, Value> = BTreeMap::new();
    for (p, content) in tree.range(prefix.clone()..) {
        let Some(rest) = p.strip_prefix(&prefix) else {
            break;
        };
        match rest.split_once('/') {
            None => {
                entries.insert(
                    rest.to_owned(),
                    file_json(&u, repo, &rev, p, content, false),
                );
            }
            Some((dir, _)) => {
                let dir_path = format!("{prefix}{dir}");
                entries
                    .entry(dir.to_owned())
                    .or_insert_with(|| dir_json(&u, repo, &rev, &dir_path, &tree));
            }
        }
    }
    if entries.is_empty() {
        return error::not_found(DOC);
    }
    // GitHub lists directories' entries in name order.
    Json(Value::Array(entries.into_values().collect())).into_response()
}

fn links(
    u: &Urls,
    repo: &Repo,
    rev: &str,
    path: &str,
    sha: &str,
    kind: &str,
) -> (String, String, String) {
    let full = repo.full_name();
    let url = format!("{}/contents/{path}?ref={rev}", u.repo_api(&full));
    let git = match kind {
        "dir" => format!("{}/git/trees/{sha}", u.repo_api(&full)),
        _ => format!("{}/git/blobs/{sha}", u.repo_api(&full)),
    };
    let html = format!(
        "{}/{}/{rev}/{path}",
        u.repo_web(&full),
        if kind == "dir" { "tree" } else { "blob" }
    );
    (url, git, html)
}

/// A `content-file` (with `content` when `with_content`, as for a single file) or a
/// directory-listing entry.
fn file_json(
    u: &Urls,
    repo: &Repo,
    rev: &str,
    path: &str,
    content: &str,
    with_content: bool,
) -> Value {
    let sha = blob_sha(content);
    let (url, git, html) = links(u, repo, rev, path, &sha, "file");
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut v = json!({
        "type": "file",
        "size": content.len(),
        "name": name,
        "path": path,
        "sha": sha,
        "url": url,
        "git_url": git,
        "html_url": html,
        "download_url": format!("{}/raw/{rev}/{path}", u.repo_web(&repo.full_name())),
        "_links": {"self": url, "git": git, "html": html},
    });
    if with_content && let Some(o) = v.as_object_mut() {
        let (content, encoding) = if content.len() > MAX_INLINE {
            (String::new(), "none")
        } else {
            (wrap_base64(content.as_bytes()), "base64")
        };
        o.insert("content".into(), json!(content));
        o.insert("encoding".into(), json!(encoding));
    }
    v
}

fn dir_json(
    u: &Urls,
    repo: &Repo,
    rev: &str,
    path: &str,
    tree: &BTreeMap<String, String>,
) -> Value {
    let prefix = format!("{path}/");
    let listing: String = tree
        .iter()
        .filter(|(p, _)| p.starts_with(&prefix))
        .map(|(p, c)| format!("{p} {}\n", blob_sha(c)))
        .collect();
    let sha = blob_sha(&listing);
    let (url, git, html) = links(u, repo, rev, path, &sha, "dir");
    json!({
        "type": "dir",
        "size": 0,
        "name": path.rsplit('/').next().unwrap_or(path),
        "path": path,
        "sha": sha,
        "url": url,
        "git_url": git,
        "html_url": html,
        "download_url": null,
        "_links": {"self": url, "git": git, "html": html},
    })
}

/// Base64 with a newline every 60 characters, as GitHub encodes file contents.
pub fn wrap_base64(bytes: &[u8]) -> String {
    let b64 = STANDARD.encode(bytes);
    let mut out = String::with_capacity(b64.len() + b64.len() / 60 + 1);
    for (i, ch) in b64.chars().enumerate() {
        if i > 0 && i % 60 == 0 {
            out.push('\n');
        }
        out.push(ch);
    }
    out.push('\n');
    out
}
