//! Every `github_*` tool, end to end: an MCP client (stateless 2026-07-28) calls the
//! runtime, which sends the call through the QUIC tunnel to a connector process, which
//! acts on the fake GitHub Enterprise Server (`tests/fake-upstream`, built-in seed) with
//! the calling user's own token, provisioned in the connector's vault as
//! `user/ghes/<user id>` once the user exists (the OAuth connect flow has its own suite).
//!
//! One table per tool group (accounts and repositories, files, code, branches and commits,
//! issues, pull requests, reviews and merges, Actions), each with its own environment
//! ([`ToolEnv`]); rows run in order, so a write's row is followed by the rows reading it
//! back. Also covered: the upstream refusing what the policy allowed (bob is only triage on
//! `acme`), destructive calls and approvals confirmed by the user through an input-required
//! round and bound to the head shown, seeds of their own for binary files, authors without
//! an account, long job lists and logs, and two instances of one kind.

use std::cell::RefCell;
use std::collections::BTreeSet;

use anyhow::Result;
use e2e::tool_suite::{Row, ToolEnv, strings, text, with};
use serde_json::{Value, json};

/// Every GitHub tool the connector serves.
const TOOLS: [&str; 22] = [
    "github_whoami",
    "github_search_repositories",
    "github_get_file",
    "github_search_code",
    "github_list_branches",
    "github_create_branch",
    "github_delete_branch",
    "github_list_commits",
    "github_list_issues",
    "github_search_issues",
    "github_get_issue",
    "github_create_issue",
    "github_update_issue",
    "github_comment_on_issue",
    "github_list_pull_requests",
    "github_get_pull_request",
    "github_get_pull_request_diff",
    "github_create_pull_request",
    "github_review_pull_request",
    "github_merge_pull_request",
    "github_list_workflow_runs",
    "github_get_failed_job_log",
];

/// The arguments naming `acme/widgets`, with `extra`.
fn widgets(extra: Value) -> Value {
    with(&json!({"owner": "acme", "repo": "widgets"}), extra)
}

/// The numbers (or ids) in `v["items"]` under `key`.
fn numbers(v: &Value, key: &str) -> BTreeSet<u64> {
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i[key].as_u64())
        .collect()
}

/// The sha of branch `name` in a `github_list_branches` page.
fn sha_of(page: &Value, name: &str) -> Option<String> {
    page["items"]
        .as_array()
        .and_then(|i| i.iter().find(|b| b["name"] == name))
        .map(|b| b["sha"].as_str().unwrap_or_default().to_owned())
}

/// The heads of `main` and `feature/fast-render` in `acme/widgets`.
fn heads(env: &ToolEnv) -> (String, String) {
    let b = env
        .user("alice")
        .ok("github_list_branches", widgets(json!({})));
    let main = sha_of(&b, "main").unwrap_or_default();
    (main, sha_of(&b, "feature/fast-render").unwrap_or_default())
}

/// The first-seven-characters form of a sha.
fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

#[test]
fn every_tool_is_listed_with_its_schemas_and_annotations() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let alice = env.user("alice");
    let names = alice.client().tool_names()?;
    let tools = alice.listed_tools();
    let tool = |name: &str| {
        let found = tools.iter().find(|t| t["name"] == name);
        found.cloned().unwrap_or(Value::Null)
    };
    for t in TOOLS {
        assert!(names.iter().any(|n| n == t), "{t} missing from {names:?}");
        let spec = tool(t);
        assert_eq!(spec["outputSchema"]["type"], "object", "{spec}");
        assert_eq!(spec["inputSchema"]["type"], "object", "{spec}");
    }
    for (name, read_only, destructive) in [
        ("github_get_file", true, false),
        ("github_get_failed_job_log", true, false),
        ("github_create_branch", false, false),
        ("github_review_pull_request", false, false),
        ("github_delete_branch", false, true),
        ("github_merge_pull_request", false, true),
    ] {
        let a = &tool(name)["annotations"];
        assert_eq!(a["readOnlyHint"], read_only, "{name}: {a}");
        assert_eq!(a["destructiveHint"], destructive, "{name}: {a}");
    }
    let get_file = tool("github_get_file");
    let ref_doc = &get_file["inputSchema"]["properties"]["ref"]["description"];
    assert!(
        ref_doc
            .as_str()
            .is_some_and(|d| d.contains("Branch, tag or commit")),
        "{get_file}"
    );
    assert!(tool("github_list_commits")["inputSchema"]["properties"]["fields"].is_object());
    Ok(())
}

#[test]
fn accounts_and_repositories_are_found() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let search = "github_search_repositories";
    env.table(vec![
        Row::ok("alice's account", "github_whoami", json!({}), |me, t| {
            assert_eq!(me["login"], "alice");
            assert_eq!(me["name"], "Alice Admin");
            assert_eq!(me["site_admin"], false);
            assert_eq!(me["instance"], "ghes");
            assert!(
                t.starts_with("alice on GitHub Enterprise at 127.0.0.1"),
                "{t}"
            );
        }),
        Row::ok("carol's account", "github_whoami", json!({}), |me, _| {
            assert_eq!(me["login"], "carol");
        })
        .by("carol"),
        Row::ok(
            "alice's, most recently updated first",
            search,
            json!({}),
            |all, t| {
                assert_eq!(strings(all, "full_name"), ["acme/infra", "acme/widgets"]);
                let widgets = &all["items"][1];
                assert_eq!(widgets["visibility"], "public");
                assert_eq!(widgets["default_branch"], "main");
                assert_eq!(widgets["language"], "Rust");
                assert_eq!(widgets["permission"], "admin");
                assert_eq!(all["items"][0]["visibility"], "private");
                assert!(
                    t.contains("acme/widgets [public, admin] default main, Rust: Widgets"),
                    "{t}"
                );
            },
        ),
        Row::ok(
            "by text",
            search,
            json!({"text": "terraform"}),
            |found, t| {
                assert_eq!(strings(found, "full_name"), ["acme/infra"]);
                assert!(t.starts_with("acme/infra [private, admin]"), "{t}");
            },
        ),
        Row::ok(
            "by org and language",
            search,
            json!({"org": "acme", "language": "rust"}),
            |found, _| {
                assert_eq!(strings(found, "full_name"), ["acme/widgets"]);
            },
        ),
        Row::ok("carol reads widgets only", search, json!({}), |mine, _| {
            assert_eq!(strings(mine, "full_name"), ["acme/widgets"]);
            assert_eq!(mine["items"][0]["permission"], "read");
        })
        .by("carol"),
        Row::ok(
            "a private repository does not exist for carol",
            search,
            json!({"text": "terraform"}),
            |none, t| {
                assert_eq!(none["items"], json!([]));
                assert_eq!(t, "no repositories found");
            },
        )
        .by("carol"),
        Row::fails(
            "a private file is not visible to carol",
            "github_get_file",
            json!({"owner": "acme", "repo": "infra", "path": "README.md"}),
            &["not found, or not visible to this user"],
        )
        .by("carol"),
    ]);
    Ok(())
}

#[test]
fn repositories_are_paged_with_the_fields_asked_for() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let search = "github_search_repositories";
    env.table(vec![
        Row::ok(
            "one field, one to a page",
            search,
            json!({"limit": 1, "fields": ["full_name"]}),
            |p1, t| {
                assert_eq!(p1["items"], json!([{"full_name": "acme/infra"}]));
                assert_eq!(p1["next_cursor"], "2");
                assert!(t.ends_with("(more: pass next_cursor)"), "{t}");
            },
        ),
        Row::ok(
            "the second page",
            search,
            json!({"limit": 1, "fields": ["full_name"], "cursor": "2"}),
            |p2, _| {
                assert_eq!(p2, &json!({"items": [{"full_name": "acme/widgets"}]}));
            },
        ),
        Row::fails(
            "a cursor not given out",
            search,
            json!({"cursor": "x"}),
            &["cursor must be a next_cursor value"],
        ),
    ]);
    Ok(())
}

