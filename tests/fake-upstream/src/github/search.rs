//! Search: repositories, code (default branch contents) and issues/pull requests, with
//! GitHub's `qualifier:value` syntax (`repo:`, `org:`, `user:`, `is:`, `label:`...), free
//! terms, and only what the caller may read.

use serde_json::{Value, json};

use super::issues::issue_json;
use super::repos::repo_json;
use super::{accepts, error};
use crate::model::{Item, Repo, State, World};
use crate::state::Ctx;
use axum::response::Response;

const DOC_REPOS: &str = "/search/search#search-repositories";
const DOC_CODE: &str = "/search/search#search-code";
const DOC_ISSUES: &str = "/search/search#search-issues-and-pull-requests";

/// A parsed query: qualifiers (`key:value`, quotes allowed) and free terms.
#[derive(Debug, Default)]
pub struct SearchQuery {
    /// `(key, value)` pairs, keys lower-cased; `-key:value` keeps its `-`.
    pub qualifiers: Vec<(String, String)>,
    /// Words to find.
    pub terms: Vec<String>,
}

impl SearchQuery {
    /// Parses `q`.
    pub fn parse(q: &str) -> SearchQuery {
        let mut out = SearchQuery::default();
        let mut tokens = Vec::new();
        let (mut cur, mut quoted) = (String::new(), false);
        for ch in q.chars() {
            match ch {
                '"' => quoted = !quoted,
                c if c.is_whitespace() && !quoted => {
                    if !cur.is_empty() {
                        tokens.push(std::mem::take(&mut cur));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            tokens.push(cur);
        }
        for t in tokens {
            match t.split_once(':') {
                Some((k, v))
                    if !k.is_empty()
                        && !v.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphabetic() || c == '-' || c == '_') =>
                {
                    out.qualifiers.push((k.to_ascii_lowercase(), v.to_owned()))
                }
                _ => out.terms.push(t.to_lowercase()),
            }
        }
        out
    }

    /// Every value of qualifier `key`.
    pub fn values(&self, key: &str) -> Vec<&str> {
        self.qualifiers
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether `key:value` is present (value case-insensitive).
    pub fn has(&self, key: &str, value: &str) -> bool {
        self.values(key)
            .iter()
            .any(|v| v.eq_ignore_ascii_case(value))
    }

    /// Whether `repo` passes the `repo:`, `org:` and `user:` qualifiers.
    pub fn scope_matches(&self, repo: &Repo) -> bool {
        let repos = self.values("repo");
        let owners: Vec<&str> = self
            .values("org")
            .into_iter()
            .chain(self.values("user"))
            .collect();
        (repos.is_empty()
            || repos
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&repo.full_name())))
            && (owners.is_empty() || owners.iter().any(|o| o.eq_ignore_ascii_case(repo.owner())))
    }
}

fn missing_q() -> Response {
    error::validation(
        vec![json!({"resource": "Search", "field": "q", "code": "missing"})],
        DOC_REPOS,
    )
}

fn readable<'a>(w: &'a World, login: &'a str) -> impl Iterator<Item = &'a Repo> + 'a {
    w.repos
        .iter()
        .filter(move |r| w.effective_role(login, r).is_some())
}

/// `GET /search/repositories?q=` (`in:name|description`, `is:public|private`, `org:`,
/// `user:`, `repo:`, `language:`, `topic:`; `sort=updated`).
pub async fn repositories(ctx: Ctx) -> Response {
    let Some(q) = ctx.query.non_empty("q").map(SearchQuery::parse) else {
        return missing_q();
    };
    let u = ctx.urls();
    let w = ctx.app.world();
    let me = ctx.caller.login.as_str();
    let in_fields = q.values("in");
    let mut hits: Vec<&Repo> = readable(&w, me)
        .filter(|r| q.scope_matches(r))
        .filter(|r| {
            (!q.has("is", "private") || r.private) && (!q.has("is", "public") || !r.private)
        })
        .filter(|r| {
            q.values("language").iter().all(|l| {
                r.language
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(l))
            })
        })
        .filter(|r| {
            q.values("topic")
                .iter()
                .all(|t| r.topics.iter().any(|x| x.eq_ignore_ascii_case(t)))
        })
        .filter(|r| {
            q.terms.iter().all(|t| {
                let name = r.name.to_lowercase().contains(t.as_str());
                let desc = r.description.to_lowercase().contains(t.as_str());
                match (
                    in_fields.contains(&"name"),
                    in_fields.contains(&"description"),
                ) {
                    (true, false) => name,
                    (false, true) => desc,
                    _ => name || desc,
                }
            })
        })
        .collect();
    match ctx.query.get("sort") {
        Some("updated") => hits.sort_by_key(|r| std::cmp::Reverse(r.updated_at)),
        _ => hits.sort_by_key(|r| r.full_name().to_lowercase()),
    }
    if ctx.query.get("order") == Some("asc") && ctx.query.get("sort").is_some() {
        hits.reverse();
    }
    let all = hits
        .into_iter()
        .map(|r| {
            let mut v = repo_json(&u, &w, r, w.member_role(me, r));
            if let Some(o) = v.as_object_mut() {
                o.insert("score".into(), json!(1.0));
            }
            v
        })
        .collect();
    drop(w);
    ctx.search_page(all)
}

