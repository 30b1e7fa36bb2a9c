//! The GitLab tools end to end: an MCP client (stateless 2026-07-28) → runtime → QUIC
//! tunnel → connector → the fake GitLab (`tests/fake-upstream`, built-in seed), with each
//! user's own personal access token in the connector's vault.
//!
//! One table per tool group (accounts and projects, files, branches, commits and code,
//! issues, merge requests, pipelines), each with its own environment ([`ToolEnv`]):
//! - every `gitlab_*` tool is listed with its schemas and annotations;
//! - the reads answer from the seed (including the nested private project
//!   `acme/platform/api`), compactly, with field selection, pagination and typed
//!   not-found errors;
//! - the writes change the fake's state (checked there directly, each sent once), the
//!   destructive ones after the user confirmed;
//! - GitLab's own permissions win over a policy that allows everything: bob, a reporter,
//!   may call merge, and GitLab refuses it with a typed error; stale or unmergeable merges
//!   are rejected; a declined confirmation sends nothing upstream.

use std::cell::Cell;

use anyhow::{Context, Result};
use e2e::tool_suite::{GITLAB_TOKENS, Row, ToolEnv, sorted, strings, text, with};
use serde_json::{Value, json};

/// Every GitLab tool, with whether it is read-only and destructive.
const TOOLS: &[(&str, bool, bool)] = &[
    ("gitlab_whoami", true, false),
    ("gitlab_search_projects", true, false),
    ("gitlab_get_file", true, false),
    ("gitlab_list_branches", true, false),
    ("gitlab_create_branch", false, false),
    ("gitlab_delete_branch", false, true),
    ("gitlab_list_commits", true, false),
    ("gitlab_search_code", true, false),
    ("gitlab_list_issues", true, false),
    ("gitlab_search_issues", true, false),
    ("gitlab_get_issue", true, false),
    ("gitlab_create_issue", false, false),
    ("gitlab_update_issue", false, false),
    ("gitlab_comment_on_issue", false, false),
    ("gitlab_list_merge_requests", true, false),
    ("gitlab_get_merge_request", true, false),
    ("gitlab_get_merge_request_diff", true, false),
    ("gitlab_create_merge_request", false, false),
    ("gitlab_review_merge_request", false, false),
    ("gitlab_merge_merge_request", false, true),
    ("gitlab_list_pipelines", true, false),
    ("gitlab_get_failed_job_log", true, false),
];

/// The tools that act on no single project.
const UNTARGETED: &[&str] = &[
    "gitlab_whoami",
    "gitlab_search_projects",
    "gitlab_search_issues",
];

/// The arguments naming `acme/widgets`, with `extra`.
fn widgets(extra: Value) -> Value {
    with(&json!({"project": "acme/widgets"}), extra)
}

/// The items of a list answer.
fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn every_tool_is_listed_with_its_schemas_and_annotations() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let listed = env.user("alice").listed_tools();
    for (name, read_only, destructive) in TOOLS {
        let t = listed
            .iter()
            .find(|t| t["name"] == *name)
            .with_context(|| format!("{name} is not listed"))?;
        let a = &t["annotations"];
        assert_eq!(a["readOnlyHint"], *read_only, "{name}: {a}");
        assert_eq!(a["destructiveHint"], *destructive, "{name}: {a}");
        let input = &t["inputSchema"];
        assert_eq!(input["type"], "object", "{name}");
        let closed = &input["additionalProperties"];
        assert_eq!(closed, false, "{name} refuses unknown arguments: {input}");
        for (arg, schema) in input["properties"].as_object().context("properties")? {
            let described = schema["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty());
            assert!(described, "{name}.{arg} has a description: {schema}");
        }
        let required = input["required"].as_array();
        if UNTARGETED.contains(name) {
            assert!(input["properties"].get("project").is_none(), "{name}");
        } else {
            let needs_project = required.is_some_and(|r| r.contains(&json!("project")));
            assert!(needs_project, "{name} requires project: {input}");
        }
        assert_eq!(t["outputSchema"]["type"], "object", "{name}: {t}");
        assert!(t["description"].as_str().is_some_and(|d| d.len() > 20));
    }
    let gitlab = |t: &&Value| t["name"].as_str().is_some_and(|n| n.starts_with("gitlab_"));
    let count = listed.iter().filter(gitlab).count();
    assert_eq!(count, TOOLS.len(), "no GitLab tool untested");
    // Lists select fields; single objects do not.
    let props = |name: &str| {
        let found = listed.iter().find(|t| t["name"] == name);
        found
            .map(|t| t["inputSchema"]["properties"].clone())
            .unwrap_or(Value::Null)
    };
    assert!(props("gitlab_list_issues").get("fields").is_some());
    assert!(props("gitlab_merge_merge_request").get("fields").is_none());
    Ok(())
}

#[test]
fn accounts_and_projects_are_found() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    env.table(vec![
        Row::ok("alice's account", "gitlab_whoami", json!({}), |me, t| {
            assert_eq!(me["username"], "alice");
            assert_eq!(me["name"], "Alice Admin");
            assert_eq!(me["instance"], "gitlab");
            assert!(t.starts_with("alice on GitLab at 127.0.0.1"), "{t}");
        }),
        // Membership inherited from the group, nested projects too.
        Row::ok(
            "alice's projects",
            "gitlab_search_projects",
            json!({}),
            |mine, _| {
                assert_eq!(
                    sorted(mine, "project"),
                    ["acme/infra", "acme/platform/api", "acme/widgets"]
                );
            },
        ),
        Row::ok(
            "by name",
            "gitlab_search_projects",
            json!({"query": "platform"}),
            |found, t| {
                assert_eq!(strings(found, "project"), ["acme/platform/api"]);
                assert_eq!(items(found)[0]["default_branch"], "main");
                // `simple=true` answers carry no `visibility`: none is shown, not an empty one.
                assert!(items(found)[0].get("visibility").is_none(), "{found}");
                assert!(t.starts_with("acme/platform/api: "), "{t}");
            },
        ),
    ]);
    Ok(())
}