#[test]
fn files_and_directories_are_read_at_a_ref() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let get = "github_get_file";
    env.table(vec![
        Row::ok(
            "a whole file",
            get,
            widgets(json!({"path": "README.md"})),
            |f, t| {
                assert_eq!(f["type"], "file");
                assert_eq!(f["path"], "README.md");
                let content = f["content"].as_str().unwrap_or_default();
                assert!(content.starts_with("# widgets\n"), "{f}");
                assert!(
                    content.contains("Padding defaults to one space on each side."),
                    "{f}"
                );
                assert_eq!(f["size"].as_u64(), Some(content.len() as u64));
                assert_eq!(f["from_line"], 1);
                assert_eq!(f["to_line"], f["total_lines"]);
                assert_eq!(
                    f["total_lines"].as_u64(),
                    Some(content.lines().count() as u64)
                );
                assert!(f.get("truncated").is_none(), "{f}");
                assert!(t.starts_with("acme/widgets:README.md ("), "{t}");
                assert!(t.ends_with(content), "{t}");
            },
        ),
        Row::ok(
            "at a branch",
            get,
            widgets(json!({"path": "README.md", "ref": "fix/readme-typo"})),
            |f, t| {
                let content = f["content"].as_str().unwrap_or_default();
                assert!(content.contains("one space on either side"), "{f}");
                assert_eq!(f["ref"], "fix/readme-typo");
                assert!(
                    t.starts_with("acme/widgets:README.md@fix/readme-typo"),
                    "{t}"
                );
            },
        ),
        Row::ok(
            "a directory",
            get,
            widgets(json!({"path": "src", "ref": "feature/fast-render"})),
            |d, t| {
                assert_eq!(d["type"], "dir");
                let names: Option<Vec<&str>> = d["entries"].as_array().map(|e| {
                    e.iter()
                        .map(|x| x["name"].as_str().unwrap_or_default())
                        .collect()
                });
                assert_eq!(names, Some(vec!["lib.rs", "render.rs", "widget.rs"]));
                assert_eq!(d["entries"][0]["type"], "file");
                assert!(t.contains("(directory, 3 entries)"), "{t}");
            },
        ),
        Row::ok("the root", get, widgets(json!({})), |root, t| {
            let entries = root["entries"].as_array().cloned().unwrap_or_default();
            let has = |name: &str, kind: &str| {
                entries
                    .iter()
                    .any(|x| x["name"] == name && x["type"] == kind)
            };
            assert!(has("data", "dir") && has("Cargo.toml", "file"), "{root}");
            assert!(t.contains("\n.github/"), "{t}");
        }),
        Row::fails(
            "a missing file",
            get,
            widgets(json!({"path": "src/missing.rs"})),
            &["not found"],
        ),
        Row::fails(
            "a path that walks out",
            get,
            widgets(json!({"path": "../../user"})),
            &["not a valid name"],
        ),
    ]);
    Ok(())
}

#[test]
fn a_long_file_is_cut_at_a_line_end_and_read_on_from_there() -> Result<()> {
    // ~190 KB: cut at a line end, and read on from where it stopped.
    let env = ToolEnv::github().start()?;
    let alice = env.user("alice");
    let csv = |extra: Value| widgets(with(&json!({"path": "data/catalog.csv"}), extra));
    let (big, t) = alice.ok_text("github_get_file", csv(json!({})));
    assert_eq!(big["truncated"], true);
    assert_eq!(big["total_lines"], 3001);
    let chunk = big["content"].as_str().unwrap_or_default();
    assert!(chunk.starts_with("sku,name,width"), "{}", &chunk[..40]);
    assert!(chunk.chars().count() <= 20_000 && chunk.ends_with('\n'));
    let next = big["next_start_line"].as_u64().unwrap_or_default();
    assert_eq!(big["to_line"].as_u64(), Some(next - 1));
    let hint = format!("…[truncated: pass start_line {next} to read on]");
    assert!(t.ends_with(&hint), "{}", &t[t.len() - 80..]);
    env.table(vec![
        Row::ok(
            "read on",
            "github_get_file",
            csv(json!({"start_line": next, "max_chars": 200})),
            |more, _| {
                assert_eq!(more["from_line"].as_u64(), Some(next));
                let row = format!("W-{:05},", next - 2);
                assert!(
                    more["content"]
                        .as_str()
                        .is_some_and(|c| c.starts_with(&row)),
                    "{more}"
                );
            },
        ),
        Row::ok(
            "the last line",
            "github_get_file",
            csv(json!({"start_line": 3001})),
            |last, _| {
                assert!(
                    last.get("truncated").is_none() && last.get("next_start_line").is_none(),
                    "{last}"
                );
            },
        ),
        Row::fails(
            "past the end",
            "github_get_file",
            csv(json!({"start_line": 4000})),
            &["past the end: the file has 3001 lines"],
        ),
    ]);
    Ok(())
}

#[test]
fn code_is_searched_within_the_repository_the_policy_checked() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let search = "github_search_code";
    env.table(vec![
        Row::ok(
            "one match",
            search,
            widgets(json!({"query": "initial"})),
            |hits, t| {
                assert_eq!(hits["total"], 1);
                assert_eq!(strings(hits, "path"), ["src/widget.rs"]);
                let lines = hits["items"][0]["lines"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    lines.iter().any(|x| x == "pub fn initial(&self) -> char {"),
                    "{hits}"
                );
                assert!(
                    t.starts_with("1 file(s) in acme/widgets match:\nsrc/widget.rs: "),
                    "{t}"
                );
            },
        ),
        Row::ok(
            "by path and extension",
            search,
            widgets(json!({"query": "widget", "path": "src", "extension": "rs"})),
            |hits, _| {
                let paths: BTreeSet<String> = strings(hits, "path").into_iter().collect();
                assert_eq!(
                    paths,
                    BTreeSet::from(["src/lib.rs".to_owned(), "src/widget.rs".to_owned()])
                );
            },
        ),
        Row::ok(
            "no match",
            search,
            widgets(json!({"query": "kubernetes"})),
            |none, t| {
                assert_eq!(
                    (none["total"].as_u64(), none["items"].clone()),
                    (Some(0), json!([]))
                );
                assert!(t.starts_with("no code in acme/widgets matches"), "{t}");
            },
        ),
        // The search cannot be widened past the repository the policy checked.
        Row::fails(
            "a qualifier naming another repository",
            search,
            widgets(json!({"query": "terraform repo:acme/infra"})),
            &["may not name other repositories"],
        ),
        // A qualifier smuggled into the repository name is refused before any layer acts on
        // it (the runtime's target check; the tool checks again).
        Row::refused(
            "a qualifier in the repository name",
            search,
            json!({"owner": "acme", "repo": "widgets repo:acme/infra", "query": "terraform"}),
            "is not allowed here",
        ),
    ]);
    let widened = env.journal("GET", "/search/code");
    assert!(
        widened
            .iter()
            .all(|r| !r["query"].as_str().unwrap_or_default().contains("infra")),
        "a widened search reached the upstream"
    );
    Ok(())
}

#[test]
fn branches_are_listed_with_their_heads() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let (main, _) = heads(&env);
    let branches = "github_list_branches";
    env.table(vec![
        Row::ok("every branch", branches, widgets(json!({})), |b, t| {
            let names = [
                "feature/fast-render",
                "fix/readme-typo",
                "main",
                "refactor/draw",
                "stale",
            ];
            assert_eq!(strings(b, "name"), names);
            assert_eq!(sha_of(b, "stale").as_deref(), Some(main.as_str()));
            assert!(
                t.contains(&format!("main {} (protected)", short(&main))),
                "{t}"
            );
        }),
        Row::ok(
            "protected ones",
            branches,
            widgets(json!({"protected": true})),
            |p, _| {
                assert_eq!(strings(p, "name"), ["main"]);
            },
        ),
    ]);
    Ok(())
}

#[test]
fn commits_are_filtered_and_paged() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let (main, fast) = heads(&env);
    let commits = "github_list_commits";
    env.table(vec![
        Row::ok(
            "at a branch",
            commits,
            widgets(json!({"ref": "feature/fast-render"})),
            |c, t| {
                let titles = [
                    "Widget::initial no longer panics on empty text",
                    "Render into a reusable buffer",
                    "Add the widget catalogue",
                    "README: document padding",
                    "Initial commit",
                ];
                assert_eq!(strings(c, "title"), titles);
                assert_eq!(
                    strings(c, "author"),
                    ["alice", "alice", "alice", "bob", "alice"]
                );
                assert_eq!(c["items"][0]["sha"], fast.as_str());
                assert_eq!(c["items"][0]["date"], "2024-03-05T09:15:00Z");
                let first = format!("{} 2024-03-05 alice Widget::initial", short(&fast));
                assert!(t.starts_with(&first), "{t}");
            },
        ),
        Row::ok(
            "of a path",
            commits,
            widgets(json!({"path": "README.md"})),
            |c, _| {
                assert_eq!(
                    strings(c, "title"),
                    ["README: document padding", "Initial commit"]
                );
            },
        ),
        Row::ok(
            "by an author",
            commits,
            widgets(json!({"ref": "fix/readme-typo", "author": "bob"})),
            |c, _| {
                assert_eq!(
                    strings(c, "title"),
                    ["Fix a typo in the README", "README: document padding"]
                );
            },
        ),
        Row::ok(
            "in a date range",
            commits,
            widgets(json!({"since": "2024-02-01T00:00:00Z", "until": "2024-02-28T00:00:00Z"})),
            |c, _| {
                assert_eq!(
                    strings(c, "title"),
                    ["Add the widget catalogue", "README: document padding"]
                );
            },
        ),
        // Field selection and pagination: two of main's three commits, then the last.
        Row::ok(
            "two fields, two to a page",
            commits,
            widgets(json!({"limit": 2, "fields": ["sha", "title"]})),
            |p1, t| {
                assert_eq!(p1["next_cursor"], "2");
                assert_eq!(
                    p1["items"][0],
                    json!({"sha": main, "title": "Add the widget catalogue"})
                );
                assert_eq!(p1["items"].as_array().map(Vec::len), Some(2));
                assert!(t.ends_with("(more: pass next_cursor)"), "{t}");
            },
        ),
        Row::ok(
            "the last page",
            commits,
            widgets(json!({"limit": 2, "fields": ["title"], "cursor": "2"})),
            |p2, _| {
                assert_eq!(p2, &json!({"items": [{"title": "Initial commit"}]}));
            },
        ),
    ]);
    Ok(())
}