/// `GET /search/code?q=` over each readable repository's default branch: at least one
/// term is required (`repo:`, `org:`, `user:`, `path:`, `filename:`, `extension:` narrow).
pub async fn code(ctx: Ctx) -> Response {
    let Some(q) = ctx.query.non_empty("q").map(SearchQuery::parse) else {
        return missing_q();
    };
    if q.terms.is_empty() {
        return error::validation(
            vec![
                json!({"message": "Must include at least one search term.", "resource": "Search", "field": "q", "code": "invalid"}),
            ],
            DOC_CODE,
        );
    }
    let text_match = accepts(&ctx.headers, "application/vnd.github.text-match+json")
        || accepts(&ctx.headers, "application/vnd.github.v3.text-match+json");
    let u = ctx.urls();
    let w = ctx.app.world();
    let me = ctx.caller.login.as_str();
    let mut all = Vec::new();
    for repo in readable(&w, me).filter(|r| q.scope_matches(r)) {
        let Some(head) = repo.git.branches.get(&repo.default_branch) else {
            continue;
        };
        let full = repo.full_name();
        for (path, content) in repo.git.tree(head) {
            let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
            let lower = content.to_lowercase();
            let ok = q.terms.iter().all(|t| lower.contains(t.as_str()))
                && q.values("path")
                    .iter()
                    .all(|p| path.starts_with(p.trim_start_matches('/')))
                && q.values("filename").iter().all(|f| name == *f)
                && q.values("extension")
                    .iter()
                    .all(|e| name.ends_with(&format!(".{e}")));
            if !ok {
                continue;
            }
            let sha = crate::git::blob_sha(&content);
            let mut v = json!({
                "name": name,
                "path": path,
                "sha": sha,
                "url": format!("{}/contents/{path}?ref={head}", u.repo_api(&full)),
                "git_url": format!("{}/git/blobs/{sha}", u.repo_api(&full)),
                "html_url": format!("{}/blob/{head}/{path}", u.repo_web(&full)),
                "repository": repo_json(&u, &w, repo, w.member_role(me, repo)),
                "score": 1.0,
                "file_size": content.len(),
                "language": null,
            });
            if text_match && let Some(o) = v.as_object_mut() {
                o.insert(
                    "text_matches".into(),
                    fragments(&u.repo_api(&full), &path, &content, &q.terms),
                );
            }
            all.push(v);
        }
    }
    drop(w);
    ctx.search_page(all)
}

fn fragments(repo_api: &str, path: &str, content: &str, terms: &[String]) -> Value {
    let lines: Vec<Value> = content
        .lines()
        .filter(|l| terms.iter().any(|t| l.to_lowercase().contains(t.as_str())))
        .take(3)
        .map(|l| {
            let lower = l.to_lowercase();
            let matches: Vec<Value> = terms
                .iter()
                .filter_map(|t| {
                    let i = lower.find(t.as_str())?;
                    let text = lower.get(i..i + t.len())?;
                    Some(json!({"text": text, "indices": [i, i + t.len()]}))
                })
                .collect();
            json!({
                "object_url": format!("{repo_api}/contents/{path}"),
                "object_type": "FileContent",
                "property": "content",
                "fragment": l,
                "matches": matches,
            })
        })
        .collect();
    Value::Array(lines)
}