#[test]
fn files_are_read_at_a_ref_in_excerpts_and_in_nested_projects() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let get = "gitlab_get_file";
    let csv = |extra: Value| widgets(with(&json!({"path": "data/catalog.csv"}), extra));
    let next = Cell::new(0);
    env.table(vec![
        Row::ok(
            "at the default branch",
            get,
            widgets(json!({"path": "README.md"})),
            |readme, t| {
                assert_eq!(readme["ref"], "main");
                let content = readme["content"].as_str().unwrap_or_default();
                assert!(content.contains("one space on each side"), "{readme}");
                assert_eq!(
                    (readme["truncated"].clone(), readme["binary"].clone()),
                    (json!(false), json!(false))
                );
                assert!(t.starts_with("README.md@main"), "{t}");
            },
        ),
        Row::ok(
            "at a ref",
            get,
            widgets(json!({"path": "README.md", "ref": "fix/readme-typo"})),
            |typo, _| {
                assert!(
                    typo["content"]
                        .as_str()
                        .is_some_and(|c| c.contains("either side"))
                );
            },
        ),
        Row::ok(
            "a long one in excerpts",
            get,
            csv(json!({"max_chars": 2000})),
            |csv, _| {
                assert_eq!(
                    (csv["truncated"].clone(), csv["total_lines"].clone()),
                    (json!(true), json!(3001))
                );
                assert!(
                    csv["size"].as_u64().is_some_and(|n| n > 150_000),
                    "{}",
                    csv["size"]
                );
                let content = csv["content"].as_str().unwrap_or_default();
                assert!(
                    content.len() < 2100 && content.ends_with("…[truncated]"),
                    "{content}"
                );
                next.set(csv["next_from_line"].as_u64().expect("next_from_line"));
            },
        ),
        Row::fails(
            "a missing one",
            get,
            widgets(json!({"path": "nope.txt"})),
            &["not found"],
        ),
        // The nested private project, its path one escaped segment.
        Row::ok(
            "in a nested project",
            get,
            json!({"project": "acme/platform/api", "path": "main.go", "ref": "feature/health"}),
            |go, _| {
                assert!(
                    go["content"]
                        .as_str()
                        .is_some_and(|c| c.contains("healthz")),
                    "{go}"
                );
            },
        ),
    ]);
    let next = next.get();
    env.table(vec![Row::ok(
        "read on",
        get,
        csv(json!({"from_line": next, "max_chars": 200})),
        |more, _| {
            assert_eq!(more["from_line"], next);
            let row = format!("W-{:05},", next - 2);
            let content = more["content"].as_str().unwrap_or_default();
            assert!(content.starts_with(&row), "reads on at line {next}: {more}");
        },
    )]);
    Ok(())
}

#[test]
fn branches_are_listed_two_to_a_page() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let list = "gitlab_list_branches";
    env.table(vec![
        Row::ok(
            "the first page",
            list,
            widgets(json!({"limit": 2})),
            |p1, _| {
                assert_eq!(
                    strings(p1, "name"),
                    ["feature/fast-render", "fix/readme-typo"]
                );
                assert_eq!(p1["next_cursor"], "2");
            },
        ),
        Row::ok(
            "the second page",
            list,
            widgets(json!({"limit": 2, "cursor": "2"})),
            |p2, _| {
                assert_eq!(strings(p2, "name"), ["main", "refactor/draw"]);
                let main = &items(p2)[0];
                assert_eq!(
                    (main["default"].clone(), main["protected"].clone()),
                    (json!(true), json!(true))
                );
                assert_eq!(main["title"], "Add the widget catalogue");
            },
        ),
        Row::ok(
            "the last page",
            list,
            widgets(json!({"limit": 2, "cursor": "3"})),
            |p3, t| {
                assert_eq!(strings(p3, "name"), ["stale"]);
                assert_eq!(items(p3)[0]["merged"], true);
                assert!(p3.get("next_cursor").is_none(), "last page: {p3}");
                assert!(t.starts_with("stale [merged]"), "{t}");
            },
        ),
        Row::fails(
            "a cursor that is a URL",
            list,
            widgets(json!({"cursor": "https://evil.example/?page=2"})),
            &["cursor"],
        ),
    ]);
    Ok(())
}

#[test]
fn commits_are_listed_and_code_is_searched() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let (commits, search) = ("gitlab_list_commits", "gitlab_search_code");
    env.table(vec![
        Row::ok(
            "the default branch's",
            commits,
            widgets(json!({})),
            |log, t| {
                let titles = [
                    "Add the widget catalogue",
                    "README: document padding",
                    "Initial commit",
                ];
                assert_eq!(strings(log, "title"), titles);
                assert_eq!(items(log)[0]["sha"].as_str().map(str::len), Some(8));
                assert!(
                    t.contains("README: document padding (Bob Triage, 2024-02-03)"),
                    "{t}"
                );
            },
        ),
        Row::ok(
            "of a path at a ref",
            commits,
            widgets(json!({"ref": "feature/fast-render", "path": "src/render.rs"})),
            |src, _| {
                assert_eq!(strings(src, "title"), ["Render into a reusable buffer"]);
            },
        ),
        Row::ok(
            "by an author",
            commits,
            widgets(json!({"author": "bob"})),
            |by_bob, _| {
                assert_eq!(strings(by_bob, "title"), ["README: document padding"]);
            },
        ),
        Row::ok(
            "code",
            search,
            widgets(json!({"query": "pub fn initial"})),
            |hits, t| {
                assert_eq!(strings(hits, "path"), ["src/widget.rs"]);
                let snippet = items(hits)[0]["snippet"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                assert!(snippet.contains("pub fn initial(&self) -> char"), "{hits}");
                assert!(t.starts_with("src/widget.rs:"), "{t}");
            },
        ),
        Row::ok(
            "code at a ref",
            search,
            widgets(json!({"query": "Option<char>", "ref": "feature/fast-render"})),
            |at_ref, _| {
                assert_eq!(strings(at_ref, "path"), ["src/widget.rs"]);
            },
        ),
    ]);
    Ok(())
}