#[test]
fn branches_are_made_from_a_branch_the_default_branch_and_a_commit() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let alice = env.user("alice");
    let (main, fast) = heads(&env);
    let february = json!({"since": "2024-02-01T00:00:00Z", "until": "2024-02-28T00:00:00Z"});
    // The February range: the catalogue commit, then the README one.
    let c = alice.ok("github_list_commits", widgets(february));
    let readme_commit = c["items"][1]["sha"].as_str().unwrap_or_default().to_owned();
    let create = "github_create_branch";
    env.table(vec![
        Row::ok(
            "from a branch",
            create,
            widgets(json!({"branch": "docs/tour", "from": "feature/fast-render"})),
            |made, t| {
                assert_eq!(made, &json!({"branch": "docs/tour", "sha": fast}));
                let said = format!(
                    "created branch docs/tour at {} (from feature/fast-render) in acme/widgets",
                    short(&fast)
                );
                assert_eq!(t, said);
            },
        ),
        Row::ok(
            "from the default branch",
            create,
            widgets(json!({"branch": "hotfix"})),
            |made, _| {
                assert_eq!(made["sha"], main.as_str());
            },
        ),
        Row::ok(
            "from a commit",
            create,
            widgets(json!({"branch": "old", "from": readme_commit})),
            |made, _| {
                assert_eq!(made["sha"], readme_commit.as_str());
            },
        ),
        Row::ok(
            "read back",
            "github_list_branches",
            widgets(json!({"limit": 100})),
            |b, _| {
                assert_eq!(sha_of(b, "docs/tour").as_deref(), Some(fast.as_str()));
                assert_eq!(sha_of(b, "hotfix").as_deref(), Some(main.as_str()));
            },
        ),
        Row::fails(
            "one that exists",
            create,
            widgets(json!({"branch": "docs/tour"})),
            &["rejected", "Reference already exists"],
        ),
        Row::fails(
            "from nothing",
            create,
            widgets(json!({"branch": "x", "from": "no-such-branch"})),
            &["not found"],
        ),
    ]);
    Ok(())
}

#[test]
fn a_branch_deletion_is_confirmed_by_the_user_and_runs_once() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let alice = env.user("alice");
    let from = widgets(json!({"branch": "docs/tour", "from": "feature/fast-render"}));
    let fast = alice.ok("github_create_branch", from)["sha"].clone();
    let listed = || alice.ok("github_list_branches", widgets(json!({"limit": 100})));
    // Deleting is destructive: the runtime asks the user first (stateless revision: an
    // input-required result, answered by calling again with the answer and the state).
    let (tool, args) = (
        "github_delete_branch",
        widgets(json!({"branch": "docs/tour"})),
    );
    let asked = alice.ask(tool, args.clone());
    let shown = "github_delete_branch on acme/widgets";
    assert!(asked.message.contains(shown), "{asked:?}");
    let deletes = || env.journal("DELETE", "/git/refs/heads/docs/tour");
    assert!(deletes().is_empty());
    let declined = alice.answer(tool, &args, &asked, false);
    assert_eq!(declined["isError"], true, "{declined}");
    assert!(text(&declined).contains("did not confirm"), "{declined}");
    assert!(sha_of(&listed(), "docs/tour").is_some());
    let done = alice.answer(tool, &args, &asked, true);
    alice.assert_ok(tool, &args, &done);
    assert_eq!(
        done["structuredContent"],
        json!({"branch": "docs/tour", "sha": fast})
    );
    assert!(
        text(&done).starts_with("deleted branch docs/tour of acme/widgets"),
        "{done}"
    );
    assert!(sha_of(&listed(), "docs/tour").is_none());
    // The same confirmation replayed does not run the call again.
    let replayed = alice.answer(tool, &args, &asked, true);
    assert_eq!(replayed["isError"], true, "{replayed}");
    assert!(text(&replayed).contains("already used"), "{replayed}");
    let sent = deletes();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0]["status"].clone(), sent[0]["user"].clone()),
        (json!(204), json!("alice"))
    );
    // A branch that is not there is not found, before the user is asked anything (the
    // preview reads it), and nothing is deleted.
    let again = alice.call(tool, args);
    assert_eq!(again["isError"], true, "{again}");
    assert!(again.get("inputRequests").is_none(), "{again}");
    assert!(text(&again).contains("not found"), "{again}");
    assert_eq!(deletes().len(), 1);
    Ok(())
}

#[test]
fn issues_are_listed_and_filtered() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let list = "github_list_issues";
    env.table(vec![
        // Open issues only: the pull requests (5-7) GitHub lists among them are left out.
        Row::ok("open ones", list, widgets(json!({})), |open, t| {
            assert_eq!(numbers(open, "number"), BTreeSet::from([1, 2, 4]));
            assert!(
                t.contains(
                    "acme/widgets#1 [open] Widget::initial panics on empty text (bug) @alice"
                ),
                "{t}"
            );
        }),
        Row::ok(
            "assigned to me",
            list,
            widgets(json!({"assignee": "me"})),
            |mine, _| {
                assert_eq!(numbers(mine, "number"), BTreeSet::from([1, 4]));
            },
        ),
        Row::ok(
            "by label",
            list,
            widgets(json!({"labels": ["bug"]})),
            |bugs, _| {
                assert_eq!(numbers(bugs, "number"), BTreeSet::from([1]));
            },
        ),
        Row::ok(
            "closed ones",
            list,
            widgets(json!({"state": "closed"})),
            |closed, _| {
                assert_eq!(numbers(closed, "number"), BTreeSet::from([3]));
                assert_eq!(
                    closed["items"][0]["labels"],
                    json!(["documentation", "good first issue"])
                );
            },
        ),
    ]);
    Ok(())
}

#[test]
fn issues_are_searched_across_repositories_and_read() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let (search, get) = ("github_search_issues", "github_get_issue");
    env.table(vec![
        Row::ok(
            "across repositories",
            search,
            json!({"involvement": "assigned_to_me"}),
            |found, t| {
                let refs: BTreeSet<String> = found["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| format!("{}#{}", i["repo"].as_str().unwrap_or_default(), i["number"]))
                    .collect();
                let expected = ["acme/widgets#1", "acme/widgets#4", "acme/infra#1"];
                assert_eq!(refs, expected.map(String::from).into_iter().collect());
                assert!(
                    t.contains("acme/infra#1 [open] Rotate the status page TLS certificate"),
                    "{t}"
                );
            },
        ),
        Row::ok(
            "pull requests bob opened",
            search,
            json!({"involvement": "created_by_me", "pull_requests": true}),
            |prs, _| {
                assert_eq!(numbers(prs, "number"), BTreeSet::from([6]));
            },
        )
        .by("bob"),
        Row::fails(
            "a search for nothing",
            search,
            json!({}),
            &["say what to look for"],
        ),
        Row::ok(
            "one with its comments",
            get,
            widgets(json!({"number": 1})),
            |issue, t| {
                assert_eq!(issue["title"], "Widget::initial panics on empty text");
                assert_eq!(issue["author"], "bob");
                assert_eq!(issue["comments"], 2);
                let body = issue["body"].as_str().unwrap_or_default();
                assert!(body.contains("called `Option::unwrap()` on a `None` value"));
                let authors: Vec<&str> = issue["comment_items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x["author"].as_str())
                    .collect();
                assert_eq!(authors, ["alice", "bob"]);
                assert!(
                    t.contains("--- alice at 2024-02-21T10:02:00Z:\nConfirmed."),
                    "{t}"
                );
            },
        ),
        Row::ok(
            "its comments a page at a time",
            get,
            widgets(json!({"number": 1, "limit": 1})),
            |paged, _| {
                assert_eq!(paged["comment_items"].as_array().map(Vec::len), Some(1));
                assert_eq!(paged["next_cursor"], "2");
            },
        ),
        Row::fails(
            "one that is not there",
            get,
            widgets(json!({"number": 999})),
            &["not found"],
        ),
    ]);
    Ok(())
}

#[test]
fn issues_are_opened_changed_and_commented_and_read_back() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let (get, update) = ("github_get_issue", "github_update_issue");
    let new = json!({"title": "Render benchmarks", "body": "Measure render_into.", "labels": ["enhancement"], "assignees": ["bob"]});
    let close = json!({"number": 8, "state": "closed", "close_reason": "completed", "labels": ["enhancement", "ci"]});
    env.table(vec![
        Row::ok("opened", "github_create_issue", widgets(new), |made, t| {
            assert_eq!(made["number"], 8);
            assert_eq!(made["state"], "open");
            assert_eq!(
                t,
                "opened acme/widgets#8 [open] Render benchmarks (enhancement) @bob"
            );
        }),
        Row::ok(
            "read back by bob",
            get,
            widgets(json!({"number": 8})),
            |read, _| {
                assert_eq!(read["author"], "alice");
                assert_eq!(read["body"], "Measure render_into.");
                assert_eq!(read["assignees"], json!(["bob"]));
            },
        )
        .by("bob"),
        Row::ok("closed by bob", update, widgets(close), |changed, t| {
            assert_eq!(changed["state"], "closed");
            assert_eq!(changed["labels"], json!(["enhancement", "ci"]));
            assert!(t.starts_with("updated acme/widgets#8 [closed]"), "{t}");
        })
        .by("bob"),
        Row::ok(
            "listed as closed",
            "github_list_issues",
            widgets(json!({"state": "closed"})),
            |closed, _| {
                assert_eq!(numbers(closed, "number"), BTreeSet::from([3, 8]));
            },
        ),
        Row::fails(
            "a change of nothing",
            update,
            widgets(json!({"number": 8})),
            &["nothing to change"],
        ),
        Row::ok(
            "commented",
            "github_comment_on_issue",
            widgets(json!({"number": 8, "body": "Done in #5."})),
            |posted, t| {
                let url = posted["url"].as_str().unwrap_or_default();
                assert!(
                    url.contains("/acme/widgets/issues/8#issuecomment-"),
                    "{posted}"
                );
                assert!(t.starts_with("commented on acme/widgets#8: "), "{t}");
            },
        ),
        Row::ok(
            "the comment read back",
            get,
            widgets(json!({"number": 8})),
            |read, _| {
                assert_eq!(read["comments"], 1);
                assert_eq!(read["comment_items"][0]["author"], "alice");
                assert_eq!(read["comment_items"][0]["body"], "Done in #5.");
            },
        ),
    ]);
    Ok(())
}