fn issue_matches(q: &SearchQuery, item: Item<'_>) -> bool {
    let is_pr = matches!(item, Item::Pull(_));
    let kinds: Vec<&str> = q.values("is").into_iter().chain(q.values("type")).collect();
    let kind_ok = kinds.iter().all(|k| match k.to_ascii_lowercase().as_str() {
        "issue" => !is_pr,
        "pr" | "pull-request" => is_pr,
        "open" => item.is_open(),
        "closed" => !item.is_open(),
        "merged" => item.state() == State::Merged,
        "unmerged" => is_pr && item.state() == State::Closed,
        _ => true,
    });
    let state_ok = q.values("state").iter().all(|s| match *s {
        "open" => item.is_open(),
        "closed" => !item.is_open(),
        _ => true,
    });
    let person = |key: &str, f: &dyn Fn(&str) -> bool| q.values(key).iter().all(|v| f(v));
    let assignee_ok = person("assignee", &|a| {
        item.assignees().iter().any(|x| x.eq_ignore_ascii_case(a))
    });
    let author_ok = person("author", &|a| item.author().eq_ignore_ascii_case(a));
    let mentions_ok = person("mentions", &|m| item.mentions(m));
    let involves_ok = person("involves", &|p| {
        item.author().eq_ignore_ascii_case(p)
            || item.assignees().iter().any(|x| x.eq_ignore_ascii_case(p))
            || item.mentions(p)
    });
    let label_ok = q
        .values("label")
        .iter()
        .all(|l| item.labels().iter().any(|x| x.eq_ignore_ascii_case(l)));
    let no_ok = q.values("no").iter().all(|n| match *n {
        "assignee" => item.assignees().is_empty(),
        "label" => item.labels().is_empty(),
        _ => true,
    });
    let text = format!("{}\n{}", item.title(), item.body()).to_lowercase();
    let terms_ok = q.terms.iter().all(|t| text.contains(t.as_str()));
    kind_ok
        && state_ok
        && assignee_ok
        && author_ok
        && mentions_ok
        && involves_ok
        && label_ok
        && no_ok
        && terms_ok
}

/// `GET /search/issues?q=` (`is:issue|pr|open|closed|merged`, `state:`, `assignee:`,
/// `author:`, `mentions:`, `involves:`, `label:`, `no:`, `repo:`, `org:`, `user:`, free
/// text; `sort=created|updated|comments`, `order`).
pub async fn issues(ctx: Ctx) -> Response {
    let Some(q) = ctx.query.non_empty("q").map(SearchQuery::parse) else {
        return error::validation(
            vec![json!({"resource": "Search", "field": "q", "code": "missing"})],
            DOC_ISSUES,
        );
    };
    let u = ctx.urls();
    let w = ctx.app.world();
    let me = ctx.caller.login.as_str();
    let mut hits: Vec<(&Repo, Item<'_>)> = readable(&w, me)
        .filter(|r| q.scope_matches(r))
        .flat_map(|r| r.items().into_iter().map(move |i| (r, i)))
        .filter(|(_, i)| issue_matches(&q, *i))
        .collect();
    match ctx.query.get("sort") {
        Some("updated") => hits.sort_by_key(|(_, i)| (i.updated_at(), i.id())),
        Some("comments") => hits.sort_by_key(|(_, i)| (i.comments().len(), i.id())),
        _ => hits.sort_by_key(|(_, i)| (i.created_at(), i.id())),
    }
    if ctx.query.get("order") != Some("asc") {
        hits.reverse();
    }
    let all = hits
        .into_iter()
        .map(|(r, i)| {
            let mut v = issue_json(&u, &w, r, i);
            if let Some(o) = v.as_object_mut() {
                o.insert("score".into(), json!(1.0));
                o.remove("closed_by");
            }
            v
        })
        .collect();
    drop(w);
    ctx.search_page_with(all, Some("lexical"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qualifiers_terms_and_quotes() {
        let q =
            SearchQuery::parse("is:open label:\"good first issue\" repo:acme/widgets Panics empty");
        assert_eq!(q.values("label"), vec!["good first issue"]);
        assert!(q.has("is", "open"));
        assert_eq!(q.terms, vec!["panics", "empty"]);
    }
}