#[test]
fn a_projects_issues_are_listed_and_filtered() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let list = "gitlab_list_issues";
    env.table(vec![
        // Open by default, newest activity first.
        Row::ok("open ones", list, widgets(json!({})), |open, t| {
            assert_eq!(strings(open, "iid"), ["4", "2", "1"]);
            let first = &items(open)[2];
            assert_eq!(
                (first["project"].clone(), first["author"].clone()),
                (json!("acme/widgets"), json!("bob"))
            );
            assert_eq!(
                (first["assignees"].clone(), first["labels"].clone()),
                (json!(["alice"]), json!(["bug"]))
            );
            assert_eq!(first["comments"], 2);
            assert!(
                t.contains(
                    "acme/widgets#1 [opened] Widget::initial panics on empty text (bug) @alice"
                ),
                "{t}"
            );
        }),
        Row::ok(
            "assigned to me",
            list,
            widgets(json!({"assignee": "me"})),
            |mine, _| {
                assert_eq!(strings(mine, "iid"), ["4", "1"]);
            },
        ),
        Row::ok(
            "by labels",
            list,
            widgets(json!({"labels": ["ci", "needs-triage"]})),
            |bugs, _| {
                assert_eq!(strings(bugs, "iid"), ["4"]);
            },
        ),
        Row::ok(
            "closed ones",
            list,
            widgets(json!({"state": "closed"})),
            |closed, _| {
                assert_eq!(strings(closed, "iid"), ["3"]);
            },
        ),
        Row::ok(
            "recent ones of mine",
            list,
            widgets(json!({"updated_after": "2024-03-01T00:00:00Z", "author": "me"})),
            |recent, _| {
                assert_eq!(strings(recent, "iid"), ["4"]);
            },
        ),
    ]);
    Ok(())
}

#[test]
fn a_projects_issues_are_paged_and_unknown_projects_or_arguments_refused() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let list = "gitlab_list_issues";
    env.table(vec![
        // Field selection keeps the named fields and the cursor.
        Row::ok(
            "two fields, two to a page",
            list,
            widgets(json!({"fields": ["iid", "title"], "limit": 2})),
            |slim, _| {
                assert_eq!(
                    items(slim)[0],
                    json!({"iid": 4, "title": "Flaky test: wide_characters_are_measured"})
                );
                assert_eq!(slim["next_cursor"], "2");
            },
        ),
        Row::ok(
            "the second page",
            list,
            widgets(json!({"fields": ["iid"], "limit": 2, "cursor": "2"})),
            |page2, _| {
                assert_eq!(page2, &json!({"items": [{"iid": 1}]}));
            },
        ),
        Row::fails(
            "of a project that is not there",
            list,
            json!({"project": "acme/nope"}),
            &["not found"],
        ),
        Row::fails(
            "with an unknown argument",
            list,
            widgets(json!({"colour": "red"})),
            &["unknown field"],
        ),
    ]);
    // A path that would walk elsewhere is refused before it reaches the connector (whose
    // own check is a unit test).
    let walk = env
        .user("alice")
        .call(list, json!({"project": "acme/../../user"}));
    assert_eq!(walk["error"]["code"], -32602, "{walk}");
    assert!(env.journal("GET", "/user/issues").is_empty());
    Ok(())
}

#[test]
fn issues_are_searched_across_projects_and_read_with_their_notes() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let (search, get) = ("gitlab_search_issues", "gitlab_get_issue");
    env.table(vec![
        Row::ok(
            "assigned to me, nested projects included",
            search,
            json!({"involvement": "assigned_to_me"}),
            |assigned, _| {
                let mut refs: Vec<String> = items(assigned)
                    .iter()
                    .map(|i| format!("{}#{}", i["project"].as_str().unwrap_or(""), i["iid"]))
                    .collect();
                refs.sort();
                assert_eq!(
                    refs,
                    [
                        "acme/infra#1",
                        "acme/platform/api#1",
                        "acme/widgets#1",
                        "acme/widgets#4"
                    ]
                );
            },
        ),
        Row::ok(
            "created by bob",
            search,
            json!({"involvement": "created_by_me"}),
            |bobs, _| {
                assert_eq!(
                    sorted(bobs, "project"),
                    ["acme/platform/api", "acme/widgets"]
                );
            },
        )
        .by("bob"),
        Row::ok(
            "by words",
            search,
            json!({"text": "TLS certificate"}),
            |words, _| {
                assert_eq!(strings(words, "project"), ["acme/infra"]);
            },
        ),
        Row::fails("for nothing", search, json!({}), &["say what to look for"]),
        // One issue with its notes, a page at a time.
        Row::ok(
            "one with its first note",
            get,
            widgets(json!({"iid": 1, "limit": 1})),
            |issue, t| {
                assert_eq!(issue["title"], "Widget::initial panics on empty text");
                assert!(issue["description"].as_str().is_some_and(|d| !d.is_empty()));
                assert_eq!(issue["notes"].as_array().map(Vec::len), Some(1));
                assert_eq!(issue["notes"][0]["author"], "alice");
                assert!(issue["notes"][0].get("system").is_none(), "{issue}");
                assert_eq!(issue["next_cursor"], "2");
                assert!(t.contains("--- alice at"), "{t}");
            },
        ),
        Row::ok(
            "its next note",
            get,
            widgets(json!({"iid": 1, "limit": 1, "cursor": "2"})),
            |rest, _| {
                assert_eq!(rest["notes"][0]["author"], "bob");
                assert!(rest.get("next_cursor").is_none());
            },
        ),
        Row::ok(
            "one in a nested project",
            get,
            json!({"project": "acme/platform/api", "iid": 1}),
            |nested, _| {
                assert_eq!(nested["notes"][0]["body"], "On it in !2.");
            },
        ),
        Row::fails(
            "one that is not there",
            get,
            widgets(json!({"iid": 999})),
            &["not found", "Issue"],
        ),
    ]);
    Ok(())
}