#[test]
fn pull_requests_are_listed_and_summarised() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let (list, get) = ("github_list_pull_requests", "github_get_pull_request");
    let five = widgets(json!({"number": 5}));
    env.table(vec![
        Row::ok("open ones", list, widgets(json!({})), |open, t| {
            assert_eq!(numbers(open, "number"), BTreeSet::from([5, 6, 7]));
            let draft = open["items"].as_array().and_then(|i| i.iter().find(|p| p["number"] == 7)).cloned().unwrap_or_default();
            assert_eq!((draft["draft"].clone(), draft["author"].clone()), (json!(true), json!("carol")));
            assert!(t.contains("#5 [open] Fast rendering and no panic on empty text (feature/fast-render → main) by alice (enhancement) review requested: @bob"), "{t}");
        }),
        Row::ok("by head branch", list, widgets(json!({"head": "feature/fast-render"})), |one, _| {
            assert_eq!(numbers(one, "number"), BTreeSet::from([5]));
        }),
        Row::ok("closed ones: none", list, widgets(json!({"state": "closed"})), |none, t| {
            assert_eq!(none["items"], json!([]));
            assert_eq!(t, "no matching pull requests");
        }),
        Row::ok("#5: state, branches and reviews", get, five.clone(), |pr, _| {
            assert_eq!(pr["title"], "Fast rendering and no panic on empty text");
            assert_eq!((pr["state"].clone(), pr["author"].clone()), (json!("open"), json!("alice")));
            assert_eq!((pr["head"].clone(), pr["base"].clone()), (json!("feature/fast-render"), json!("main")));
            assert_eq!((pr["mergeable"].clone(), pr["mergeable_state"].clone()), (json!(true), json!("unstable")));
            assert_eq!(pr["requested_reviewers"], json!(["bob"]));
            assert_eq!(pr["review"], json!({"decision": "review_required", "reviews": []}));
            assert_eq!(pr["comments"], 1);
        }),
        Row::ok("#5: changes, most changed first", get, five.clone(), |pr, _| {
            let changes = &pr["changes"];
            assert_eq!((changes["commits"].clone(), changes["files"].clone()), (json!(2), json!(3)));
            let top = changes["top_files"].as_array().cloned().unwrap_or_default();
            let paths: BTreeSet<&str> = top.iter().filter_map(|f| f["path"].as_str()).collect();
            assert_eq!(paths, BTreeSet::from(["src/lib.rs", "src/render.rs", "src/widget.rs"]));
            let count = |f: &Value, key: &str| f[key].as_u64().unwrap_or(0);
            let added: u64 = top.iter().map(|f| count(f, "additions")).sum();
            assert_eq!(added, changes["additions"].as_u64().unwrap_or(u64::MAX));
            let sizes: Vec<u64> = top.iter().map(|f| count(f, "additions") + count(f, "deletions")).collect();
            assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "most changed first: {sizes:?}");
            let render = top.iter().find(|f| f["path"] == "src/render.rs").cloned().unwrap_or_default();
            assert_eq!((render["status"].clone(), render["deletions"].clone()), (json!("added"), json!(0)));
        }),
        Row::ok("#5: checks", get, five.clone(), |pr, _| {
            let checks = &pr["checks"];
            assert_eq!(checks["state"], "failure");
            let states = [("build", "success"), ("test", "failure"), ("lint", "success"), ("security/scan", "success"), ("license/check", "pending")];
            for (name, state) in states {
                let items = checks["items"].as_array().cloned().unwrap_or_default();
                assert!(items.contains(&json!({"name": name, "state": state})), "{name} {state}: {checks}");
            }
        }),
        Row::ok("#5: the text", get, five, |_, t| {
            assert!(t.contains("mergeable: true (unstable)"), "{t}");
            assert!(t.contains("checks: failure, build success, test failure"), "{t}");
            assert!(t.contains("2 commits, 3 files, +"), "{t}");
        }),
        Row::ok("#5: one file at most", get, widgets(json!({"number": 5, "max_files": 1})), |limited, t| {
            assert_eq!(limited["changes"]["top_files"].as_array().map(Vec::len), Some(1));
            assert_eq!(limited["changes"]["other_files"], 2);
            assert!(t.contains("… and 2 more files"), "{t}");
        }),
        Row::ok("#7: a draft with conflicts and no checks", get, widgets(json!({"number": 7})), |pr7, _| {
            assert_eq!((pr7["draft"].clone(), pr7["mergeable"].clone()), (json!(true), json!(false)));
            assert_eq!(pr7["mergeable_state"], "dirty");
            assert_eq!(pr7["checks"], json!({"state": "none", "items": []}));
        }),
        Row::fails("one that is not there", get, widgets(json!({"number": 999})), &["not found"]),
    ]);
    Ok(())
}

#[test]
fn a_pull_request_summary_is_a_twentieth_of_the_raw_responses() -> Result<()> {
    // The summary against the raw responses a passthrough would return for the same
    // question: the five GitHub payloads the tool reads.
    let env = ToolEnv::github().start()?;
    let (pr, t) = env
        .user("alice")
        .ok_text("github_get_pull_request", widgets(json!({"number": 5})));
    let head_sha = pr["head_sha"].as_str().unwrap_or_default().to_owned();
    let raw_bytes: usize = [
        "/pulls/5".to_owned(),
        "/pulls/5/files".into(),
        "/pulls/5/reviews".into(),
        format!("/commits/{head_sha}/check-runs"),
        format!("/commits/{head_sha}/status"),
    ]
    .iter()
    .map(|path| {
        env.upstream_get("alice", &format!("repos/acme/widgets{path}"))
            .1
            .len()
    })
    .sum();
    let ours = serde_json::to_string(&pr)?.len();
    println!(
        "pull request summary: {ours} bytes structured, {} bytes text; raw {raw_bytes} bytes ({:.0}x)",
        t.len(),
        raw_bytes as f64 / ours as f64
    );
    assert!(raw_bytes >= 20 * ours, "{raw_bytes} raw vs {ours}");
    Ok(())
}

