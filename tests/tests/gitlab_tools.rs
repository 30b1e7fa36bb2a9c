//! The GitLab tools end to end: an MCP client (stateless 2026-07-28) → runtime → QUIC
//! tunnel → connector → the fake GitLab (`tests/fake-upstream`, built-in seed), with each
//! user's own personal access token in the connector's vault.
//!
//! - every `gitlab_*` tool is listed with its schemas and annotations;
//! - the reads answer from the seed (including the nested private project
//!   `acme/platform/api`), compactly, with field selection, pagination and typed
//!   not-found errors;
//! - the writes change the fake's state (checked there directly, each sent once), the
//!   destructive ones after the user confirmed;
//! - GitLab's own permissions win over a policy that allows everything: bob, a reporter,
//!   may call merge, and GitLab refuses it with a typed error; stale or unmergeable merges
//!   are rejected; a declined confirmation sends nothing upstream.

use anyhow::{Context, Result};
use e2e::mcp_client::McpClient;
use e2e::{Connector, FakeUpstream, Runtime, run_ok};
use serde_json::{Value, json};

const ALICE_PAT: &str = "glpat-aliceFakeToken0000";
const BOB_PAT: &str = "glpat-bobFakeToken000000";

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

struct Setup {
    gitlab: FakeUpstream,
    connector: Connector,
    alice: McpClient,
    bob: McpClient,
    http: reqwest::blocking::Client,
    // Last: dropped (stopped) after the connector.
    _rt: Runtime,
}

fn setup() -> Result<Setup> {
    setup_with(None)
}

/// Like [`setup`], with the fake seeded from `seed` when given.
fn setup_with(seed: Option<&Value>) -> Result<Setup> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let seed_file = rt.dir.path().join("seed.json");
    let extra = match seed {
        Some(v) => {
            std::fs::write(&seed_file, v.to_string())?;
            vec!["--seed".to_owned(), seed_file.display().to_string()]
        }
        None => Vec::new(),
    };
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let gitlab = FakeUpstream::start(rt.dir.path(), "gitlab", &extra)?;
    let mut connector = Connector::enroll(&rt, "acme", "c1")?;
    // No OAuth client: each user's token is the one their operator stored (OAuth and
    // just-in-time authorization have suites of their own).
    let config = connector.configure(
        &format!(
            "[[provider]]\nname = \"gitlab\"\nkind = \"gitlab\"\napi_url = \"{}\"\n",
            gitlab.api_url()
        ),
        "version = 1\n[[allow]]\ntools = [\"gitlab_*\", \"diag.*\"]\n",
        &[],
    )?;
    connector.start_configured(&rt, &config)?;
    let alice = McpClient::new_user(
        &rt,
        "acme",
        "eng",
        "alice",
        "eng",
        "claude-alice",
        "maintainer",
    )?;
    let bob = McpClient::new_user(&rt, "acme", "eng", "bob", "eng", "claude-bob", "maintainer")?;
    for (user, pat) in [(&alice, ALICE_PAT), (&bob, BOB_PAT)] {
        Connector::vault_set(&config, &format!("user/gitlab/{}", user.user_id), pat)?;
    }
    Ok(Setup {
        gitlab,
        connector,
        alice,
        bob,
        http: reqwest::blocking::Client::new(),
        _rt: rt,
    })
}

fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Setup {
    /// A successful call: its structured content and text.
    fn ok(&self, who: &McpClient, tool: &str, args: Value) -> (Value, String) {
        let r = who.call(tool, args.clone()).expect("tools/call");
        assert_eq!(
            r["isError"],
            false,
            "{tool} {args}: {r}\nconnector log:\n{}",
            self.connector.log()
        );
        (r["structuredContent"].clone(), text_of(&r))
    }

    /// A failed call (an `isError` result): its text.
    fn failed(&self, who: &McpClient, tool: &str, args: Value) -> String {
        let r = who.call(tool, args.clone()).expect("tools/call");
        assert_eq!(r["isError"], true, "{tool} {args} should fail: {r}");
        text_of(&r)
    }

    /// A destructive call, answering the runtime's confirmation (stateless: the first
    /// answer asks, the retry carries the user's answer and the sealed request state).
    fn confirmed(&self, who: &McpClient, tool: &str, args: Value, accept: bool) -> Value {
        let first = who.call(tool, args.clone()).expect("tools/call");
        assert_eq!(first["resultType"], "input_required", "{tool}: {first}");
        assert!(
            first["inputRequests"]["confirm"].is_object(),
            "{tool}: {first}"
        );
        let answer = if accept {
            json!({"action": "accept", "content": {"confirm": true}})
        } else {
            json!({"action": "decline"})
        };
        let v = who
            .request(
                "tools/call",
                json!({
                    "name": tool,
                    "arguments": args,
                    "inputResponses": {"confirm": answer},
                    "requestState": first["requestState"],
                }),
            )
            .expect("tools/call retry");
        v.get("result").cloned().unwrap_or(v)
    }

    /// `GET {api}/{path}` at the fake, as alice: status and body.
    fn upstream(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}/{path}", self.gitlab.api_url()))
            .header("PRIVATE-TOKEN", ALICE_PAT)
            .send()
            .expect("fake GitLab");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// The raw body of `GET {api}/{path}` (what a passthrough tool would return).
    fn raw_len(&self, path: &str) -> usize {
        self.http
            .get(format!("{}/{path}", self.gitlab.api_url()))
            .header("PRIVATE-TOKEN", ALICE_PAT)
            .send()
            .and_then(|r| r.bytes())
            .map_or(0, |b| b.len())
    }

    /// The journaled requests with `method` whose path ends with `suffix`.
    fn journaled(&self, method: &str, suffix: &str) -> usize {
        self.gitlab
            .requests()
            .expect("journal")
            .iter()
            .filter(|r| r["method"] == method)
            .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
            .count()
    }
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().expect("items")
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    items(v)
        .iter()
        .map(|i| match &i[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[test]
fn every_tool_is_listed_with_its_schemas_and_annotations() -> Result<()> {
    let s = setup()?;
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = cursor.map_or_else(|| json!({}), |c| json!({"cursor": c}));
        let v = s.alice.request("tools/list", params)?;
        let result = v.get("result").context("tools/list result")?;
        listed.extend(result["tools"].as_array().cloned().unwrap_or_default());
        match result["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
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
        assert_eq!(
            input["additionalProperties"], false,
            "{name} refuses unknown arguments: {input}"
        );
        for (arg, schema) in input["properties"].as_object().context("properties")? {
            assert!(
                schema["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{name}.{arg} has a description: {schema}"
            );
        }
        if UNTARGETED.contains(name) {
            assert!(input["properties"].get("project").is_none(), "{name}");
        } else {
            assert!(
                input["required"]
                    .as_array()
                    .is_some_and(|r| r.contains(&json!("project"))),
                "{name} requires project: {input}"
            );
        }
        assert_eq!(t["outputSchema"]["type"], "object", "{name}: {t}");
        assert!(t["description"].as_str().is_some_and(|d| d.len() > 20));
    }
    let count = listed
        .iter()
        .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("gitlab_")))
        .count();
    assert_eq!(count, TOOLS.len(), "no GitLab tool untested");
    // Lists select fields; single objects do not.
    let props = |name: &str| {
        listed
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["inputSchema"]["properties"].clone())
            .unwrap_or(Value::Null)
    };
    assert!(props("gitlab_list_issues").get("fields").is_some());
    assert!(props("gitlab_merge_merge_request").get("fields").is_none());
    Ok(())
}

#[test]
fn reads_answer_from_the_seed_compactly() -> Result<()> {
    let s = setup()?;
    let w = json!("acme/widgets");

    // Who am I, and my projects (membership inherited from the group, nested ones too).
    let (me, text) = s.ok(&s.alice, "gitlab_whoami", json!({}));
    assert_eq!(me["username"], "alice");
    assert_eq!(me["name"], "Alice Admin");
    assert_eq!(me["instance"], "gitlab");
    assert!(text.starts_with("alice on GitLab at 127.0.0.1"), "{text}");
    let (mine, _) = s.ok(&s.alice, "gitlab_search_projects", json!({}));
    let mut paths = strings(&mine, "project");
    paths.sort();
    assert_eq!(paths, ["acme/infra", "acme/platform/api", "acme/widgets"]);
    let (found, text) = s.ok(
        &s.alice,
        "gitlab_search_projects",
        json!({"query": "platform"}),
    );
    assert_eq!(strings(&found, "project"), ["acme/platform/api"]);
    assert_eq!(items(&found)[0]["default_branch"], "main");
    // `simple=true` answers carry no `visibility`: none is shown, not an empty one.
    assert!(items(&found)[0].get("visibility").is_none(), "{found}");
    assert!(text.starts_with("acme/platform/api: "), "{text}");

    // Files: at the default branch, at a ref, long ones in excerpts, missing ones typed.
    let (readme, text) = s.ok(
        &s.alice,
        "gitlab_get_file",
        json!({"project": w, "path": "README.md"}),
    );
    assert_eq!(readme["ref"], "main");
    assert!(
        readme["content"]
            .as_str()
            .is_some_and(|c| c.contains("one space on each side")),
        "{readme}"
    );
    assert_eq!(readme["truncated"], false);
    assert_eq!(readme["binary"], false);
    assert!(text.starts_with("README.md@main"), "{text}");
    let (typo, _) = s.ok(
        &s.alice,
        "gitlab_get_file",
        json!({"project": w, "path": "README.md", "ref": "fix/readme-typo"}),
    );
    assert!(
        typo["content"]
            .as_str()
            .is_some_and(|c| c.contains("either side"))
    );
    let (csv, _) = s.ok(
        &s.alice,
        "gitlab_get_file",
        json!({"project": w, "path": "data/catalog.csv", "max_chars": 2000}),
    );
    assert_eq!(csv["truncated"], true);
    assert_eq!(csv["total_lines"], 3001);
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
    let next = csv["next_from_line"].as_u64().context("next_from_line")?;
    let (more, _) = s.ok(
        &s.alice,
        "gitlab_get_file",
        json!({"project": w, "path": "data/catalog.csv", "from_line": next, "max_chars": 200}),
    );
    assert_eq!(more["from_line"], next);
    let row = format!("W-{:05},", next - 2);
    assert!(
        more["content"]
            .as_str()
            .is_some_and(|c| c.starts_with(&row)),
        "reads on at line {next}: {more}"
    );
    let missing = s.failed(
        &s.alice,
        "gitlab_get_file",
        json!({"project": w, "path": "nope.txt"}),
    );
    assert!(missing.contains("not found"), "{missing}");
    // The nested private project, its path one escaped segment.
    let (go, _) = s.ok(
        &s.alice,
        "gitlab_get_file",
        json!({"project": "acme/platform/api", "path": "main.go", "ref": "feature/health"}),
    );
    assert!(
        go["content"]
            .as_str()
            .is_some_and(|c| c.contains("healthz")),
        "{go}"
    );

    // Branches, two to a page.
    let (p1, _) = s.ok(
        &s.alice,
        "gitlab_list_branches",
        json!({"project": w, "limit": 2}),
    );
    assert_eq!(
        strings(&p1, "name"),
        ["feature/fast-render", "fix/readme-typo"]
    );
    assert_eq!(p1["next_cursor"], "2");
    let (p2, _) = s.ok(
        &s.alice,
        "gitlab_list_branches",
        json!({"project": w, "limit": 2, "cursor": p1["next_cursor"]}),
    );
    assert_eq!(strings(&p2, "name"), ["main", "refactor/draw"]);
    assert_eq!(items(&p2)[0]["default"], true);
    assert_eq!(items(&p2)[0]["protected"], true);
    assert_eq!(items(&p2)[0]["title"], "Add the widget catalogue");
    let (p3, text) = s.ok(
        &s.alice,
        "gitlab_list_branches",
        json!({"project": w, "limit": 2, "cursor": "3"}),
    );
    assert_eq!(strings(&p3, "name"), ["stale"]);
    assert_eq!(items(&p3)[0]["merged"], true);
    assert!(p3.get("next_cursor").is_none(), "last page: {p3}");
    assert!(text.starts_with("stale [merged]"), "{text}");
    let bad = s.failed(
        &s.alice,
        "gitlab_list_branches",
        json!({"project": w, "cursor": "https://evil.example/?page=2"}),
    );
    assert!(bad.contains("cursor"), "{bad}");

    // Commits.
    let (log, text) = s.ok(&s.alice, "gitlab_list_commits", json!({"project": w}));
    assert_eq!(
        strings(&log, "title"),
        [
            "Add the widget catalogue",
            "README: document padding",
            "Initial commit"
        ]
    );
    assert_eq!(items(&log)[0]["sha"].as_str().map(str::len), Some(8));
    assert!(
        text.contains("README: document padding (Bob Triage, 2024-02-03)"),
        "{text}"
    );
    let (src, _) = s.ok(
        &s.alice,
        "gitlab_list_commits",
        json!({"project": w, "ref": "feature/fast-render", "path": "src/render.rs"}),
    );
    assert_eq!(strings(&src, "title"), ["Render into a reusable buffer"]);
    let (by_bob, _) = s.ok(
        &s.alice,
        "gitlab_list_commits",
        json!({"project": w, "author": "bob"}),
    );
    assert_eq!(strings(&by_bob, "title"), ["README: document padding"]);

    // Code search.
    let (hits, text) = s.ok(
        &s.alice,
        "gitlab_search_code",
        json!({"project": w, "query": "pub fn initial"}),
    );
    assert_eq!(strings(&hits, "path"), ["src/widget.rs"]);
    assert!(
        items(&hits)[0]["snippet"]
            .as_str()
            .is_some_and(|d| d.contains("pub fn initial(&self) -> char")),
        "{hits}"
    );
    assert!(text.starts_with("src/widget.rs:"), "{text}");
    let (at_ref, _) = s.ok(
        &s.alice,
        "gitlab_search_code",
        json!({"project": w, "query": "Option<char>", "ref": "feature/fast-render"}),
    );
    assert_eq!(strings(&at_ref, "path"), ["src/widget.rs"]);

    // Issues of a project: open by default, newest activity first; the filters.
    let (open, text) = s.ok(&s.alice, "gitlab_list_issues", json!({"project": w}));
    assert_eq!(strings(&open, "iid"), ["4", "2", "1"]);
    let first = &items(&open)[2];
    assert_eq!(first["project"], "acme/widgets");
    assert_eq!(first["author"], "bob");
    assert_eq!(first["assignees"], json!(["alice"]));
    assert_eq!(first["labels"], json!(["bug"]));
    assert_eq!(first["comments"], 2);
    assert!(
        text.contains("acme/widgets#1 [opened] Widget::initial panics on empty text (bug) @alice"),
        "{text}"
    );
    let (mine, _) = s.ok(
        &s.alice,
        "gitlab_list_issues",
        json!({"project": w, "assignee": "me"}),
    );
    assert_eq!(strings(&mine, "iid"), ["4", "1"]);
    let (bugs, _) = s.ok(
        &s.alice,
        "gitlab_list_issues",
        json!({"project": w, "labels": ["ci", "needs-triage"]}),
    );
    assert_eq!(strings(&bugs, "iid"), ["4"]);
    let (closed, _) = s.ok(
        &s.alice,
        "gitlab_list_issues",
        json!({"project": w, "state": "closed"}),
    );
    assert_eq!(strings(&closed, "iid"), ["3"]);
    let (recent, _) = s.ok(
        &s.alice,
        "gitlab_list_issues",
        json!({"project": w, "updated_after": "2024-03-01T00:00:00Z", "author": "me"}),
    );
    assert_eq!(strings(&recent, "iid"), ["4"]);
    // Field selection keeps the named fields and the cursor.
    let (slim, _) = s.ok(
        &s.alice,
        "gitlab_list_issues",
        json!({"project": w, "fields": ["iid", "title"], "limit": 2}),
    );
    assert_eq!(
        items(&slim)[0],
        json!({"iid": 4, "title": "Flaky test: wide_characters_are_measured"})
    );
    assert_eq!(slim["next_cursor"], "2");
    let (page2, _) = s.ok(
        &s.alice,
        "gitlab_list_issues",
        json!({"project": w, "fields": ["iid"], "limit": 2, "cursor": "2"}),
    );
    assert_eq!(page2, json!({"items": [{"iid": 1}]}));

    // Issues across projects, nested ones included.
    let (assigned, _) = s.ok(
        &s.alice,
        "gitlab_search_issues",
        json!({"involvement": "assigned_to_me"}),
    );
    let mut refs: Vec<String> = items(&assigned)
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
    let (bobs, _) = s.ok(
        &s.bob,
        "gitlab_search_issues",
        json!({"involvement": "created_by_me"}),
    );
    let mut bobs: Vec<String> = strings(&bobs, "project");
    bobs.sort();
    assert_eq!(bobs, ["acme/platform/api", "acme/widgets"]);
    let (words, _) = s.ok(
        &s.alice,
        "gitlab_search_issues",
        json!({"text": "TLS certificate"}),
    );
    assert_eq!(strings(&words, "project"), ["acme/infra"]);
    let vague = s.failed(&s.alice, "gitlab_search_issues", json!({}));
    assert!(vague.contains("say what to look for"), "{vague}");

    // One issue with its notes, a page at a time.
    let (issue, text) = s.ok(
        &s.alice,
        "gitlab_get_issue",
        json!({"project": w, "iid": 1, "limit": 1}),
    );
    assert_eq!(issue["title"], "Widget::initial panics on empty text");
    assert!(issue["description"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(issue["notes"].as_array().map(Vec::len), Some(1));
    assert_eq!(issue["notes"][0]["author"], "alice");
    assert!(issue["notes"][0].get("system").is_none(), "{issue}");
    assert_eq!(issue["next_cursor"], "2");
    assert!(text.contains("--- alice at"), "{text}");
    let (rest, _) = s.ok(
        &s.alice,
        "gitlab_get_issue",
        json!({"project": w, "iid": 1, "limit": 1, "cursor": "2"}),
    );
    assert_eq!(rest["notes"][0]["author"], "bob");
    assert!(rest.get("next_cursor").is_none());
    let (nested, _) = s.ok(
        &s.alice,
        "gitlab_get_issue",
        json!({"project": "acme/platform/api", "iid": 1}),
    );
    assert_eq!(nested["notes"][0]["body"], "On it in !2.");
    let gone = s.failed(
        &s.alice,
        "gitlab_get_issue",
        json!({"project": w, "iid": 999}),
    );
    assert!(
        gone.contains("not found") && gone.contains("Issue"),
        "{gone}"
    );
    let nowhere = s.failed(
        &s.alice,
        "gitlab_list_issues",
        json!({"project": "acme/nope"}),
    );
    assert!(nowhere.contains("not found"), "{nowhere}");
    // A path that would walk elsewhere is refused before it reaches the connector (whose
    // own check is a unit test).
    let walk = s
        .alice
        .call("gitlab_list_issues", json!({"project": "acme/../../user"}))?;
    assert_eq!(walk["error"]["code"], -32602, "{walk}");
    assert_eq!(s.journaled("GET", "/user/issues"), 0);

    // Merge requests.
    let (mrs, text) = s.ok(
        &s.alice,
        "gitlab_list_merge_requests",
        json!({"project": w}),
    );
    let mut iids = strings(&mrs, "iid");
    iids.sort();
    assert_eq!(iids, ["5", "6", "7"]);
    assert!(text.contains("(feature/fast-render → main)"), "{text}");
    let (by_me, _) = s.ok(
        &s.alice,
        "gitlab_list_merge_requests",
        json!({"project": w, "author": "me"}),
    );
    assert_eq!(strings(&by_me, "iid"), ["5"]);
    assert_eq!(items(&by_me)[0]["reviewers"], json!(["bob"]));
    let (mr, mr_text) = s.ok(
        &s.alice,
        "gitlab_get_merge_request",
        json!({"project": w, "iid": 5}),
    );
    assert_eq!(mr["title"], "Fast rendering and no panic on empty text");
    assert_eq!(mr["merge_status"], "mergeable");
    assert_eq!(mr["sha"].as_str().map(str::len), Some(40));
    assert_eq!(mr["pipeline"]["status"], "failed");
    let mut files: Vec<String> = mr["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "{} {}",
                f["status"].as_str().unwrap_or(""),
                f["path"].as_str().unwrap_or("")
            )
        })
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
    assert_eq!(mr["changes_count"], "3");
    assert_eq!(mr["more_files"], false);
    assert!(
        mr_text.contains("failed (gitlab_get_failed_job_log"),
        "{mr_text}"
    );
    let (draft, _) = s.ok(
        &s.alice,
        "gitlab_get_merge_request",
        json!({"project": w, "iid": 7}),
    );
    assert_eq!(draft["draft"], true);
    assert_eq!(draft["has_conflicts"], true);
    let (diff, text) = s.ok(
        &s.alice,
        "gitlab_get_merge_request_diff",
        json!({"project": w, "iid": 5, "max_lines_per_file": 3}),
    );
    assert_eq!(items(&diff).len(), 3);
    for f in items(&diff) {
        let d = f["diff"].as_str().unwrap_or_default();
        assert!(d.starts_with("@@"), "{f}");
        if f["truncated"] == true {
            assert!(d.contains("…[truncated:"), "{f}");
        }
        assert!(d.lines().count() <= 4, "bounded: {f}");
    }
    assert!(text.contains("--- src/render.rs (added"), "{text}");
    let (one, _) = s.ok(
        &s.alice,
        "gitlab_get_merge_request_diff",
        json!({"project": w, "iid": 5, "paths": ["src/render.rs"]}),
    );
    assert_eq!(strings(&one, "path"), ["src/render.rs"]);
    assert_eq!(items(&one)[0]["truncated"], false);
    assert_eq!(items(&one)[0]["deletions"], 0);
    let (budget, _) = s.ok(
        &s.alice,
        "gitlab_get_merge_request_diff",
        json!({"project": w, "iid": 5, "max_total_lines": 5, "fields": ["path", "truncated"]}),
    );
    assert!(
        items(&budget).iter().all(|f| f["truncated"] == true),
        "the total budget cuts: {budget}"
    );

    // CI.
    let (pipelines, _) = s.ok(&s.alice, "gitlab_list_pipelines", json!({"project": w}));
    assert_eq!(
        strings(&pipelines, "status"),
        ["running", "failed", "success"]
    );
    let (failed, _) = s.ok(
        &s.alice,
        "gitlab_list_pipelines",
        json!({"project": w, "status": "failed"}),
    );
    assert_eq!(strings(&failed, "ref"), ["feature/fast-render"]);
    let failed_id = items(&failed)[0]["id"].clone();
    let (log, log_text) = s.ok(
        &s.alice,
        "gitlab_get_failed_job_log",
        json!({"project": w, "ref": "feature/fast-render"}),
    );
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
    assert!(
        log_text.contains("job test (test) failed: script_failure"),
        "{log_text}"
    );
    let (short, _) = s.ok(
        &s.alice,
        "gitlab_get_failed_job_log",
        json!({"project": w, "pipeline_id": failed_id, "lines": 3}),
    );
    assert_eq!(short["log"].as_str().map(|l| l.lines().count()), Some(3));
    let (vet, _) = s.ok(
        &s.alice,
        "gitlab_get_failed_job_log",
        json!({"project": "acme/platform/api"}),
    );
    assert_eq!(vet["job"]["name"], "vet");
    let job_id = vet["job"]["id"].clone();
    let (by_job, _) = s.ok(
        &s.alice,
        "gitlab_get_failed_job_log",
        json!({"project": "acme/platform/api", "job_id": job_id}),
    );
    assert_eq!(by_job["log"], vet["log"]);
    let no_such = s.failed(
        &s.alice,
        "gitlab_get_failed_job_log",
        json!({"project": w, "pipeline_id": failed_id, "job_name": "deploy"}),
    );
    assert!(no_such.contains("the failed jobs are: test"), "{no_such}");

    // Compact: the answers (structured content, and text, each) against what a
    // passthrough tool would return for the same question. The seed's payloads are small
    // (short descriptions, few fields), so these ratios understate real ones.
    let (mine_again, mine_text) = s.ok(
        &s.alice,
        "gitlab_list_issues",
        json!({"project": w, "assignee": "me"}),
    );
    for (what, structured, text, raw) in [
        (
            "my open issues in acme/widgets",
            &mine_again,
            &mine_text,
            s.raw_len("projects/acme%2Fwidgets/issues?state=opened&scope=assigned_to_me"),
        ),
        (
            "what changed in !5",
            &mr,
            &mr_text,
            s.raw_len("projects/acme%2Fwidgets/merge_requests/5")
                + s.raw_len("projects/acme%2Fwidgets/merge_requests/5/diffs"),
        ),
        (
            "why did CI fail on feature/fast-render",
            &log,
            &log_text,
            s.raw_len("projects/acme%2Fwidgets/pipelines?status=failed&ref=feature%2Ffast-render")
                + s.raw_len(&format!(
                    "projects/acme%2Fwidgets/pipelines/{failed_id}/jobs?scope[]=failed"
                ))
                + s.raw_len(&format!(
                    "projects/acme%2Fwidgets/jobs/{}/trace",
                    log["job"]["id"]
                )),
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

#[test]
fn writes_change_gitlab_and_are_sent_once() -> Result<()> {
    let s = setup()?;
    let w = json!("acme/widgets");

    // A branch from a ref.
    let (branch, text) = s.ok(
        &s.alice,
        "gitlab_create_branch",
        json!({"project": w, "branch": "gl/e2e", "ref": "feature/fast-render"}),
    );
    assert_eq!(branch["name"], "gl/e2e");
    assert!(text.starts_with("created gl/e2e in acme/widgets"), "{text}");
    let (status, b) = s.upstream("projects/acme%2Fwidgets/repository/branches/gl%2Fe2e");
    assert_eq!(status, 200);
    assert_eq!(
        b["commit"]["short_id"], branch["sha"],
        "at feature/fast-render's head"
    );
    let again = s.failed(
        &s.alice,
        "gitlab_create_branch",
        json!({"project": w, "branch": "gl/e2e"}),
    );
    assert!(
        again.contains("rejected") && again.contains("already exists"),
        "{again}"
    );

    // A merge request from it, into the default branch.
    let (mr, text) = s.ok(
        &s.alice,
        "gitlab_create_merge_request",
        json!({"project": w, "source_branch": "gl/e2e", "title": "E2E change", "labels": ["enhancement"], "reviewers": ["bob"], "draft": true}),
    );
    assert_eq!(mr["target_branch"], "main");
    assert_eq!(mr["title"], "Draft: E2E change");
    assert_eq!(mr["draft"], true);
    assert!(text.starts_with("opened acme/widgets!"), "{text}");
    let iid = mr["iid"].as_u64().context("iid")?;
    let (_, up) = s.upstream(&format!("projects/acme%2Fwidgets/merge_requests/{iid}"));
    assert_eq!(up["source_branch"], "gl/e2e");
    assert_eq!(up["labels"], json!(["enhancement"]));
    assert_eq!(s.journaled("POST", "/merge_requests"), 1, "sent once");
    let unknown = s.failed(
        &s.alice,
        "gitlab_create_merge_request",
        json!({"project": w, "source_branch": "stale", "title": "x", "reviewers": ["nobody-here"]}),
    );
    assert!(
        unknown.contains("no user named \"nobody-here\""),
        "{unknown}"
    );

    // An issue with labels and assignees (usernames become ids), then changed.
    let (issue, text) = s.ok(
        &s.alice,
        "gitlab_create_issue",
        json!({"project": w, "title": "From the agent", "description": "Found by an agent.", "labels": ["bug", "needs-triage"], "assignees": ["bob"]}),
    );
    let n = issue["iid"].as_u64().context("iid")?;
    assert_eq!(issue["state"], "opened");
    assert!(!text.contains("did not apply"), "{text}");
    let (_, up) = s.upstream(&format!("projects/acme%2Fwidgets/issues/{n}"));
    assert_eq!(up["title"], "From the agent");
    assert_eq!(up["description"], "Found by an agent.");
    assert_eq!(up["labels"], json!(["bug", "needs-triage"]));
    assert_eq!(up["assignees"][0]["username"], "bob");
    assert_eq!(s.journaled("POST", "/issues"), 1, "sent once");
    let (updated, _) = s.ok(
        &s.alice,
        "gitlab_update_issue",
        json!({"project": w, "iid": n, "state_event": "close", "add_labels": ["ci"], "remove_labels": ["needs-triage"], "assignees": ["alice", "bob"]}),
    );
    assert_eq!(updated["state"], "closed");
    let (_, up) = s.upstream(&format!("projects/acme%2Fwidgets/issues/{n}"));
    assert_eq!(up["state"], "closed");
    assert_eq!(up["closed_by"]["username"], "alice");
    assert_eq!(up["labels"], json!(["bug", "ci"]));
    let assignees: Vec<&str> = up["assignees"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["username"].as_str())
        .collect();
    assert_eq!(assignees, ["alice", "bob"]);
    let (reopened, _) = s.ok(
        &s.alice,
        "gitlab_update_issue",
        json!({"project": w, "iid": n, "state_event": "reopen", "labels": ["documentation"], "assignees": []}),
    );
    assert_eq!(reopened["state"], "opened");
    assert_eq!(reopened["labels"], json!(["documentation"]));
    assert_eq!(reopened["assignees"], json!([]));
    let nothing = s.failed(
        &s.alice,
        "gitlab_update_issue",
        json!({"project": w, "iid": n}),
    );
    assert!(nothing.contains("nothing to change"), "{nothing}");

    // A comment.
    let (posted, text) = s.ok(
        &s.alice,
        "gitlab_comment_on_issue",
        json!({"project": w, "iid": n, "body": "Looking into it."}),
    );
    assert!(
        posted["url"].as_str().is_some_and(
            |u| u.ends_with(&format!("/acme/widgets/-/issues/{n}#note_{}", posted["id"]))
        ),
        "{posted}"
    );
    assert!(
        text.starts_with(&format!("commented on acme/widgets#{n}")),
        "{text}"
    );
    let (_, notes) = s.upstream(&format!("projects/acme%2Fwidgets/issues/{n}/notes"));
    assert_eq!(notes[0]["body"], "Looking into it.");
    assert_eq!(notes[0]["author"]["username"], "alice");
    assert_eq!(s.journaled("POST", &format!("/issues/{n}/notes")), 1);
    let (detail, _) = s.ok(
        &s.alice,
        "gitlab_get_issue",
        json!({"project": w, "iid": n}),
    );
    assert_eq!(detail["notes"][0]["body"], "Looking into it.");

    // A review of bob's merge request: approve at the head reviewed, with a comment.
    let (six, _) = s.ok(
        &s.alice,
        "gitlab_get_merge_request",
        json!({"project": w, "iid": 6}),
    );
    let sha = six["sha"].clone();
    // An approval is confirmed by the user like a merge.
    let r = s.confirmed(
        &s.alice,
        "gitlab_review_merge_request",
        json!({"project": w, "iid": 6, "approve": true, "sha": sha, "body": "LGTM, thanks!"}),
        true,
    );
    assert_eq!(r["isError"], false, "{r}\n{}", s.connector.log());
    let (review, text) = (r["structuredContent"].clone(), text_of(&r));
    assert_eq!(review["approved"], true);
    assert!(
        review["comment"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("/-/merge_requests/6#note_"))
    );
    assert!(text.contains("approved acme/widgets!6"), "{text}");
    assert_eq!(s.journaled("POST", "/merge_requests/6/approve"), 1);
    let (_, notes) = s.upstream("projects/acme%2Fwidgets/merge_requests/6/notes");
    assert_eq!(notes[0]["body"], "LGTM, thanks!");
    // Approving again: current GitLab answers 304 Not Modified, versions before it 401
    // (the fault); both read as "already approved by you", not a failure to retry.
    for (gitlab, fault) in [
        ("current", None),
        (
            "old",
            Some(
                json!({"method": "POST", "path_regex": "/merge_requests/6/approve$", "action": "status", "status": 401}),
            ),
        ),
    ] {
        if let Some(f) = fault {
            s.gitlab.control("faults", &f).expect("fault armed");
        }
        let again = s.confirmed(
            &s.alice,
            "gitlab_review_merge_request",
            json!({"project": w, "iid": 6, "approve": true}),
            true,
        );
        assert_eq!(again["isError"], false, "{gitlab}: {again}");
        let (again, text) = (again["structuredContent"].clone(), text_of(&again));
        assert_eq!(again["approved"], false, "{gitlab}: {again}");
        assert_eq!(again["already_approved"], true, "{gitlab}: {again}");
        assert_eq!(text, "already approved by you: acme/widgets!6", "{gitlab}");
    }
    assert_eq!(
        s.upstream("projects/acme%2Fwidgets/merge_requests/6/notes")
            .1
            .as_array()
            .map(Vec::len),
        Some(1),
        "approving again posts nothing"
    );

    // Merge it, once the user confirmed, at the reviewed head.
    let r = s.confirmed(
        &s.alice,
        "gitlab_merge_merge_request",
        json!({"project": w, "iid": 6, "sha": sha, "remove_source_branch": true}),
        true,
    );
    assert_eq!(r["isError"], false, "{r}\n{}", s.connector.log());
    let merged = &r["structuredContent"];
    assert_eq!(merged["state"], "merged");
    assert!(text_of(&r).starts_with("merged acme/widgets!6 as "), "{r}");
    let (_, up) = s.upstream("projects/acme%2Fwidgets/merge_requests/6");
    assert_eq!(up["state"], "merged");
    assert_eq!(up["merged_by"]["username"], "alice");
    assert_eq!(up["merge_commit_sha"], merged["merge_commit_sha"]);
    assert_eq!(
        s.upstream("projects/acme%2Fwidgets/repository/branches/fix%2Freadme-typo")
            .0,
        404,
        "the source branch went with it"
    );
    let (main, _) = s.ok(
        &s.alice,
        "gitlab_get_file",
        json!({"project": w, "path": "README.md"}),
    );
    assert!(
        main["content"]
            .as_str()
            .is_some_and(|c| c.contains("either side"))
    );
    assert_eq!(
        s.journaled("PUT", "/merge_requests/6/merge"),
        1,
        "sent once"
    );

    // Delete the branch made above, once confirmed.
    let r = s.confirmed(
        &s.alice,
        "gitlab_delete_branch",
        json!({"project": w, "branch": "gl/e2e"}),
        true,
    );
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(
        r["structuredContent"],
        json!({"project": "acme/widgets", "deleted": "gl/e2e"})
    );
    assert_eq!(
        s.upstream("projects/acme%2Fwidgets/repository/branches/gl%2Fe2e")
            .0,
        404
    );
    let r = s.confirmed(
        &s.alice,
        "gitlab_delete_branch",
        json!({"project": w, "branch": "main"}),
        true,
    );
    assert_eq!(r["isError"], true, "{r}");
    assert!(text_of(&r).contains("default branch"), "{r}");
    Ok(())
}

#[test]
fn gitlab_refuses_what_the_policy_allowed() -> Result<()> {
    let s = setup()?;
    let w = json!("acme/widgets");
    let (five, _) = s.ok(
        &s.bob,
        "gitlab_get_merge_request",
        json!({"project": w, "iid": 5}),
    );
    let sha = five["sha"].clone();

    // bob is a reporter: the policy lets him call merge, GitLab does not let him merge.
    let r = s.confirmed(
        &s.bob,
        "gitlab_merge_merge_request",
        json!({"project": w, "iid": 5, "sha": sha}),
        true,
    );
    assert_eq!(r["isError"], true, "{r}");
    let why = text_of(&r);
    assert!(why.contains("refused the merge for this user"), "{why}");
    assert!(!why.contains("glpat-"), "no token in errors: {why}");
    assert_eq!(
        s.upstream("projects/acme%2Fwidgets/merge_requests/5").1["state"],
        "opened"
    );
    assert_eq!(
        s.journaled("PUT", "/merge_requests/5/merge"),
        1,
        "tried once"
    );
    let refused = s.failed(
        &s.bob,
        "gitlab_create_branch",
        json!({"project": w, "branch": "bob/x", "ref": "main"}),
    );
    assert!(refused.contains("refused this user"), "{refused}");
    let approve = s.confirmed(
        &s.bob,
        "gitlab_review_merge_request",
        json!({"project": w, "iid": 5, "approve": true}),
        true,
    );
    assert_eq!(approve["isError"], true, "{approve}");
    let approve = text_of(&approve);
    assert!(approve.contains("refused the approval"), "{approve}");
    // What a reporter may do, he can: comment on a merge request.
    let (note, _) = s.ok(
        &s.bob,
        "gitlab_review_merge_request",
        json!({"project": w, "iid": 5, "body": "Works for me."}),
    );
    assert_eq!(note["approved"], false);
    assert!(note["comment"]["id"].is_u64());
    // And a reporter's labels stick, where a guest's would be dropped.
    let (labelled, text) = s.ok(
        &s.bob,
        "gitlab_update_issue",
        json!({"project": w, "iid": 2, "add_labels": ["good first issue"]}),
    );
    assert!(
        labelled["labels"]
            .as_array()
            .is_some_and(|l| l.contains(&json!("good first issue")))
    );
    assert!(!text.contains("did not apply"), "{text}");

    // The author may not approve their own merge request.
    let own = s.confirmed(
        &s.alice,
        "gitlab_review_merge_request",
        json!({"project": w, "iid": 5, "approve": true}),
        true,
    );
    assert_eq!(own["isError"], true, "{own}");
    let own = text_of(&own);
    assert!(own.contains("refused the approval"), "{own}");

    // A merge at a head the agent names but the user was not shown is refused, not
    // applied (the user confirmed the actual head).
    let before = s.journaled("PUT", "/merge_requests/5/merge");
    let r = s.confirmed(
        &s.alice,
        "gitlab_merge_merge_request",
        json!({"project": w, "iid": 5, "sha": "0000000000000000000000000000000000000000"}),
        true,
    );
    assert_eq!(r["isError"], true, "{r}");
    assert!(
        text_of(&r).contains("but the user approved head commit"),
        "{r}"
    );
    assert_eq!(s.journaled("PUT", "/merge_requests/5/merge"), before);
    // A draft with conflicts cannot be merged.
    let (seven, _) = s.ok(
        &s.alice,
        "gitlab_get_merge_request",
        json!({"project": w, "iid": 7}),
    );
    let r = s.confirmed(
        &s.alice,
        "gitlab_merge_merge_request",
        json!({"project": w, "iid": 7, "sha": seven["sha"]}),
        true,
    );
    assert_eq!(r["isError"], true, "{r}");
    assert!(
        text_of(&r).contains("cannot merge acme/widgets!7 now"),
        "{r}"
    );

    // A declined confirmation sends nothing upstream.
    s.gitlab.clear_requests()?;
    let r = s.confirmed(
        &s.alice,
        "gitlab_merge_merge_request",
        json!({"project": w, "iid": 5, "sha": sha}),
        false,
    );
    assert_eq!(r["isError"], true, "{r}");
    assert!(text_of(&r).contains("did not confirm"), "{r}");
    assert_eq!(s.journaled("PUT", "/merge"), 0);
    assert_eq!(
        s.upstream("projects/acme%2Fwidgets/merge_requests/5").1["state"],
        "opened"
    );
    // Bad arguments are the caller's to fix.
    let bad = s.failed(
        &s.alice,
        "gitlab_list_issues",
        json!({"project": "acme/widgets", "colour": "red"}),
    );
    assert!(bad.contains("unknown field"), "{bad}");
    Ok(())
}

#[test]
fn a_file_over_gitlabs_diff_limit_is_said_too_large_not_unchanged() -> Result<()> {
    // GitLab sends an empty `diff` with `too_large` and no line count past its limit.
    let big: String = (0..30_000).map(|i| format!("line {i}\n")).collect();
    let seed = json!({
        "users": [{"login": "alice"}, {"login": "bob"}],
        "tokens": [
            {"token": ALICE_PAT, "user": "alice", "scopes": ["api"]},
            {"token": BOB_PAT, "user": "bob", "scopes": ["api"]},
        ],
        "namespaces": [{"path": "acme", "members": {"alice": "admin", "bob": "admin"}}],
        "repos": [{
            "namespace": "acme",
            "name": "data",
            "commits": [
                {"key": "init", "message": "Start", "author": "alice", "date": "2024-01-01T00:00:00Z", "files": {"README.md": "Data.\n"}},
                {"key": "bulk", "parents": ["init"], "message": "Add the table", "author": "alice", "date": "2024-01-02T00:00:00Z", "files": {"table.txt": big, "README.md": "Data, and a table.\n"}},
            ],
            "branches": {"main": "init", "bulk": "bulk"},
            "pulls": [{"number": 1, "title": "Add the table", "body": "", "author": "alice", "head": "bulk", "base": "main", "created_at": "2024-01-02T00:00:00Z"}],
        }],
    });
    let s = setup_with(Some(&seed))?;
    let p = "acme/data";
    let (diff, text) = s.ok(
        &s.alice,
        "gitlab_get_merge_request_diff",
        json!({"project": p, "iid": 1}),
    );
    let files = items(&diff);
    let table = files
        .iter()
        .find(|f| f["path"] == "table.txt")
        .expect("table.txt");
    let readme = files
        .iter()
        .find(|f| f["path"] == "README.md")
        .expect("README.md");
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
        text.contains("--- table.txt (added, no line count)\n…[diff too large to show"),
        "{text}"
    );
    assert!(!text.contains("table.txt (added, +0 -0)"), "{text}");
    let (mr, text) = s.ok(
        &s.alice,
        "gitlab_get_merge_request",
        json!({"project": p, "iid": 1}),
    );
    let entry = mr["files"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["path"] == "table.txt")
        .cloned()
        .unwrap_or_default();
    assert!(
        entry["no_diff"]
            .as_str()
            .is_some_and(|w| w.starts_with("diff too large to show")),
        "{mr}"
    );
    assert!(
        text.contains("added table.txt (diff too large to show"),
        "{text}"
    );
    Ok(())
}

#[test]
fn a_parent_pipeline_leads_to_the_failed_job_of_its_child() -> Result<()> {
    // The parent's only failed job is the bridge that triggered the child pipeline: GitLab
    // lists it under `/bridges`, not `/jobs`.
    let seed = json!({
        "users": [{"login": "alice"}],
        "tokens": [{"token": ALICE_PAT, "user": "alice", "scopes": ["api"]}],
        "namespaces": [{"path": "acme", "members": {"alice": "admin"}}],
        "repos": [{
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
        }],
    });
    let s = setup_with(Some(&seed))?;
    let (pipelines, _) = s.ok(
        &s.alice,
        "gitlab_list_pipelines",
        json!({"project": "acme/mono"}),
    );
    let ids: Vec<u64> = items(&pipelines)
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect();
    let (parent, child) = (ids[0], ids[1]);
    // Asked by id, and as the newest failed pipeline: the same answer.
    for args in [
        json!({"project": "acme/mono", "pipeline_id": parent}),
        json!({"project": "acme/mono"}),
    ] {
        let (log, text) = s.ok(&s.alice, "gitlab_get_failed_job_log", args.clone());
        assert_eq!(log["pipeline_id"], child, "{args}: {log}");
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
        assert!(
            text.starts_with(&format!(
                "pipeline {parent} (bridge \"backend\") → pipeline {child}: job unit (test) failed"
            )),
            "{text}"
        );
    }
    Ok(())
}

/// The question and sealed state of an input-required result.
fn question(asked: &Value) -> (String, Value) {
    assert_eq!(asked["resultType"], "input_required", "{asked}");
    let q = &asked["inputRequests"]["confirm"];
    (
        q["params"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        asked["requestState"].clone(),
    )
}

#[test]
fn merge_and_approval_confirmations_show_the_merge_request_and_a_push_after_them_refuses_both()
-> Result<()> {
    let s = setup()?;
    let w = json!("acme/widgets");
    let (six, _) = s.ok(
        &s.alice,
        "gitlab_get_merge_request",
        json!({"project": w, "iid": 6}),
    );
    let head = six["sha"].as_str().unwrap_or_default().to_owned();
    let answer = |tool: &str, args: &Value, state: &Value| -> Value {
        let v = s
            .alice
            .request(
                "tools/call",
                json!({
                    "name": tool,
                    "arguments": args,
                    "inputResponses": {"confirm": {"action": "accept", "content": {"confirm": true}}},
                    "requestState": state,
                }),
            )
            .expect("tools/call retry");
        v.get("result").cloned().unwrap_or(v)
    };
    let push = || {
        s.gitlab.control(
            "push",
            &json!({"repo": "acme/widgets", "branch": "fix/readme-typo", "author": "bob", "message": "Sneak in a change"}),
        )
    };

    // An approval asks, naming what is approved.
    let approve = json!({"project": w, "iid": 6, "approve": true});
    let (shown, state) = question(
        &s.alice
            .call("gitlab_review_merge_request", approve.clone())?,
    );
    for part in [
        "gitlab_review_merge_request on acme/widgets",
        "approve merge request acme/widgets!6",
        "\u{201c}Fix a typo in the README\u{201d}",
        "from branch \u{201c}fix/readme-typo\u{201d} into \u{201c}main\u{201d}",
        &format!("head commit {head}"),
    ] {
        assert!(shown.contains(part), "{part:?} missing from {shown:?}");
    }
    assert_eq!(s.journaled("POST", "/merge_requests/6/approve"), 0);
    // The merge asks too, with its method.
    let merge = json!({"project": w, "iid": 6, "sha": head, "squash": true});
    let (shown, merge_state) =
        question(&s.alice.call("gitlab_merge_merge_request", merge.clone())?);
    for part in [
        "merge merge request acme/widgets!6",
        &format!("head commit {head}"),
        "merge method squash",
        "cannot be undone",
    ] {
        assert!(shown.contains(part), "{part:?} missing from {shown:?}");
    }

    // A push after both were confirmed: GitLab is asked to act on the approved head only,
    // refuses, and the agent is told what happened.
    push()?;
    for (tool, args, state) in [
        ("gitlab_review_merge_request", &approve, &state),
        ("gitlab_merge_merge_request", &merge, &merge_state),
    ] {
        let r = answer(tool, args, state);
        assert_eq!(r["isError"], true, "{tool}: {r}");
        assert!(
            text_of(&r).contains("changed after the user approved it"),
            "{tool}: {r}\n{}",
            s.connector.log()
        );
    }
    let (_, up) = s.upstream("projects/acme%2Fwidgets/merge_requests/6");
    assert_eq!(up["state"], "opened");
    let statuses = |suffix: &str| -> Vec<u64> {
        s.gitlab
            .requests()
            .unwrap_or_default()
            .iter()
            .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
            .filter_map(|r| r["status"].as_u64())
            .collect()
    };
    assert_eq!(statuses("/merge_requests/6/approve"), [409]);
    assert_eq!(statuses("/merge_requests/6/merge"), [409]);
    Ok(())
}