#[test]
fn merge_requests_are_listed_and_summarised() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let get = "gitlab_get_merge_request";
    env.table(vec![
        Row::ok(
            "open ones",
            "gitlab_list_merge_requests",
            widgets(json!({})),
            |mrs, t| {
                assert_eq!(sorted(mrs, "iid"), ["5", "6", "7"]);
                assert!(t.contains("(feature/fast-render → main)"), "{t}");
            },
        ),
        Row::ok(
            "mine",
            "gitlab_list_merge_requests",
            widgets(json!({"author": "me"})),
            |by_me, _| {
                assert_eq!(strings(by_me, "iid"), ["5"]);
                assert_eq!(items(by_me)[0]["reviewers"], json!(["bob"]));
            },
        ),
        Row::ok("!5 summarised", get, widgets(json!({"iid": 5})), |mr, t| {
            assert_eq!(mr["title"], "Fast rendering and no panic on empty text");
            assert_eq!(mr["merge_status"], "mergeable");
            assert_eq!(mr["sha"].as_str().map(str::len), Some(40));
            assert_eq!(mr["pipeline"]["status"], "failed");
            let file = |f: &Value| {
                format!(
                    "{} {}",
                    f["status"].as_str().unwrap_or(""),
                    f["path"].as_str().unwrap_or("")
                )
            };
            let mut files: Vec<String> = mr["files"]
                .as_array()
                .into_iter()
                .flatten()
                .map(file)
                .collect();
            files.sort();
            assert_eq!(
                files,
                [
                    "added src/render.rs",
                    "modified src/lib.rs",
                    "modified src/widget.rs"
                ]
            );
            assert_eq!(
                (mr["changes_count"].clone(), mr["more_files"].clone()),
                (json!("3"), json!(false))
            );
            assert!(t.contains("failed (gitlab_get_failed_job_log"), "{t}");
        }),
        Row::ok(
            "!7, a draft with conflicts",
            get,
            widgets(json!({"iid": 7})),
            |draft, _| {
                assert_eq!(
                    (draft["draft"].clone(), draft["has_conflicts"].clone()),
                    (json!(true), json!(true))
                );
            },
        ),
    ]);
    Ok(())
}

#[test]
fn merge_request_diffs_are_bounded_per_file_and_in_total() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let diff = "gitlab_get_merge_request_diff";
    env.table(vec![
        Row::ok(
            "a diff, bounded per file",
            diff,
            widgets(json!({"iid": 5, "max_lines_per_file": 3})),
            |d, t| {
                assert_eq!(items(d).len(), 3);
                for f in items(d) {
                    let lines = f["diff"].as_str().unwrap_or_default();
                    assert!(lines.starts_with("@@"), "{f}");
                    if f["truncated"] == true {
                        assert!(lines.contains("…[truncated:"), "{f}");
                    }
                    assert!(lines.lines().count() <= 4, "bounded: {f}");
                }
                assert!(t.contains("--- src/render.rs (added"), "{t}");
            },
        ),
        Row::ok(
            "a diff of one path",
            diff,
            widgets(json!({"iid": 5, "paths": ["src/render.rs"]})),
            |one, _| {
                assert_eq!(strings(one, "path"), ["src/render.rs"]);
                assert_eq!(
                    (
                        items(one)[0]["truncated"].clone(),
                        items(one)[0]["deletions"].clone()
                    ),
                    (json!(false), json!(0))
                );
            },
        ),
        Row::ok(
            "a diff within a total budget",
            diff,
            widgets(json!({"iid": 5, "max_total_lines": 5, "fields": ["path", "truncated"]})),
            |budget, _| {
                assert!(
                    items(budget).iter().all(|f| f["truncated"] == true),
                    "the total budget cuts: {budget}"
                );
            },
        ),
    ]);
    Ok(())
}

#[test]
fn pipelines_are_listed_and_failed_job_logs_tailed() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let alice = env.user("alice");
    let (pipelines, log) = ("gitlab_list_pipelines", "gitlab_get_failed_job_log");
    let failed = alice.ok(pipelines, widgets(json!({"status": "failed"})));
    let failed_id = items(&failed)[0]["id"].clone();
    let api = json!({"project": "acme/platform/api"});
    let vet = alice.ok(log, api.clone());
    env.table(vec![
        Row::ok("every pipeline", pipelines, widgets(json!({})), |all, _| {
            assert_eq!(strings(all, "status"), ["running", "failed", "success"]);
        }),
        Row::ok(
            "failed ones",
            pipelines,
            widgets(json!({"status": "failed"})),
            |failed, _| {
                assert_eq!(strings(failed, "ref"), ["feature/fast-render"]);
            },
        ),
        Row::ok(
            "the failed job's tail on a ref",
            log,
            widgets(json!({"ref": "feature/fast-render"})),
            |log, t| {
                assert_eq!(log["pipeline_id"], failed_id);
                assert_eq!(
                    strings(&json!({"items": log["failed_jobs"]}), "name"),
                    ["test"]
                );
                assert_eq!(log["job"]["failure_reason"], "script_failure");
                assert!(
                    log["total_lines"].as_u64().is_some_and(|n| n > 300),
                    "{}",
                    log["total_lines"]
                );
                assert_eq!(log["truncated"], true);
                let tail = log["log"].as_str().unwrap_or_default();
                assert_eq!(tail.lines().count(), 50, "the default tail");
                assert!(
                    tail.contains("wide_characters_are_measured ... FAILED"),
                    "{tail}"
                );
                assert!(
                    tail.ends_with("##[error]Process completed with exit code 101."),
                    "{tail}"
                );
                assert!(t.contains("job test (test) failed: script_failure"), "{t}");
            },
        ),
        Row::ok(
            "three lines of a pipeline's",
            log,
            widgets(json!({"pipeline_id": failed_id, "lines": 3})),
            |short, _| {
                assert_eq!(short["log"].as_str().map(|l| l.lines().count()), Some(3));
            },
        ),
        Row::ok("a nested project's", log, api.clone(), |v, _| {
            assert_eq!(v["job"]["name"], "vet");
        }),
        Row::ok(
            "by job id",
            log,
            with(&api, json!({"job_id": vet["job"]["id"]})),
            |by_job, _| {
                assert_eq!(by_job["log"], vet["log"]);
            },
        ),
        Row::fails(
            "a job that did not fail",
            log,
            widgets(json!({"pipeline_id": failed_id, "job_name": "deploy"})),
            &["the failed jobs are: test"],
        ),
    ]);
    Ok(())
}