#[test]
fn a_pull_request_diff_is_per_file_and_bounded() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let diff = "github_get_pull_request_diff";
    env.table(vec![
        Row::ok("every file", diff, widgets(json!({"number": 5})), |d, t| {
            assert_eq!(d["truncated"], false);
            let files = d["files"].as_array().cloned().unwrap_or_default();
            assert_eq!(files.len(), 3);
            let render = files
                .iter()
                .find(|f| f["path"] == "src/render.rs")
                .cloned()
                .unwrap_or_default();
            assert_eq!(render["status"], "added");
            let patch = render["patch"].as_str().unwrap_or_default();
            assert!(patch.starts_with("@@ -0,0 +1"), "{patch}");
            assert!(
                patch.contains("+pub fn render_into(widget: &Widget, out: &mut String) {"),
                "{patch}"
            );
            assert!(t.contains("--- src/render.rs (added, +"), "{t}");
            assert!(
                t.contains("+    pub fn initial(&self) -> Option<char> {"),
                "{t}"
            );
        }),
        Row::ok(
            "the files a pattern names",
            diff,
            widgets(json!({"number": 5, "paths": ["src/ren*.rs"]})),
            |only, t| {
                assert_eq!(only["files"].as_array().map(Vec::len), Some(1));
                assert_eq!(only["files"][0]["path"], "src/render.rs");
                assert!(!t.contains("src/widget.rs"), "{t}");
            },
        ),
        Row::ok(
            "each file cut",
            diff,
            widgets(json!({"number": 5, "max_file_chars": 80})),
            |cut, t| {
                assert_eq!(cut["truncated"], true);
                for f in cut["files"].as_array().into_iter().flatten() {
                    assert_eq!(f["truncated"], true, "{f}");
                    let patch = f["patch"].as_str().unwrap_or_default();
                    assert!(
                        patch.contains("…[truncated: ") && patch.ends_with(" more lines]"),
                        "{f}"
                    );
                }
                assert!(t.contains("more lines]"), "{t}");
            },
        ),
        Row::ok(
            "files left out for room",
            diff,
            widgets(json!({"number": 5, "max_chars": 300})),
            |tight, t| {
                assert_eq!(tight["truncated"], true);
                let shown = tight["files"].as_array().map(Vec::len).unwrap_or(0);
                let omitted = tight["omitted"].as_array().map(Vec::len).unwrap_or(0);
                assert_eq!(shown + omitted, 3, "{tight}");
                assert!(omitted >= 1, "{tight}");
                assert!(
                    t.contains("…[left out for room: ") && t.contains("ask for them with paths]"),
                    "{t}"
                );
            },
        ),
        Row::ok(
            "no file matches",
            diff,
            widgets(json!({"number": 5, "paths": ["docs/"]})),
            |nothing, t| {
                assert_eq!(nothing["files"], json!([]));
                assert_eq!(t, "no changed file matches paths");
            },
        ),
    ]);
    Ok(())
}

#[test]
fn pull_requests_are_opened_and_one_without_commits_is_rejected() -> Result<()> {
    let env = ToolEnv::github().without_confirmation().start()?;
    let create = "github_create_pull_request";
    let stacked = json!({"title": "Stack fast rendering on the typo fix", "head": "feature/fast-render", "base": "fix/readme-typo", "body": "Stacked.", "draft": true});
    env.table(vec![
        Row::ok(
            "a draft on another branch",
            create,
            widgets(stacked),
            |made, t| {
                assert_eq!(made["number"], 8);
                assert_eq!(
                    (made["state"].clone(), made["draft"].clone()),
                    (json!("open"), json!(true))
                );
                assert_eq!(
                    (made["head"].clone(), made["base"].clone()),
                    (json!("feature/fast-render"), json!("fix/readme-typo"))
                );
                assert!(
                    t.starts_with("opened acme/widgets#8 [open, draft] Stack fast rendering"),
                    "{t}"
                );
            },
        ),
        Row::ok(
            "read back by bob",
            "github_get_pull_request",
            widgets(json!({"number": 8})),
            |read, _| {
                assert_eq!(read["body"], "Stacked.");
                assert_eq!(read["author"], "alice");
                assert_eq!(read["changes"]["commits"], 2);
            },
        )
        .by("bob"),
        Row::fails(
            "no commits between",
            create,
            widgets(json!({"title": "Nothing", "head": "stale"})),
            &["rejected", "No commits between main and stale"],
        ),
    ]);
    assert_eq!(env.journal("POST", "/repos/acme/widgets/pulls").len(), 2);
    Ok(())
}

#[test]
fn reviews_approve_comment_and_request_changes() -> Result<()> {
    let env = ToolEnv::github().without_confirmation().start()?;
    let (review, get) = ("github_review_pull_request", "github_get_pull_request");
    let pr5_head = env.user("alice").ok(get, widgets(json!({"number": 5})))["head_sha"].clone();
    let line_comment = json!({"number": 5, "event": "COMMENT", "body": "One nit.", "comments": [{"path": "src/render.rs", "line": 3, "body": "Say why it reuses the buffer."}]});
    env.table(vec![
        Row::ok("an approval", review, widgets(json!({"number": 6, "event": "APPROVE"})), |approved, t| {
            assert_eq!(approved["state"], "APPROVED");
            assert!(t.starts_with("reviewed acme/widgets#6: approved; "), "{t}");
        }),
        Row::ok("the approval read back", get, widgets(json!({"number": 6})), |pr6, _| {
            let review = json!({"decision": "approved", "reviews": [{"author": "alice", "state": "APPROVED"}]});
            assert_eq!(pr6["review"], review);
        })
        .by("bob"),
        Row::ok("a comment with a line comment", review, widgets(line_comment), |commented, t| {
            assert_eq!((commented["state"].clone(), commented["comments"].clone()), (json!("COMMENTED"), json!(1)));
            assert!(t.contains("commented with 1 line comment(s)"), "{t}");
            assert_eq!(commented["commit_sha"], pr5_head);
        })
        .by("bob"),
        Row::ok("the comment read back", get, widgets(json!({"number": 5})), |pr5, _| {
            assert_eq!(pr5["review"]["reviews"], json!([{"author": "bob", "state": "COMMENTED"}]));
            assert_eq!(pr5["review"]["decision"], "review_required");
        }),
        Row::ok("a change request", review, widgets(json!({"number": 7, "event": "REQUEST_CHANGES", "body": "Please rebase on main."})), |_, _| {}),
        Row::ok("the change request read back", get, widgets(json!({"number": 7})), |pr7, _| {
            assert_eq!(pr7["review"]["decision"], "changes_requested");
        }),
        Row::fails("approving one's own", review, widgets(json!({"number": 5, "event": "APPROVE"})), &["Can not approve your own pull request"]),
        Row::fails("a comment saying nothing", review, widgets(json!({"number": 6, "event": "COMMENT"})), &["needs a body or line comments"]),
        Row::fails("an unknown event", review, widgets(json!({"number": 6, "event": "LGTM"})), &["invalid arguments"]),
    ]);
    Ok(())
}

#[test]
fn a_merge_is_guarded_by_the_expected_head_and_sent_once() -> Result<()> {
    let env = ToolEnv::github().without_confirmation().start()?;
    let (merge, get) = ("github_merge_pull_request", "github_get_pull_request");
    let head = env.user("alice").ok(get, widgets(json!({"number": 6})))["head_sha"].clone();
    let zero = "0000000000000000000000000000000000000000";
    let merged_as = RefCell::new(String::new());
    env.table(vec![
        Row::fails(
            "at a head not the current one",
            merge,
            widgets(json!({"number": 6, "expected_head_sha": zero})),
            &["Head branch was modified"],
        ),
        Row::ok(
            "a squash at the expected head",
            merge,
            widgets(json!({"number": 6, "method": "squash", "expected_head_sha": head})),
            |merged, t| {
                assert_eq!(merged["merged"], true);
                let sha = merged["sha"].as_str().unwrap_or_default();
                assert_eq!(
                    t,
                    format!("merged acme/widgets#6 (squash) as {}", short(sha))
                );
                *merged_as.borrow_mut() = sha.to_owned();
            },
        ),
        Row::ok(
            "the pull request read back",
            get,
            widgets(json!({"number": 6})),
            |pr6, _| {
                assert_eq!(pr6["state"], "merged");
            },
        ),
        Row::ok(
            "its change on main",
            "github_get_file",
            widgets(json!({"path": "README.md"})),
            |readme, _| {
                let content = readme["content"].as_str().unwrap_or_default();
                assert!(content.contains("one space on either side"), "{readme}");
            },
        ),
        Row::ok(
            "its commit on main",
            "github_list_commits",
            widgets(json!({"limit": 1})),
            |log, _| {
                assert_eq!(log["items"][0]["sha"], merged_as.borrow().as_str());
                assert_eq!(log["items"][0]["title"], "Fix a typo in the README (#6)");
            },
        ),
        Row::fails(
            "one that is not mergeable",
            merge,
            widgets(json!({"number": 7})),
            &["Pull Request is not mergeable"],
        ),
    ]);
    let merges = env.statuses("PUT", "/pulls/6/merge");
    assert_eq!(
        merges,
        [409, 200],
        "each merge was sent once, never repeated"
    );
    Ok(())
}

/// Pushes a commit to `fix/readme-typo` (pull request #6's branch) as bob; returns its sha.
fn push_to_pr6(env: &ToolEnv, message: &str) -> String {
    let push = json!({"repo": "acme/widgets", "branch": "fix/readme-typo", "author": "bob", "message": message});
    let pushed = env.upstream.control("push", &push).expect("pushed");
    pushed["sha"].as_str().unwrap_or_default().to_owned()
}

/// Asserts `shown` names each of `parts`.
fn shows(shown: &str, parts: &[&str]) {
    for part in parts {
        assert!(shown.contains(part), "{part:?} missing from {shown:?}");
    }
}

#[test]
fn a_merge_confirmation_shows_the_exact_merge_and_a_push_after_it_refuses_the_merge() -> Result<()>
{
    let env = ToolEnv::github().start()?;
    let alice = env.user("alice");
    let head = alice.ok("github_get_pull_request", widgets(json!({"number": 6})))["head_sha"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(head.len(), 40, "{head}");
    // The question names the pull request, its title, both branches, the head commit and
    // the merge method: what will happen, not just which tool.
    let (merge, args) = (
        "github_merge_pull_request",
        widgets(json!({"number": 6, "method": "squash"})),
    );
    let asked = alice.ask(merge, args.clone());
    let head_line = format!("head commit {head}");
    shows(
        &asked.message,
        &[
            "github_merge_pull_request on acme/widgets",
            "pull request acme/widgets#6",
            "\u{201c}Fix a typo in the README\u{201d}",
            "from branch \u{201c}fix/readme-typo\u{201d} into \u{201c}main\u{201d}",
            &head_line,
            "merge method squash",
            "cannot be undone",
        ],
    );
    // Someone pushes to the pull request's branch after the user approved the merge.
    let new_head = push_to_pr6(&env, "Sneak in a change");
    assert_ne!(new_head, head);
    let refused = alice.answer(merge, &args, &asked, true);
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(
        text(&refused).contains("changed after the user approved it"),
        "{refused}"
    );
    // Nothing merged: GitHub was asked to merge the approved head only, and refused.
    assert_eq!(env.statuses("PUT", "/pulls/6/merge"), [409]);
    assert_eq!(
        alice.ok("github_get_pull_request", widgets(json!({"number": 6})))["state"],
        "open"
    );
    // The audit trail records what the user was shown and the head it was bound to.
    let records = env.audit(200);
    let confirmed = records
        .iter()
        .find(|r| r["kind"] == "decision" && r["tool"] == merge && r["decision"] == "allow")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        confirmed["confirmation"]["shown"],
        asked.message.as_str(),
        "{records:?}"
    );
    assert_eq!(confirmed["confirmation"]["answer"], "confirmed");
    let binding = json!({"head_sha": head, "merge_method": "squash"});
    assert_eq!(confirmed["confirmation"]["binding"], binding);
    // Asked again, the user sees the new head; confirmed, the merge goes through.
    let asked = alice.ask(merge, args.clone());
    assert!(
        asked.message.contains(&format!("head commit {new_head}")),
        "{asked:?}"
    );
    let done = alice.answer(merge, &args, &asked, true);
    alice.assert_ok(merge, &args, &done);
    assert_eq!(done["structuredContent"]["merged"], true);
    assert_eq!(env.statuses("PUT", "/pulls/6/merge"), [409, 200]);
    Ok(())
}

#[test]
fn an_approving_review_needs_confirmation_and_is_bound_to_the_head_shown() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let (alice, bob) = (env.user("alice"), env.user("bob"));
    let (review, get) = ("github_review_pull_request", "github_get_pull_request");
    // A comment needs no confirmation.
    let comment = widgets(json!({"number": 5, "event": "COMMENT", "body": "One nit."}));
    assert_eq!(bob.ok(review, comment)["state"], "COMMENTED");
    // An approval does, naming what is approved.
    let head_sha = || {
        alice.ok(get, widgets(json!({"number": 6})))["head_sha"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let head = head_sha();
    let args = widgets(json!({"number": 6, "event": "APPROVE"}));
    let asked = alice.ask(review, args.clone());
    let head_line = format!("head commit {head}");
    shows(
        &asked.message,
        &[
            "approve pull request acme/widgets#6",
            "\u{201c}Fix a typo in the README\u{201d}",
            "\u{201c}fix/readme-typo\u{201d} into \u{201c}main\u{201d}",
            &head_line,
        ],
    );
    assert!(!asked.message.contains("cannot be undone"), "{asked:?}");
    assert!(env.journal("POST", "/pulls/6/reviews").is_empty());
    // A push between the answer and the call: no review is posted.
    push_to_pr6(&env, "More");
    let refused = alice.answer(review, &args, &asked, true);
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(
        text(&refused).contains("changed after the user approved it"),
        "{refused}"
    );
    assert!(env.journal("POST", "/pulls/6/reviews").is_empty());
    // Asked anew and confirmed: the approval is of exactly the head shown.
    let asked = alice.ask(review, args.clone());
    let new_head = head_sha();
    assert!(asked.message.contains(&new_head), "{asked:?}");
    let done = alice.answer(review, &args, &asked, true);
    alice.assert_ok(review, &args, &done);
    assert_eq!(done["structuredContent"]["state"], "APPROVED");
    assert_eq!(done["structuredContent"]["commit_sha"], new_head.as_str());
    assert_eq!(env.journal("POST", "/pulls/6/reviews").len(), 1);
    Ok(())
}

#[test]
fn the_upstream_refuses_what_the_policy_allowed() -> Result<()> {
    // The tenant policy lets every user call every tool; bob is only triage upstream.
    let env = ToolEnv::github().without_confirmation().start()?;
    let names = env.user("bob").client().tool_names()?;
    assert!(names.iter().any(|n| n == "github_merge_pull_request"));
    env.table(vec![
        Row::fails(
            "bob merges",
            "github_merge_pull_request",
            widgets(json!({"number": 6})),
            &["ghes refused this user", "Must have push access"],
        )
        .by("bob"),
        Row::ok(
            "nothing merged",
            "github_get_pull_request",
            widgets(json!({"number": 6})),
            |pr6, _| {
                assert_eq!(pr6["state"], "open");
            },
        ),
        Row::fails(
            "bob makes a branch",
            "github_create_branch",
            widgets(json!({"branch": "bob/x"})),
            &["refused", "push access"],
        )
        .by("bob"),
        Row::fails(
            "bob deletes a branch",
            "github_delete_branch",
            widgets(json!({"branch": "stale"})),
            &["refused", "push access"],
        )
        .by("bob"),
        Row::ok(
            "no branch made or deleted",
            "github_list_branches",
            widgets(json!({})),
            |b, _| {
                let names = strings(b, "name");
                assert!(names.iter().any(|n| n == "stale"));
                assert!(!names.iter().any(|n| n == "bob/x"));
            },
        ),
        // What bob may do upstream still works for him.
        Row::ok("bob's account", "github_whoami", json!({}), |me, _| {
            assert_eq!(me["login"], "bob");
        })
        .by("bob"),
        Row::ok(
            "bob comments",
            "github_comment_on_issue",
            widgets(json!({"number": 6, "body": "Thanks!"})),
            |posted, _| {
                assert!(posted["url"].is_string());
            },
        )
        .by("bob"),
    ]);
    let merges = env.journal("PUT", "/pulls/6/merge");
    assert_eq!(merges.len(), 1, "{merges:?}");
    let sent = (merges[0]["user"].clone(), merges[0]["status"].clone());
    assert_eq!(sent, (json!("bob"), json!(403)));
    Ok(())
}

#[test]
fn workflow_runs_are_listed_and_filtered() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let runs = "github_list_workflow_runs";
    let all = env.user("alice").ok(runs, widgets(json!({})));
    let run_id = all["items"][1]["id"].as_u64().unwrap_or_default();
    env.table(vec![
        Row::ok("every run, newest first", runs, widgets(json!({})), |all, t| {
            assert_eq!(strings(all, "branch"), ["fix/readme-typo", "feature/fast-render", "main"]);
            assert_eq!(strings(all, "status"), ["in_progress", "completed", "completed"]);
            assert_eq!(strings(all, "conclusion"), ["null", "failure", "success"]);
            assert!(all["items"][0]["conclusion"].is_null());
            assert_eq!(strings(all, "workflow"), ["CI", "CI", "CI"]);
            let failed = &all["items"][1];
            assert_eq!((failed["event"].clone(), failed["actor"].clone()), (json!("pull_request"), json!("alice")));
            assert_eq!(failed["title"], "Widget::initial no longer panics on empty text");
            let line = format!("run {run_id} CI [failure] Widget::initial no longer panics on empty text on feature/fast-render (pull_request, ");
            assert!(t.contains(&line), "{t}");
        }),
        Row::ok("failed ones", runs, widgets(json!({"status": "failure"})), |f, _| {
            assert_eq!(numbers(f, "id"), BTreeSet::from([run_id]));
        }),
        Row::ok("of a branch", runs, widgets(json!({"branch": "main"})), |b, _| {
            assert_eq!(strings(b, "conclusion"), ["success"]);
        }),
    ]);
    Ok(())
}

/// The id of `acme/widgets`' failed run (on `feature/fast-render`).
fn failed_run(env: &ToolEnv) -> u64 {
    let runs = env.user("alice").ok(
        "github_list_workflow_runs",
        widgets(json!({"status": "failure"})),
    );
    runs["items"][0]["id"].as_u64().unwrap_or_default()
}