#[test]
fn answers_are_a_quarter_of_the_raw_responses_or_less() -> Result<()> {
    // The answers (structured content, and text, each) against what a passthrough tool
    // would return for the same question. The seed's payloads are small (short
    // descriptions, few fields), so these ratios understate real ones.
    let env = ToolEnv::gitlab().start()?;
    let alice = env.user("alice");
    let raw = |paths: &[String]| -> usize {
        paths
            .iter()
            .map(|p| env.upstream_get("alice", p).1.len())
            .sum()
    };
    let p = "projects/acme%2Fwidgets";
    let mine = alice.ok_text("gitlab_list_issues", widgets(json!({"assignee": "me"})));
    let mr = alice.ok_text("gitlab_get_merge_request", widgets(json!({"iid": 5})));
    let log = alice.ok_text(
        "gitlab_get_failed_job_log",
        widgets(json!({"ref": "feature/fast-render"})),
    );
    let (pipeline, job) = (&log.0["pipeline_id"], &log.0["job"]["id"]);
    for (what, (structured, text), raw) in [
        (
            "my open issues in acme/widgets",
            &mine,
            raw(&[format!("{p}/issues?state=opened&scope=assigned_to_me")]),
        ),
        (
            "what changed in !5",
            &mr,
            raw(&[
                format!("{p}/merge_requests/5"),
                format!("{p}/merge_requests/5/diffs"),
            ]),
        ),
        (
            "why did CI fail on feature/fast-render",
            &log,
            raw(&[
                format!("{p}/pipelines?status=failed&ref=feature%2Ffast-render"),
                format!("{p}/pipelines/{pipeline}/jobs?scope[]=failed"),
                format!("{p}/jobs/{job}/trace"),
            ]),
        ),
    ] {
        let (structured, text) = (structured.to_string().len(), text.len());
        let ratio = |n: usize| raw as f64 / n.max(1) as f64;
        println!(
            "{what}: raw {raw} bytes; structured {structured} ({:.1}x), text {text} ({:.1}x)",
            ratio(structured),
            ratio(text)
        );
        assert!(
            ratio(structured) >= 4.0 && ratio(text) >= 4.0,
            "{what}: too close to the raw response"
        );
    }
    Ok(())
}

/// The path of `acme/widgets`' branch `name` in GitLab's API.
fn branch_path(name: &str) -> String {
    format!(
        "projects/acme%2Fwidgets/repository/branches/{}",
        name.replace('/', "%2F")
    )
}

#[test]
fn branches_are_made_from_a_ref_and_deleted_once_confirmed() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let alice = env.user("alice");
    let made = widgets(json!({"branch": "gl/e2e", "ref": "feature/fast-render"}));
    let (branch, t) = alice.ok_text("gitlab_create_branch", made);
    assert_eq!(branch["name"], "gl/e2e");
    assert!(t.starts_with("created gl/e2e in acme/widgets"), "{t}");
    let (status, b) = env.upstream_json(&branch_path("gl/e2e"));
    assert_eq!(status, 200);
    assert_eq!(
        b["commit"]["short_id"], branch["sha"],
        "at feature/fast-render's head"
    );
    let again = widgets(json!({"branch": "gl/e2e"}));
    let refused = alice.fails("gitlab_create_branch", again.clone(), "already exists");
    assert!(refused.contains("rejected"), "{refused}");
    let delete = "gitlab_delete_branch";
    let r = alice.confirm(delete, again.clone(), true);
    alice.assert_ok(delete, &again, &r);
    assert_eq!(
        r["structuredContent"],
        json!({"project": "acme/widgets", "deleted": "gl/e2e"})
    );
    assert_eq!(env.upstream_json(&branch_path("gl/e2e")).0, 404);
    let r = alice.confirm(delete, widgets(json!({"branch": "main"})), true);
    assert_eq!(r["isError"], true, "{r}");
    assert!(text(&r).contains("default branch"), "{r}");
    Ok(())
}

#[test]
fn a_merge_request_is_opened_with_reviewers_by_name_and_sent_once() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let alice = env.user("alice");
    alice.ok(
        "gitlab_create_branch",
        widgets(json!({"branch": "gl/e2e", "ref": "feature/fast-render"})),
    );
    let create = "gitlab_create_merge_request";
    let args = json!({"source_branch": "gl/e2e", "title": "E2E change", "labels": ["enhancement"], "reviewers": ["bob"], "draft": true});
    let (mr, t) = alice.ok_text(create, widgets(args));
    assert_eq!(mr["target_branch"], "main");
    assert_eq!(mr["title"], "Draft: E2E change");
    assert_eq!(mr["draft"], true);
    assert!(t.starts_with("opened acme/widgets!"), "{t}");
    let iid = mr["iid"].as_u64().context("iid")?;
    let (_, up) = env.upstream_json(&format!("projects/acme%2Fwidgets/merge_requests/{iid}"));
    assert_eq!(up["source_branch"], "gl/e2e");
    assert_eq!(up["labels"], json!(["enhancement"]));
    assert_eq!(env.journal("POST", "/merge_requests").len(), 1, "sent once");
    let unknown = json!({"source_branch": "stale", "title": "x", "reviewers": ["nobody-here"]});
    alice.fails(create, widgets(unknown), "no user named \"nobody-here\"");
    Ok(())
}