#[test]
fn a_failed_job_log_is_tailed_through_the_redirect_without_the_token() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let run_id = failed_run(&env);
    env.upstream.clear_requests()?;
    let (logs, t) = env.user("alice").ok_text(
        "github_get_failed_job_log",
        widgets(json!({"run_id": run_id})),
    );
    assert_eq!(logs["run_id"], run_id);
    let jobs = logs["jobs"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 1, "{logs}");
    let job = &jobs[0];
    assert_eq!(
        (job["name"].clone(), job["conclusion"].clone()),
        (json!("test"), json!("failure"))
    );
    assert_eq!(job["failed_step"], "Run test");
    assert!(
        job["total_lines"].as_u64().is_some_and(|n| n > 300),
        "{job}"
    );
    let tail: Vec<&str> = job["tail"].as_str().unwrap_or_default().lines().collect();
    assert_eq!(tail.len(), 50);
    assert!(
        tail.contains(&"test widget::tests::wide_characters_are_measured ... FAILED"),
        "{tail:?}"
    );
    assert!(tail.contains(&"  left: Some(8)"), "{tail:?}");
    assert_eq!(
        tail.last(),
        Some(&"##[error]Process completed with exit code 101.")
    );
    assert!(
        tail.iter().all(|l| !l.starts_with("2024-03-05T")),
        "timestamps stripped: {tail:?}"
    );
    let said = format!(
        "job test ({}) failure at step \"Run test\": last 50 of ",
        job["id"]
    );
    assert!(t.starts_with(&said), "{t}");
    // The log came through the redirect, and the log storage never saw a token.
    let api_log = env
        .journal("", "/logs")
        .first()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (api_log["status"].clone(), api_log["user"].clone()),
        (json!(302), json!("alice"))
    );
    let journal = env.upstream.requests()?;
    let blob = journal
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/_services/actions/logs/"))
        })
        .cloned()
        .unwrap_or_default();
    // Asked for its last 16 MB by range: the whole of a shorter log, as a part.
    assert_eq!(blob["status"], 206, "{journal:?}");
    assert_eq!(
        blob["user"],
        Value::Null,
        "the token went to the log storage: {blob}"
    );
    Ok(())
}

#[test]
fn job_logs_are_read_by_run_and_by_job() -> Result<()> {
    let env = ToolEnv::github().start()?;
    let run_id = failed_run(&env);
    let main = env.user("alice").ok(
        "github_list_workflow_runs",
        widgets(json!({"branch": "main"})),
    );
    let main_run = main["items"][0]["id"].as_u64().unwrap_or_default();
    let (_, jobs) = env.upstream_get(
        "alice",
        &format!("repos/acme/widgets/actions/runs/{run_id}/jobs"),
    );
    let jobs: Value = serde_json::from_str(&jobs)?;
    let build_id = jobs["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["name"] == "build"))
        .and_then(|j| j["id"].as_u64())
        .unwrap_or_default();
    let log = "github_get_failed_job_log";
    let no_job = format!("run {run_id} has no job 999999999");
    env.table(vec![
        Row::ok("the last two lines", log, widgets(json!({"run_id": run_id, "lines": 2})), |short, _| {
            let tail = "error: test failed, to rerun pass `--lib`\n##[error]Process completed with exit code 101.";
            assert_eq!(short["jobs"][0]["tail"], tail);
        }),
        Row::ok("a run without a failed job", log, widgets(json!({"run_id": main_run})), |fine, t| {
            assert_eq!(fine["jobs"], json!([]));
            assert_eq!(t, format!("run {main_run} has no failed job (build success, test success, lint success)"));
        }),
        // One job asked for by id, failed or not.
        Row::ok("a job by id", log, widgets(json!({"run_id": run_id, "job_id": build_id})), |build, _| {
            let job = &build["jobs"][0];
            assert_eq!((job["name"].clone(), job["conclusion"].clone()), (json!("build"), json!("success")));
            assert!(job.get("failed_step").is_none(), "{build}");
            assert!(job["tail"].as_str().is_some_and(|t| !t.is_empty()), "{build}");
        }),
        Row::fails("a job not in the run", log, widgets(json!({"run_id": run_id, "job_id": 999_999_999u64})), &[&no_job]),
        Row::fails("a run that is not there", log, widgets(json!({"run_id": 999_999})), &["not found"]),
    ]);
    Ok(())
}

#[test]
fn binary_files_are_reported_not_dumped() -> Result<()> {
    // A seed of its own: the built-in one has text files only.
    let seed = json!({
        "users": [{"login": "alice"}],
        "tokens": [{"token": seed_token("alice"), "user": "alice", "scopes": ["repo"]}],
        "namespaces": [{"path": "acme", "members": {"alice": "admin"}}],
        "repos": [{
            "namespace": "acme",
            "name": "assets",
            "commits": [{
                "key": "init",
                "message": "Add the logo",
                "author": "alice",
                "date": "2024-01-01T00:00:00Z",
                "files": {"logo.png": "\u{89}PNG\r\n\u{1a}\n\0\0\0\rIHDR", "README.md": "Brand assets.\n"},
            }],
            "branches": {"main": "init"},
        }],
    });
    let env = ToolEnv::github().seed(seed).start()?;
    let assets = |path: &str| json!({"owner": "acme", "repo": "assets", "path": path});
    env.table(vec![
        Row::ok("an image", "github_get_file", assets("logo.png"), |f, t| {
            assert_eq!(
                (f["binary"].clone(), f["type"].clone()),
                (json!(true), json!("file")),
                "{f}"
            );
            assert!(f.get("content").is_none(), "{f}");
            assert!(
                f["sha"].is_string() && f["size"].as_u64().is_some_and(|n| n > 0),
                "{f}"
            );
            assert!(
                t.starts_with("acme/assets:logo.png is a binary file of "),
                "{t}"
            );
            assert!(t.ends_with("its content is not shown"), "{t}");
        }),
        Row::ok(
            "a text file beside it",
            "github_get_file",
            assets("README.md"),
            |readme, _| {
                assert_eq!(readme["content"], "Brand assets.\n");
                assert!(readme.get("binary").is_none(), "{readme}");
            },
        ),
    ]);
    Ok(())
}

/// A seed user's GitHub token.
fn seed_token(login: &str) -> &'static str {
    e2e::tool_suite::GITHUB_TOKENS
        .iter()
        .find(|(u, _)| *u == login)
        .map_or("", |(_, t)| t)
}

/// A seed of one repository, `acme/shapes`, that alice administers: a commit by her on
/// `main`, and on `topic` one by an author with no account on the server.
fn shapes_seed() -> Value {
    json!({
        "users": [{"login": "alice", "name": "Alice Admin", "email": "alice@acme.test"}],
        "tokens": [{"token": seed_token("alice"), "user": "alice", "scopes": ["repo"]}],
        "namespaces": [{"path": "acme", "members": {"alice": "admin"}}],
        "repos": [{
            "namespace": "acme",
            "name": "shapes",
            "commits": [
                {"key": "init", "message": "Add shapes", "author": "alice", "date": "2024-01-01T00:00:00Z", "files": {"README.md": "Shapes.\n"}},
                {"key": "circle", "parents": ["init"], "message": "Add a circle\n\nRound.", "author": "Dana Doe <dana@example.com>", "date": "2024-01-02T00:00:00Z", "files": {"circle.txt": "o\n"}},
            ],
            "branches": {"main": "init", "topic": "circle"},
        }],
    })
}

#[test]
fn a_commit_without_an_account_shows_its_git_author() -> Result<()> {
    // GitHub sends `author: {}` (or null) for a commit whose e-mail matches no account.
    let env = ToolEnv::github().seed(shapes_seed()).start()?;
    let topic = json!({"owner": "acme", "repo": "shapes", "ref": "topic"});
    env.table(vec![Row::ok(
        "a commit of no account",
        "github_list_commits",
        topic,
        |page, t| {
            assert_eq!(strings(page, "author"), ["Dana Doe", "alice"], "{page}");
            assert_eq!(page["items"][0]["author_email"], "dana@example.com");
            assert!(page["items"][1].get("author_email").is_none(), "{page}");
            assert!(
                t.contains(" 2024-01-02 Dana Doe <dana@example.com> Add a circle"),
                "{t}"
            );
            assert!(t.contains(" 2024-01-01 alice Add shapes"), "{t}");
        },
    )]);
    Ok(())
}

#[test]
fn writes_leave_out_the_fields_the_caller_did_not_give() -> Result<()> {
    // GitHub refuses `null` for the fields its schema declares plain strings (`body`).
    let env = ToolEnv::github()
        .without_confirmation()
        .seed(shapes_seed())
        .start()?;
    let numbered = |v: &Value, _: &str| assert!(v["number"].as_u64().is_some(), "{v}");
    let shapes = |extra: Value| with(&json!({"owner": "acme", "repo": "shapes"}), extra);
    env.table(vec![
        Row::ok(
            "a pull request without a body",
            "github_create_pull_request",
            shapes(json!({"title": "Circle", "head": "topic"})),
            numbered,
        ),
        Row::ok(
            "an issue without a body",
            "github_create_issue",
            shapes(json!({"title": "Squares too"})),
            numbered,
        ),
    ]);
    Ok(())
}