#[test]
fn issues_are_opened_changed_and_commented_with_users_by_name() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let alice = env.user("alice");
    let new = json!({"title": "From the agent", "description": "Found by an agent.", "labels": ["bug", "needs-triage"], "assignees": ["bob"]});
    let (issue, t) = alice.ok_text("gitlab_create_issue", widgets(new));
    let n = issue["iid"].as_u64().context("iid")?;
    assert_eq!(issue["state"], "opened");
    assert!(!t.contains("did not apply"), "{t}");
    let upstream = || {
        env.upstream_json(&format!("projects/acme%2Fwidgets/issues/{n}"))
            .1
    };
    let up = upstream();
    assert_eq!(
        (up["title"].clone(), up["description"].clone()),
        (json!("From the agent"), json!("Found by an agent."))
    );
    assert_eq!(up["labels"], json!(["bug", "needs-triage"]));
    assert_eq!(up["assignees"][0]["username"], "bob");
    assert_eq!(env.journal("POST", "/issues").len(), 1, "sent once");
    let close = json!({"iid": n, "state_event": "close", "add_labels": ["ci"], "remove_labels": ["needs-triage"], "assignees": ["alice", "bob"]});
    let reopen =
        json!({"iid": n, "state_event": "reopen", "labels": ["documentation"], "assignees": []});
    env.table(vec![
        Row::ok(
            "closed, labelled and assigned",
            "gitlab_update_issue",
            widgets(close),
            |updated, _| {
                assert_eq!(updated["state"], "closed");
                let up = upstream();
                assert_eq!(
                    (up["state"].clone(), up["closed_by"]["username"].clone()),
                    (json!("closed"), json!("alice"))
                );
                assert_eq!(up["labels"], json!(["bug", "ci"]));
                let assignees: Vec<&str> = up["assignees"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["username"].as_str())
                    .collect();
                assert_eq!(assignees, ["alice", "bob"]);
            },
        ),
        Row::ok(
            "reopened, relabelled and unassigned",
            "gitlab_update_issue",
            widgets(reopen),
            |reopened, _| {
                assert_eq!(reopened["state"], "opened");
                assert_eq!(
                    (reopened["labels"].clone(), reopened["assignees"].clone()),
                    (json!(["documentation"]), json!([]))
                );
            },
        ),
        Row::fails(
            "a change of nothing",
            "gitlab_update_issue",
            widgets(json!({"iid": n})),
            &["nothing to change"],
        ),
        Row::ok(
            "commented",
            "gitlab_comment_on_issue",
            widgets(json!({"iid": n, "body": "Looking into it."})),
            |posted, t| {
                let url = format!("/acme/widgets/-/issues/{n}#note_{}", posted["id"]);
                assert!(
                    posted["url"].as_str().is_some_and(|u| u.ends_with(&url)),
                    "{posted}"
                );
                assert!(
                    t.starts_with(&format!("commented on acme/widgets#{n}")),
                    "{t}"
                );
                let (_, notes) =
                    env.upstream_json(&format!("projects/acme%2Fwidgets/issues/{n}/notes"));
                assert_eq!(
                    (
                        notes[0]["body"].clone(),
                        notes[0]["author"]["username"].clone()
                    ),
                    (json!("Looking into it."), json!("alice"))
                );
                assert_eq!(env.journal("POST", &format!("/issues/{n}/notes")).len(), 1);
            },
        ),
        Row::ok(
            "the comment read back",
            "gitlab_get_issue",
            widgets(json!({"iid": n})),
            |detail, _| {
                assert_eq!(detail["notes"][0]["body"], "Looking into it.");
            },
        ),
    ]);
    Ok(())
}

#[test]
fn an_approval_is_confirmed_and_approving_again_is_not_a_failure() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let alice = env.user("alice");
    let review = "gitlab_review_merge_request";
    let sha = alice.ok("gitlab_get_merge_request", widgets(json!({"iid": 6})))["sha"].clone();
    // An approval of bob's merge request, at the head reviewed, with a comment: confirmed
    // by the user like a merge.
    let args = widgets(json!({"iid": 6, "approve": true, "sha": sha, "body": "LGTM, thanks!"}));
    let r = alice.confirm(review, args.clone(), true);
    alice.assert_ok(review, &args, &r);
    let done = &r["structuredContent"];
    assert_eq!(done["approved"], true);
    let url = done["comment"]["url"].as_str();
    assert!(url.is_some_and(|u| u.contains("/-/merge_requests/6#note_")));
    assert!(text(&r).contains("approved acme/widgets!6"), "{r}");
    assert_eq!(env.journal("POST", "/merge_requests/6/approve").len(), 1);
    let notes = || {
        env.upstream_json("projects/acme%2Fwidgets/merge_requests/6/notes")
            .1
    };
    assert_eq!(notes()[0]["body"], "LGTM, thanks!");
    // Approving again: current GitLab answers 304 Not Modified, versions before it 401
    // (the fault); both read as "already approved by you", not a failure to retry.
    let old = json!({"method": "POST", "path_regex": "/merge_requests/6/approve$", "action": "status", "status": 401});
    for (gitlab, fault) in [("current", None), ("old", Some(old))] {
        if let Some(f) = fault {
            env.upstream.control("faults", &f)?;
        }
        let again = alice.confirm(review, widgets(json!({"iid": 6, "approve": true})), true);
        assert_eq!(again["isError"], false, "{gitlab}: {again}");
        let said = &again["structuredContent"];
        assert_eq!(
            (said["approved"].clone(), said["already_approved"].clone()),
            (json!(false), json!(true)),
            "{gitlab}: {again}"
        );
        assert_eq!(
            text(&again),
            "already approved by you: acme/widgets!6",
            "{gitlab}"
        );
    }
    let posted = notes().as_array().map(Vec::len);
    assert_eq!(posted, Some(1), "approving again posts nothing");
    Ok(())
}

#[test]
fn a_confirmed_merge_merges_at_the_reviewed_head_once() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let alice = env.user("alice");
    let merge = "gitlab_merge_merge_request";
    let sha = alice.ok("gitlab_get_merge_request", widgets(json!({"iid": 6})))["sha"].clone();
    let args = widgets(json!({"iid": 6, "sha": sha, "remove_source_branch": true}));
    let r = alice.confirm(merge, args.clone(), true);
    alice.assert_ok(merge, &args, &r);
    let merged = &r["structuredContent"];
    assert_eq!(merged["state"], "merged");
    assert!(text(&r).starts_with("merged acme/widgets!6 as "), "{r}");
    let (_, up) = env.upstream_json("projects/acme%2Fwidgets/merge_requests/6");
    assert_eq!(
        (up["state"].clone(), up["merged_by"]["username"].clone()),
        (json!("merged"), json!("alice"))
    );
    assert_eq!(up["merge_commit_sha"], merged["merge_commit_sha"]);
    let source = env.upstream_json(&branch_path("fix/readme-typo")).0;
    assert_eq!(source, 404, "the source branch went with it");
    let main = alice.ok("gitlab_get_file", widgets(json!({"path": "README.md"})));
    assert!(
        main["content"]
            .as_str()
            .is_some_and(|c| c.contains("either side"))
    );
    assert_eq!(
        env.journal("PUT", "/merge_requests/6/merge").len(),
        1,
        "sent once"
    );
    Ok(())
}