#[test]
fn a_pull_request_summary_shows_what_the_app_may_not_read() -> Result<()> {
    // A GitHub App without the Checks or Commit statuses read permission gets 403
    // "Resource not accessible by integration" for those parts of a pull request it can read.
    let env = ToolEnv::github().without_confirmation().start()?;
    let alice = env.user("alice");
    let runs = "/commits/[^/]+/check-runs$";
    let status = "/commits/[^/]+/status$";
    let cases: [(&[&str], &[&str]); 3] = [
        (&[runs], &["check runs"]),
        (&[status], &["commit statuses"]),
        (&[runs, status], &["check runs", "commit statuses"]),
    ];
    for (refused, parts) in cases {
        for path in refused {
            let fault =
                json!({"method": "GET", "path_regex": path, "action": "status", "status": 403});
            env.upstream.control("faults", &fault)?;
        }
        let (pr, t) = alice.ok_text("github_get_pull_request", widgets(json!({"number": 5})));
        let unread: Vec<&Value> = pr["unread"].as_array().into_iter().flatten().collect();
        let names: Vec<&str> = unread.iter().filter_map(|u| u["part"].as_str()).collect();
        assert_eq!(names, parts, "{pr}");
        for (u, part) in unread.iter().zip(parts) {
            let line = format!("{part}: {}", u["reason"].as_str().unwrap_or_default());
            assert!(
                line.contains("not visible with this app's permissions"),
                "{line}"
            );
            assert!(t.contains(&line), "{t}");
        }
        // The rest of the summary stands.
        assert_eq!(pr["review"]["decision"], "review_required", "{pr}");
        let top = pr["changes"]["top_files"].as_array();
        assert!(top.is_some_and(|f| !f.is_empty()), "{pr}");
        assert_eq!(pr["checks"].is_null(), parts.len() == 2, "{pr}");
        env.upstream.control_delete("faults")?;
    }
    Ok(())
}

#[test]
fn a_failed_job_is_found_past_the_first_hundred_and_a_long_log_is_read_from_its_end() -> Result<()>
{
    // 105 jobs: the jobs list has two pages. The failed job's log is over the connector's
    // 16 MB read limit: only a range request reaches its last lines.
    let filler = format!("{}\n", "x".repeat(99));
    let mut long_log = filler.repeat(170_000);
    long_log.push_str("error: the real cause is at the end\n");
    let mut jobs: Vec<Value> = (0..105)
        .map(|i| json!({"name": format!("shard {i}"), "status": "success", "log": "ok\n"}))
        .collect();
    jobs[102] = json!({"name": "shard 102", "status": "failure", "log": long_log});
    let mut seed = shapes_seed();
    seed["repos"][0]["pipelines"] = json!([{
        "name": "CI", "branch": "main", "event": "push", "status": "failure",
        "actor": "alice", "created_at": "2024-01-03T00:00:00Z", "jobs": jobs,
    }]);
    let env = ToolEnv::github().seed(seed).start()?;
    let alice = env.user("alice");
    let shapes = |extra: Value| with(&json!({"owner": "acme", "repo": "shapes"}), extra);
    let runs = alice.ok("github_list_workflow_runs", shapes(json!({})));
    let run_id = runs["items"][0]["id"].clone();
    let log = "github_get_failed_job_log";
    let failed = alice.ok(log, shapes(json!({"run_id": run_id})));
    let job_id = failed["jobs"][0]["id"].clone();
    assert_eq!(failed["jobs"][0]["name"], "shard 102", "{failed}");
    // The same job asked for by id, found on the second page.
    let (by_id, t) = alice.ok_text(
        log,
        shapes(json!({"run_id": run_id, "job_id": job_id, "lines": 3})),
    );
    for found in [&failed, &by_id] {
        let job = &found["jobs"][0];
        let tail = job["tail"].as_str().unwrap_or_default();
        assert!(
            tail.ends_with("error: the real cause is at the end"),
            "{}",
            tail.len()
        );
        let partial = job["partial"].as_str();
        assert!(
            partial.is_some_and(|p| p.contains("only its last 16777216 were read")),
            "{job}"
        );
    }
    assert!(t.contains("(the log has "), "{t}");
    Ok(())
}

/// The tenant policy of the two-instance tests: the agent role `triage` may use GitHub tools
/// on `ghes-sandbox` only; the users' grants allow everything.
const SANDBOX_ONLY_POLICY: &str = r#"version = 1
[roles.triage]
allow = [{ tools = ["github_*"], instance = "ghes-sandbox" }]
[groups.eng]
allow = [{ tools = ["*"] }]
"#;

/// Two instances of the same fake: `ghes-prod`, and `ghes-sandbox`, which lists `localhost`
/// as log storage.
const TWO_INSTANCES: [(&str, &str); 2] = [
    ("ghes-prod", ""),
    ("ghes-sandbox", "log_storage_hosts = [\"localhost\"]\n"),
];

/// A role limited to one instance allows a call there, and denies the same owner/repo on
/// the connector's other instance of the same kind; tools/list shows which instances each
/// tool can act on; the audit records name the instance.
#[test]
fn an_instance_scoped_role_allows_its_instance_and_denies_the_same_repo_on_another() -> Result<()> {
    let env = ToolEnv::github()
        .policy(SANDBOX_ONLY_POLICY)
        .without_confirmation()
        .instances(&TWO_INSTANCES)
        .start()?;
    let alice = env.user("alice");
    let tools = alice.client().tools()?;
    let get_issue = tools
        .iter()
        .find(|t| t["name"] == "github_get_issue")
        .cloned()
        .unwrap_or_default();
    let instances = json!(["ghes-prod", "ghes-sandbox"]);
    assert_eq!(
        get_issue["_meta"]["mcp-edge/instances"], instances,
        "{get_issue}"
    );
    let choices = get_issue["inputSchema"]["properties"]["instance"]["enum"].clone();
    let offered = |i: &str| choices.as_array().is_some_and(|c| c.contains(&json!(i)));
    assert!(
        offered("ghes-prod") && offered("ghes-sandbox"),
        "{get_issue}"
    );
    let issue = |extra: Value| widgets(with(&json!({"number": 1}), extra));
    env.table(vec![
        Row::ok(
            "on the sandbox",
            "github_get_issue",
            issue(json!({"instance": "ghes-sandbox"})),
            |v, _| {
                assert_eq!(v["number"], 1);
            },
        ),
        Row::fails(
            "on prod",
            "github_get_issue",
            issue(json!({"instance": "ghes-prod"})),
            &["role triage", "ghes-prod:acme/widgets"],
        ),
        // With two instances a call that names none has no instance: the scoped rule does
        // not match it (and the connector would ask which one).
        Row::fails(
            "on no instance named",
            "github_get_issue",
            issue(json!({})),
            &[],
        ),
    ]);
    // Only the sandbox call reached the upstream.
    assert_eq!(env.journal("GET", "/repos/acme/widgets/issues/1").len(), 1);
    let records = env.audit(50);
    let decision = |instance: &str, verdict: &str| {
        records.iter().any(|r| {
            r["kind"] == "decision"
                && r["tool"] == "github_get_issue"
                && r["decision"] == verdict
                && r["instance"] == instance
                && r["target"] == "acme/widgets"
        })
    };
    assert!(decision("ghes-sandbox", "allow"), "{records:?}");
    assert!(decision("ghes-prod", "deny"), "{records:?}");
    Ok(())
}

/// A job-log download redirected to a host that is neither the upstream's origin nor in the
/// provider's `log_storage_hosts` is refused with a clear error and never fetched; the same
/// redirect on an instance that lists the host is followed.
#[test]
fn a_job_log_redirect_to_an_unlisted_host_is_refused_and_a_listed_one_fetched() -> Result<()> {
    let env = ToolEnv::github()
        .without_confirmation()
        .instances(&TWO_INSTANCES)
        .start()?;
    let alice = env.user("alice");
    let port = env
        .upstream
        .base
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    // The same fake under another name: another origin, as a separate blob store would be.
    env.upstream
        .set_log_storage(Some(&format!("http://localhost:{port}")))?;
    let on = |instance: &str, extra: Value| widgets(with(&json!({"instance": instance}), extra));
    let runs = alice.ok(
        "github_list_workflow_runs",
        on("ghes-prod", json!({"status": "failure"})),
    );
    let run_id = runs["items"][0]["id"].as_u64().unwrap_or_default();
    env.upstream.clear_requests()?;
    let blob_fetched = || {
        env.journal("GET", "").iter().any(|r| {
            let path = r["path"].as_str().unwrap_or_default();
            path.starts_with("/_services/actions/logs/")
        })
    };
    let any_service = || {
        env.journal("GET", "").iter().any(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/_services/")
        })
    };
    let log = "github_get_failed_job_log";
    let why = "not its own origin nor in log_storage_hosts of provider ghes-prod";
    let refused = alice.fails(log, on("ghes-prod", json!({"run_id": run_id})), why);
    assert!(refused.contains("localhost"), "{refused}");
    assert!(!any_service());
    let logs = alice.ok(log, on("ghes-sandbox", json!({"run_id": run_id})));
    assert!(
        logs["jobs"].as_array().is_some_and(|j| !j.is_empty()),
        "{logs}"
    );
    assert!(blob_fetched(), "the listed log storage was fetched");
    Ok(())
}