#[test]
fn gitlab_refuses_a_reporter_what_the_policy_allowed() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let bob = env.user("bob");
    let sha = bob.ok("gitlab_get_merge_request", widgets(json!({"iid": 5})))["sha"].clone();
    let state_of_5 = || {
        env.upstream_json("projects/acme%2Fwidgets/merge_requests/5")
            .1["state"]
            .clone()
    };
    // bob is a reporter: the policy lets him call merge, GitLab does not let him merge.
    let r = bob.confirm(
        "gitlab_merge_merge_request",
        widgets(json!({"iid": 5, "sha": sha})),
        true,
    );
    assert_eq!(r["isError"], true, "{r}");
    let why = text(&r);
    assert!(why.contains("refused the merge for this user"), "{why}");
    assert!(!why.contains("glpat-"), "no token in errors: {why}");
    assert_eq!(state_of_5(), "opened");
    assert_eq!(
        env.journal("PUT", "/merge_requests/5/merge").len(),
        1,
        "tried once"
    );
    bob.fails(
        "gitlab_create_branch",
        widgets(json!({"branch": "bob/x", "ref": "main"})),
        "refused this user",
    );
    let approve = bob.confirm(
        "gitlab_review_merge_request",
        widgets(json!({"iid": 5, "approve": true})),
        true,
    );
    assert_eq!(approve["isError"], true, "{approve}");
    assert!(text(&approve).contains("refused the approval"), "{approve}");
    env.table(vec![
        // What a reporter may do, he can: comment on a merge request.
        Row::ok(
            "bob comments on a merge request",
            "gitlab_review_merge_request",
            widgets(json!({"iid": 5, "body": "Works for me."})),
            |note, _| {
                assert_eq!(note["approved"], false);
                assert!(note["comment"]["id"].is_u64());
            },
        )
        .by("bob"),
        // And a reporter's labels stick, where a guest's would be dropped.
        Row::ok(
            "bob labels an issue",
            "gitlab_update_issue",
            widgets(json!({"iid": 2, "add_labels": ["good first issue"]})),
            |labelled, t| {
                assert!(
                    labelled["labels"]
                        .as_array()
                        .is_some_and(|l| l.contains(&json!("good first issue")))
                );
                assert!(!t.contains("did not apply"), "{t}");
            },
        )
        .by("bob"),
    ]);
    Ok(())
}

#[test]
fn merges_and_approvals_not_allowed_or_not_confirmed_are_not_sent() -> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let alice = env.user("alice");
    let (merge, get) = ("gitlab_merge_merge_request", "gitlab_get_merge_request");
    let sha = alice.ok(get, widgets(json!({"iid": 5})))["sha"].clone();
    let merges = || env.journal("PUT", "/merge_requests/5/merge").len();
    let refused = |r: &Value, part: &str| {
        assert_eq!(r["isError"], true, "{r}");
        assert!(text(r).contains(part), "{part:?}: {r}");
    };
    // The author may not approve their own merge request.
    let own = alice.confirm(
        "gitlab_review_merge_request",
        widgets(json!({"iid": 5, "approve": true})),
        true,
    );
    refused(&own, "refused the approval");
    // A merge at a head the agent names but the user was not shown is refused, not
    // applied (the user confirmed the actual head).
    let before = merges();
    let zero = "0000000000000000000000000000000000000000";
    let stale = alice.confirm(merge, widgets(json!({"iid": 5, "sha": zero})), true);
    refused(&stale, "but the user approved head commit");
    assert_eq!(merges(), before);
    // A draft with conflicts cannot be merged.
    let seven = alice.ok(get, widgets(json!({"iid": 7})))["sha"].clone();
    let draft = alice.confirm(merge, widgets(json!({"iid": 7, "sha": seven})), true);
    refused(&draft, "cannot merge acme/widgets!7 now");
    // A declined confirmation sends nothing upstream.
    env.upstream.clear_requests()?;
    let declined = alice.confirm(merge, widgets(json!({"iid": 5, "sha": sha})), false);
    refused(&declined, "did not confirm");
    assert!(env.journal("PUT", "/merge").is_empty());
    let state = env
        .upstream_json("projects/acme%2Fwidgets/merge_requests/5")
        .1["state"]
        .clone();
    assert_eq!(state, "opened");
    Ok(())
}

/// The seed's members with their tokens (alice, and bob when `with_bob`), all admins of
/// `acme`, and `repo` the one repository.
fn seed_of(with_bob: bool, repo: Value) -> Value {
    let users: Vec<(&str, &str)> = GITLAB_TOKENS
        .iter()
        .copied()
        .filter(|(u, _)| with_bob || *u == "alice")
        .collect();
    json!({
        "users": users.iter().map(|(u, _)| json!({"login": u})).collect::<Vec<_>>(),
        "tokens": users.iter().map(|(u, t)| json!({"token": t, "user": u, "scopes": ["api"]})).collect::<Vec<_>>(),
        "namespaces": [{"path": "acme", "members": users.iter().map(|(u, _)| (u.to_string(), json!("admin"))).collect::<serde_json::Map<_, _>>()}],
        "repos": [repo],
    })
}

#[test]
fn a_file_over_gitlabs_diff_limit_is_said_too_large_not_unchanged() -> Result<()> {
    // GitLab sends an empty `diff` with `too_large` and no line count past its limit.
    let big: String = (0..30_000).map(|i| format!("line {i}\n")).collect();
    let seed = seed_of(
        true,
        json!({
            "namespace": "acme",
            "name": "data",
            "commits": [
                {"key": "init", "message": "Start", "author": "alice", "date": "2024-01-01T00:00:00Z", "files": {"README.md": "Data.\n"}},
                {"key": "bulk", "parents": ["init"], "message": "Add the table", "author": "alice", "date": "2024-01-02T00:00:00Z", "files": {"table.txt": big, "README.md": "Data, and a table.\n"}},
            ],
            "branches": {"main": "init", "bulk": "bulk"},
            "pulls": [{"number": 1, "title": "Add the table", "body": "", "author": "alice", "head": "bulk", "base": "main", "created_at": "2024-01-02T00:00:00Z"}],
        }),
    );
    let env = ToolEnv::gitlab().seed(seed).start()?;
    let mr = json!({"project": "acme/data", "iid": 1});
    let file = |files: &[Value], path: &str| {
        files
            .iter()
            .find(|f| f["path"] == path)
            .cloned()
            .unwrap_or_default()
    };
    env.table(vec![
        Row::ok(
            "in the diff",
            "gitlab_get_merge_request_diff",
            mr.clone(),
            |diff, t| {
                let (table, readme) = (
                    file(&items(diff), "table.txt"),
                    file(&items(diff), "README.md"),
                );
                assert!(table.get("additions").is_none(), "{table}");
                assert!(
                    table["diff"]
                        .as_str()
                        .is_some_and(|d| d.contains("diff too large to show")),
                    "{table}"
                );
                assert_eq!(table["truncated"], true);
                assert_eq!(
                    (readme["additions"].as_u64(), readme["deletions"].as_u64()),
                    (Some(1), Some(1))
                );
                assert!(
                    t.contains("--- table.txt (added, no line count)\n…[diff too large to show"),
                    "{t}"
                );
                assert!(!t.contains("table.txt (added, +0 -0)"), "{t}");
            },
        ),
        Row::ok("in the summary", "gitlab_get_merge_request", mr, |mr, t| {
            let files = mr["files"].as_array().cloned().unwrap_or_default();
            let entry = file(&files, "table.txt");
            assert!(
                entry["no_diff"]
                    .as_str()
                    .is_some_and(|w| w.starts_with("diff too large to show")),
                "{mr}"
            );
            assert!(t.contains("added table.txt (diff too large to show"), "{t}");
        }),
    ]);
    Ok(())
}

#[test]
fn a_parent_pipeline_leads_to_the_failed_job_of_its_child() -> Result<()> {
    // The parent's only failed job is the bridge that triggered the child pipeline: GitLab
    // lists it under `/bridges`, not `/jobs`.
    let seed = seed_of(
        false,
        json!({
            "namespace": "acme",
            "name": "mono",
            "commits": [{"key": "init", "message": "Start", "author": "alice", "date": "2024-01-01T00:00:00Z", "files": {"README.md": "Mono.\n"}}],
            "branches": {"main": "init"},
            "pipelines": [
                {"name": "backend", "branch": "main", "event": "parent_pipeline", "status": "failed", "actor": "alice", "created_at": "2024-01-01T01:00:00Z", "jobs": [
                    {"name": "unit", "stage": "test", "status": "failed", "log": "running tests\nassertion failed: left == right\nERROR: Job failed: exit code 1\n"},
                    {"name": "lint", "stage": "test", "status": "success", "log": "ok\n"},
                ]},
                {"name": "root", "branch": "main", "event": "push", "status": "failed", "actor": "alice", "created_at": "2024-01-01T01:00:00Z", "jobs": [
                    {"name": "build", "stage": "build", "status": "success", "log": "built\n"},
                    {"name": "backend", "stage": "test", "status": "failed", "trigger": "backend"},
                ]},
            ],
        }),
    );
    let env = ToolEnv::gitlab().seed(seed).start()?;
    let pipelines = env
        .user("alice")
        .ok("gitlab_list_pipelines", json!({"project": "acme/mono"}));
    let ids: Vec<u64> = items(&pipelines)
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect();
    let (parent, child) = (ids[0], ids[1]);
    let leads_to_the_child = |log: &Value, t: &str| {
        assert_eq!(log["pipeline_id"], child, "{log}");
        assert_eq!(
            log["via"],
            json!([{"pipeline_id": parent, "bridge": "backend"}]),
            "{log}"
        );
        assert_eq!(log["job"]["name"], "unit", "{log}");
        assert!(
            log["log"]
                .as_str()
                .is_some_and(|l| l.contains("assertion failed")),
            "{log}"
        );
        let said = format!(
            "pipeline {parent} (bridge \"backend\") → pipeline {child}: job unit (test) failed"
        );
        assert!(t.starts_with(&said), "{t}");
    };
    // Asked by id, and as the newest failed pipeline: the same answer.
    let log = "gitlab_get_failed_job_log";
    env.table(vec![
        Row::ok(
            "the parent by id",
            log,
            json!({"project": "acme/mono", "pipeline_id": parent}),
            leads_to_the_child,
        ),
        Row::ok(
            "the newest failed pipeline",
            log,
            json!({"project": "acme/mono"}),
            leads_to_the_child,
        ),
    ]);
    Ok(())
}

#[test]
fn merge_and_approval_confirmations_show_the_merge_request_and_a_push_after_them_refuses_both()
-> Result<()> {
    let env = ToolEnv::gitlab().start()?;
    let alice = env.user("alice");
    let six = alice.ok("gitlab_get_merge_request", widgets(json!({"iid": 6})));
    let head = six["sha"].as_str().unwrap_or_default().to_owned();
    let head_line = format!("head commit {head}");
    let shows = |shown: &str, parts: &[&str]| {
        for part in parts {
            assert!(shown.contains(part), "{part:?} missing from {shown:?}");
        }
    };
    // An approval asks, naming what is approved.
    let (review, merge) = ("gitlab_review_merge_request", "gitlab_merge_merge_request");
    let approve = widgets(json!({"iid": 6, "approve": true}));
    let approval = alice.ask(review, approve.clone());
    shows(
        &approval.message,
        &[
            "gitlab_review_merge_request on acme/widgets",
            "approve merge request acme/widgets!6",
            "\u{201c}Fix a typo in the README\u{201d}",
            "from branch \u{201c}fix/readme-typo\u{201d} into \u{201c}main\u{201d}",
            &head_line,
        ],
    );
    assert!(env.journal("POST", "/merge_requests/6/approve").is_empty());
    // The merge asks too, with its method.
    let squash = widgets(json!({"iid": 6, "sha": head, "squash": true}));
    let merging = alice.ask(merge, squash.clone());
    let parts = [
        "merge merge request acme/widgets!6",
        &head_line,
        "merge method squash",
        "cannot be undone",
    ];
    shows(&merging.message, &parts);
    // A push after both were confirmed: GitLab is asked to act on the approved head only,
    // refuses, and the agent is told what happened.
    let push = json!({"repo": "acme/widgets", "branch": "fix/readme-typo", "author": "bob", "message": "Sneak in a change"});
    env.upstream.control("push", &push)?;
    for (tool, args, question) in [(review, &approve, &approval), (merge, &squash, &merging)] {
        let r = alice.answer(tool, args, question, true);
        assert_eq!(r["isError"], true, "{tool}: {r}");
        let told = text(&r).contains("changed after the user approved it");
        assert!(told, "{tool}: {r}\n{}", env.connector.log());
    }
    let (_, up) = env.upstream_json("projects/acme%2Fwidgets/merge_requests/6");
    assert_eq!(up["state"], "opened");
    assert_eq!(env.statuses("", "/merge_requests/6/approve"), [409]);
    assert_eq!(env.statuses("", "/merge_requests/6/merge"), [409]);
    Ok(())
}
