//! Every `github_*` tool, end to end: an MCP client (stateless 2026-07-28) calls the
//! runtime, which sends the call through the QUIC tunnel to a connector process, which
//! acts on the fake GitHub Enterprise Server (`tests/fake-upstream`, built-in seed) with
//! the calling user's own token, provisioned in the connector's vault as
//! `user/ghes/<user id>` once the user exists (the OAuth connect flow has its own suite).
//!
//! Each test starts its own runtime, fake and connector, asserts on the structured content
//! and the text against the seed data, and reads writes back (with another tool or from
//! the fake's journal). Also covered: the upstream refusing what the policy allowed (bob
//! is only triage on `acme`), not-found errors, field selection with pagination, a
//! destructive call confirmed by the user through an input-required round, and the job-log
//! download reaching the log storage without the user's token.

use std::collections::BTreeSet;

use anyhow::Result;
use e2e::mcp_client::McpClient;
use e2e::{Connector, FakeUpstream, OPEN_POLICY, Runtime, run_ok};
use serde_json::{Value, json};

/// Users of the seed and their GitHub PATs.
const USERS: [(&str, &str); 3] = [
    ("alice", "ghp_aliceFakeToken000000000000000000000"),
    ("bob", "ghp_bobFakeToken00000000000000000000000"),
    ("carol", "ghp_carolFakeToken000000000000000000000"),
];

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

/// A runtime with gateway `eng` of tenant `acme`, a fake GHES, and a connector with the
/// users' tokens in its vault.
struct Env {
    rt: Runtime,
    config: std::path::PathBuf,
    /// The connector's provider instances, each given the users' tokens.
    instances: &'static [&'static str],
    ghes: FakeUpstream,
    connector: Connector,
}

impl Env {
    /// Starts everything with the fake's built-in seed; `confirm_destructive` keeps the
    /// runtime's hook that asks the user before destructive tools.
    fn start(confirm_destructive: bool) -> Result<Self> {
        Self::start_with(confirm_destructive, None)
    }

    /// Like [`Env::start`], with the fake seeded from `seed` when given.
    fn start_with(confirm_destructive: bool, seed: Option<&Value>) -> Result<Self> {
        let mut rt = Runtime::init()?;
        if !confirm_destructive {
            rt.apply_policy(
                "acme",
                &format!("{OPEN_POLICY}\n[hooks]\nconfirm_destructive = false\n"),
            );
        }
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
        let ghes = FakeUpstream::start(rt.dir.path(), "github", &extra)?;
        let mut connector = Connector::enroll(&rt, "acme", "c1")?;
        let config = connector.configure(
            &format!(
                "[[provider]]\nname = \"ghes\"\nkind = \"github\"\napi_url = \"{}\"\n",
                ghes.api_url()
            ),
            "version = 1\n[[allow]]\ntools = [\"github_*\", \"diag.*\"]\n",
            &[],
        )?;
        connector.start_configured(&rt, &config)?;
        Ok(Self {
            rt,
            config,
            instances: &["ghes"],
            ghes,
            connector,
        })
    }

    /// Like [`Env::start`], with two instances of the same fake, `ghes-prod` and
    /// `ghes-sandbox` (which lists `localhost` as log storage), and the tenant policy
    /// `policy`.
    fn start_two_instances(policy: &str) -> Result<Self> {
        let mut rt = Runtime::init()?;
        rt.apply_policy("acme", policy);
        rt.start()?;
        run_ok(
            rt.cli()
                .args(["gateway", "create", "--tenant", "acme", "eng"]),
        );
        let ghes = FakeUpstream::start(rt.dir.path(), "github", &[])?;
        let mut connector = Connector::enroll(&rt, "acme", "c1")?;
        let api = ghes.api_url();
        let config = connector.configure(
            &format!(
                "[[provider]]\nname = \"ghes-prod\"\nkind = \"github\"\napi_url = \"{api}\"\n\n\
                 [[provider]]\nname = \"ghes-sandbox\"\nkind = \"github\"\napi_url = \"{api}\"\n\
                 log_storage_hosts = [\"localhost\"]\n"
            ),
            "version = 1\n[[allow]]\ntools = [\"github_*\", \"diag.*\"]\n",
            &[],
        )?;
        connector.start_configured(&rt, &config)?;
        Ok(Self {
            rt,
            config,
            instances: &["ghes-prod", "ghes-sandbox"],
            ghes,
            connector,
        })
    }

    /// `login` signed in (group `eng`) through an agent of role `triage`.
    fn user(&self, login: &str) -> Result<McpClient> {
        let client = McpClient::new_user(
            &self.rt,
            "acme",
            "eng",
            login,
            "eng",
            &format!("agent-{login}"),
            "triage",
        )?;
        if let Some((_, pat)) = USERS.iter().find(|(u, _)| *u == login) {
            for instance in self.instances {
                let entry = format!("user/{instance}/{}", client.user_id);
                Connector::vault_set(&self.config, &entry, pat)?;
            }
        }
        Ok(client)
    }

    /// The fake's journal entries for `method` and a path ending in `suffix`.
    fn journal(&self, method: &str, suffix: &str) -> Result<Vec<Value>> {
        Ok(self
            .ghes
            .requests()?
            .into_iter()
            .filter(|r| {
                r["method"] == method && r["path"].as_str().is_some_and(|p| p.ends_with(suffix))
            })
            .collect())
    }
}

/// The text content of a result.
fn text(v: &Value) -> String {
    v["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Calls `tool`; asserts success; returns the structured content and the text.
fn ok(client: &McpClient, env: &Env, tool: &str, args: Value) -> Result<(Value, String)> {
    let v = client.call(tool, args.clone())?;
    assert!(
        v.get("error").is_none() && v["isError"] != true,
        "{tool} {args} failed: {v}\nconnector log:\n{}",
        env.connector.log()
    );
    Ok((v["structuredContent"].clone(), text(&v)))
}

/// Calls `tool`; asserts it failed as a tool error; returns the message.
fn fails(client: &McpClient, tool: &str, args: Value) -> Result<String> {
    let v = client.call(tool, args.clone())?;
    assert_eq!(v["isError"], true, "{tool} {args} should fail: {v}");
    Ok(text(&v))
}

/// The values of `key` in each item of `v["items"]`.
fn each<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    v["items"]
        .as_array()
        .map(|items| items.iter().map(|i| &i[key]).collect())
        .unwrap_or_default()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    each(v, key)
        .into_iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn numbers(v: &Value, key: &str) -> BTreeSet<u64> {
    each(v, key).into_iter().filter_map(Value::as_u64).collect()
}

/// Sends a stateless `tools/call` with the user's answer to a confirmation.
fn answer(
    client: &McpClient,
    tool: &str,
    args: &Value,
    state: &str,
    accept: bool,
) -> Result<Value> {
    let response = if accept {
        json!({"action": "accept", "content": {"confirm": true}})
    } else {
        json!({"action": "decline"})
    };
    let v = client.request(
        "tools/call",
        json!({
            "name": tool,
            "arguments": args,
            "inputResponses": {"confirm": response},
            "requestState": state,
        }),
    )?;
    Ok(v["result"].clone())
}

#[test]
fn tools_are_listed_and_accounts_and_repositories_found() -> Result<()> {
    let env = Env::start(true)?;
    let alice = env.user("alice")?;
    let carol = env.user("carol")?;

    // tools/list: every GitHub tool, with annotations and schemas from the types.
    let names = alice.tool_names()?;
    for t in TOOLS {
        assert!(names.iter().any(|n| n == t), "{t} missing from {names:?}");
    }
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let page = alice.request("tools/list", params)?;
        tools.extend(
            page["result"]["tools"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        match page["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let tool = |name: &str| {
        tools
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    for t in TOOLS {
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
    assert!(
        get_file["inputSchema"]["properties"]["ref"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("Branch, tag or commit")),
        "{get_file}"
    );
    assert!(tool("github_list_commits")["inputSchema"]["properties"]["fields"].is_object());

    let (me, t) = ok(&alice, &env, "github_whoami", json!({}))?;
    assert_eq!(me["login"], "alice");
    assert_eq!(me["name"], "Alice Admin");
    assert_eq!(me["site_admin"], false);
    assert_eq!(me["instance"], "ghes");
    assert!(
        t.starts_with("alice on GitHub Enterprise at 127.0.0.1"),
        "{t}"
    );
    let (me, _) = ok(&carol, &env, "github_whoami", json!({}))?;
    assert_eq!(me["login"], "carol");

    // The repositories alice belongs to, most recently updated first.
    let (all, t) = ok(&alice, &env, "github_search_repositories", json!({}))?;
    assert_eq!(strings(&all, "full_name"), ["acme/infra", "acme/widgets"]);
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

    let (found, t) = ok(
        &alice,
        &env,
        "github_search_repositories",
        json!({"text": "terraform"}),
    )?;
    assert_eq!(strings(&found, "full_name"), ["acme/infra"]);
    assert!(t.starts_with("acme/infra [private, admin]"), "{t}");
    let (found, _) = ok(
        &alice,
        &env,
        "github_search_repositories",
        json!({"org": "acme", "language": "rust"}),
    )?;
    assert_eq!(strings(&found, "full_name"), ["acme/widgets"]);

    // Carol reads widgets only; the private repository does not exist for her.
    let (mine, _) = ok(&carol, &env, "github_search_repositories", json!({}))?;
    assert_eq!(strings(&mine, "full_name"), ["acme/widgets"]);
    assert_eq!(mine["items"][0]["permission"], "read");
    let (none, t) = ok(
        &carol,
        &env,
        "github_search_repositories",
        json!({"text": "terraform"}),
    )?;
    assert_eq!(none["items"], json!([]));
    assert_eq!(t, "no repositories found");
    let e = fails(
        &carol,
        "github_get_file",
        json!({"owner": "acme", "repo": "infra", "path": "README.md"}),
    )?;
    assert!(e.contains("not found, or not visible to this user"), "{e}");

    // Field selection and pagination.
    let (p1, t) = ok(
        &alice,
        &env,
        "github_search_repositories",
        json!({"limit": 1, "fields": ["full_name"]}),
    )?;
    assert_eq!(p1["items"], json!([{"full_name": "acme/infra"}]));
    assert_eq!(p1["next_cursor"], "2");
    assert!(t.ends_with("(more: pass next_cursor)"), "{t}");
    let (p2, _) = ok(
        &alice,
        &env,
        "github_search_repositories",
        json!({"limit": 1, "fields": ["full_name"], "cursor": "2"}),
    )?;
    assert_eq!(p2, json!({"items": [{"full_name": "acme/widgets"}]}));
    let e = fails(&alice, "github_search_repositories", json!({"cursor": "x"}))?;
    assert!(e.contains("cursor must be a next_cursor value"), "{e}");
    Ok(())
}

#[test]
fn files_are_read_in_windows_and_code_is_searched() -> Result<()> {
    let env = Env::start(true)?;
    let alice = env.user("alice")?;
    let repo = |extra: Value| {
        let mut args = json!({"owner": "acme", "repo": "widgets"});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        args
    };

    let (f, t) = ok(
        &alice,
        &env,
        "github_get_file",
        repo(json!({"path": "README.md"})),
    )?;
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

    let (f, t) = ok(
        &alice,
        &env,
        "github_get_file",
        repo(json!({"path": "README.md", "ref": "fix/readme-typo"})),
    )?;
    assert!(
        f["content"]
            .as_str()
            .unwrap_or_default()
            .contains("one space on either side"),
        "{f}"
    );
    assert_eq!(f["ref"], "fix/readme-typo");
    assert!(
        t.starts_with("acme/widgets:README.md@fix/readme-typo"),
        "{t}"
    );

    let (d, t) = ok(
        &alice,
        &env,
        "github_get_file",
        repo(json!({"path": "src", "ref": "feature/fast-render"})),
    )?;
    assert_eq!(d["type"], "dir");
    assert_eq!(
        d["entries"].as_array().map(|e| e
            .iter()
            .map(|x| x["name"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()),
        Some(vec!["lib.rs", "render.rs", "widget.rs"])
    );
    assert_eq!(d["entries"][0]["type"], "file");
    assert!(t.contains("(directory, 3 entries)"), "{t}");
    let (root, t) = ok(&alice, &env, "github_get_file", repo(json!({})))?;
    let entries = &root["entries"];
    assert!(
        entries.as_array().is_some_and(|e| e
            .iter()
            .any(|x| x["name"] == "data" && x["type"] == "dir")
            && e.iter()
                .any(|x| x["name"] == "Cargo.toml" && x["type"] == "file")),
        "{root}"
    );
    assert!(t.contains("\n.github/"), "{t}");

    // ~190 KB: cut at a line end, and read on from where it stopped.
    let (big, t) = ok(
        &alice,
        &env,
        "github_get_file",
        repo(json!({"path": "data/catalog.csv"})),
    )?;
    assert_eq!(big["truncated"], true);
    assert_eq!(big["total_lines"], 3001);
    let chunk = big["content"].as_str().unwrap_or_default();
    assert!(chunk.starts_with("sku,name,width"), "{}", &chunk[..40]);
    assert!(chunk.chars().count() <= 20_000 && chunk.ends_with('\n'));
    let next = big["next_start_line"].as_u64().unwrap_or_default();
    assert_eq!(big["to_line"].as_u64(), Some(next - 1));
    assert!(
        t.ends_with(&format!("…[truncated: pass start_line {next} to read on]")),
        "{}",
        &t[t.len() - 80..]
    );
    let (more, _) = ok(
        &alice,
        &env,
        "github_get_file",
        repo(json!({"path": "data/catalog.csv", "start_line": next, "max_chars": 200})),
    )?;
    assert_eq!(more["from_line"].as_u64(), Some(next));
    let row = format!("W-{:05},", next - 2);
    assert!(
        more["content"]
            .as_str()
            .is_some_and(|c| c.starts_with(&row)),
        "{more}"
    );
    let (last, _) = ok(
        &alice,
        &env,
        "github_get_file",
        repo(json!({"path": "data/catalog.csv", "start_line": 3001})),
    )?;
    assert!(
        last.get("truncated").is_none() && last.get("next_start_line").is_none(),
        "{last}"
    );
    let e = fails(
        &alice,
        "github_get_file",
        repo(json!({"path": "data/catalog.csv", "start_line": 4000})),
    )?;
    assert!(e.contains("past the end: the file has 3001 lines"), "{e}");
    let e = fails(
        &alice,
        "github_get_file",
        repo(json!({"path": "src/missing.rs"})),
    )?;
    assert!(e.contains("not found"), "{e}");
    let e = fails(
        &alice,
        "github_get_file",
        repo(json!({"path": "../../user"})),
    )?;
    assert!(e.contains("not a valid name"), "{e}");

    let (hits, t) = ok(
        &alice,
        &env,
        "github_search_code",
        repo(json!({"query": "initial"})),
    )?;
    assert_eq!(hits["total"], 1);
    assert_eq!(strings(&hits, "path"), ["src/widget.rs"]);
    assert!(
        hits["items"][0]["lines"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x == "pub fn initial(&self) -> char {")),
        "{hits}"
    );
    assert!(
        t.starts_with("1 file(s) in acme/widgets match:\nsrc/widget.rs: "),
        "{t}"
    );
    let (hits, _) = ok(
        &alice,
        &env,
        "github_search_code",
        repo(json!({"query": "widget", "path": "src", "extension": "rs"})),
    )?;
    assert_eq!(
        strings(&hits, "path").into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from(["src/lib.rs".to_owned(), "src/widget.rs".to_owned()])
    );
    let (none, t) = ok(
        &alice,
        &env,
        "github_search_code",
        repo(json!({"query": "kubernetes"})),
    )?;
    assert_eq!(
        (none["total"].as_u64(), none["items"].clone()),
        (Some(0), json!([]))
    );
    assert!(t.starts_with("no code in acme/widgets matches"), "{t}");
    // The search cannot be widened past the repository the policy checked.
    let e = fails(
        &alice,
        "github_search_code",
        repo(json!({"query": "terraform repo:acme/infra"})),
    )?;
    assert!(e.contains("may not name other repositories"), "{e}");
    // A qualifier smuggled into the repository name is refused before any layer acts on
    // it (the runtime's target check; the tool checks again).
    let v = alice.call(
        "github_search_code",
        json!({"owner": "acme", "repo": "widgets repo:acme/infra", "query": "terraform"}),
    )?;
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not allowed here")),
        "{v}"
    );
    assert!(
        env.journal("GET", "/search/code")?
            .iter()
            .all(|r| !r["query"].as_str().unwrap_or_default().contains("infra")),
        "a widened search reached the upstream"
    );
    Ok(())
}

#[test]
fn branches_and_commits_and_a_deletion_the_user_confirms() -> Result<()> {
    let env = Env::start(true)?;
    let alice = env.user("alice")?;
    let widgets = json!({"owner": "acme", "repo": "widgets"});
    let with = |extra: Value| {
        let mut args = widgets.clone();
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        args
    };

    let (b, t) = ok(&alice, &env, "github_list_branches", widgets.clone())?;
    assert_eq!(
        strings(&b, "name"),
        [
            "feature/fast-render",
            "fix/readme-typo",
            "main",
            "refactor/draw",
            "stale"
        ]
    );
    let sha_of = |page: &Value, name: &str| {
        page["items"]
            .as_array()
            .and_then(|i| i.iter().find(|b| b["name"] == name))
            .map(|b| b["sha"].as_str().unwrap_or_default().to_owned())
    };
    let main = sha_of(&b, "main").unwrap_or_default();
    let fast = sha_of(&b, "feature/fast-render").unwrap_or_default();
    assert_eq!(sha_of(&b, "stale").as_deref(), Some(main.as_str()));
    assert!(
        t.contains(&format!("main {} (protected)", &main[..7])),
        "{t}"
    );
    let (p, _) = ok(
        &alice,
        &env,
        "github_list_branches",
        with(json!({"protected": true})),
    )?;
    assert_eq!(strings(&p, "name"), ["main"]);

    let (c, t) = ok(
        &alice,
        &env,
        "github_list_commits",
        with(json!({"ref": "feature/fast-render"})),
    )?;
    assert_eq!(
        strings(&c, "title"),
        [
            "Widget::initial no longer panics on empty text",
            "Render into a reusable buffer",
            "Add the widget catalogue",
            "README: document padding",
            "Initial commit"
        ]
    );
    assert_eq!(
        strings(&c, "author"),
        ["alice", "alice", "alice", "bob", "alice"]
    );
    assert_eq!(c["items"][0]["sha"], fast.as_str());
    assert_eq!(c["items"][0]["date"], "2024-03-05T09:15:00Z");
    assert!(
        t.starts_with(&format!("{} 2024-03-05 alice Widget::initial", &fast[..7])),
        "{t}"
    );
    let (c, _) = ok(
        &alice,
        &env,
        "github_list_commits",
        with(json!({"path": "README.md"})),
    )?;
    assert_eq!(
        strings(&c, "title"),
        ["README: document padding", "Initial commit"]
    );
    let (c, _) = ok(
        &alice,
        &env,
        "github_list_commits",
        with(json!({"ref": "fix/readme-typo", "author": "bob"})),
    )?;
    assert_eq!(
        strings(&c, "title"),
        ["Fix a typo in the README", "README: document padding"]
    );
    let (c, _) = ok(
        &alice,
        &env,
        "github_list_commits",
        with(json!({"since": "2024-02-01T00:00:00Z", "until": "2024-02-28T00:00:00Z"})),
    )?;
    assert_eq!(
        strings(&c, "title"),
        ["Add the widget catalogue", "README: document padding"]
    );

    // Field selection and pagination: two of main's three commits, then the last.
    let (p1, t) = ok(
        &alice,
        &env,
        "github_list_commits",
        with(json!({"limit": 2, "fields": ["sha", "title"]})),
    )?;
    assert_eq!(p1["next_cursor"], "2");
    assert_eq!(
        p1["items"][0],
        json!({"sha": main, "title": "Add the widget catalogue"})
    );
    assert_eq!(p1["items"].as_array().map(Vec::len), Some(2));
    assert!(t.ends_with("(more: pass next_cursor)"), "{t}");
    let (p2, _) = ok(
        &alice,
        &env,
        "github_list_commits",
        with(json!({"limit": 2, "fields": ["title"], "cursor": "2"})),
    )?;
    assert_eq!(p2, json!({"items": [{"title": "Initial commit"}]}));

    // Branches from a branch, the default branch and a commit.
    let (made, t) = ok(
        &alice,
        &env,
        "github_create_branch",
        with(json!({"branch": "docs/tour", "from": "feature/fast-render"})),
    )?;
    assert_eq!(made, json!({"branch": "docs/tour", "sha": fast}));
    assert_eq!(
        t,
        format!(
            "created branch docs/tour at {} (from feature/fast-render) in acme/widgets",
            &fast[..7]
        )
    );
    let (made, _) = ok(
        &alice,
        &env,
        "github_create_branch",
        with(json!({"branch": "hotfix"})),
    )?;
    assert_eq!(made["sha"], main.as_str());
    // `c` is the February range: the catalogue commit, then the README one.
    let readme_commit = c["items"][1]["sha"].as_str().unwrap_or_default().to_owned();
    let (made, _) = ok(
        &alice,
        &env,
        "github_create_branch",
        with(json!({"branch": "old", "from": readme_commit})),
    )?;
    assert_eq!(made["sha"], readme_commit.as_str());
    let (b, _) = ok(
        &alice,
        &env,
        "github_list_branches",
        with(json!({"limit": 100})),
    )?;
    assert_eq!(sha_of(&b, "docs/tour").as_deref(), Some(fast.as_str()));
    assert_eq!(sha_of(&b, "hotfix").as_deref(), Some(main.as_str()));
    let e = fails(
        &alice,
        "github_create_branch",
        with(json!({"branch": "docs/tour"})),
    )?;
    assert!(
        e.contains("rejected") && e.contains("Reference already exists"),
        "{e}"
    );
    let e = fails(
        &alice,
        "github_create_branch",
        with(json!({"branch": "x", "from": "no-such-branch"})),
    )?;
    assert!(e.contains("not found"), "{e}");

    // Deleting is destructive: the runtime asks the user first (stateless revision: an
    // input-required result, answered by calling again with the answer and the state).
    let args = with(json!({"branch": "docs/tour"}));
    let asked = alice.call("github_delete_branch", args.clone())?;
    assert_eq!(asked["resultType"], "input_required", "{asked}");
    let question = &asked["inputRequests"]["confirm"];
    assert_eq!(question["method"], "elicitation/create", "{asked}");
    assert!(
        question["params"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("github_delete_branch on acme/widgets")),
        "{asked}"
    );
    let state = asked["requestState"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        env.journal("DELETE", "/git/refs/heads/docs/tour")?
            .is_empty()
    );
    let declined = answer(&alice, "github_delete_branch", &args, &state, false)?;
    assert_eq!(declined["isError"], true, "{declined}");
    assert!(text(&declined).contains("did not confirm"), "{declined}");
    let (b, _) = ok(
        &alice,
        &env,
        "github_list_branches",
        with(json!({"limit": 100})),
    )?;
    assert!(sha_of(&b, "docs/tour").is_some());
    let done = answer(&alice, "github_delete_branch", &args, &state, true)?;
    assert!(done["isError"] != true, "{done}\n{}", env.connector.log());
    assert_eq!(
        done["structuredContent"],
        json!({"branch": "docs/tour", "sha": fast})
    );
    assert!(
        text(&done).starts_with("deleted branch docs/tour of acme/widgets"),
        "{done}"
    );
    let (b, _) = ok(
        &alice,
        &env,
        "github_list_branches",
        with(json!({"limit": 100})),
    )?;
    assert!(sha_of(&b, "docs/tour").is_none(), "{b}");
    // The same confirmation replayed does not run the call again.
    let replayed = answer(&alice, "github_delete_branch", &args, &state, true)?;
    assert_eq!(replayed["isError"], true, "{replayed}");
    assert!(text(&replayed).contains("already used"), "{replayed}");
    let deletes = env.journal("DELETE", "/git/refs/heads/docs/tour")?;
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0]["status"], 204);
    assert_eq!(deletes[0]["user"], "alice");

    // A branch that is not there is not found, before the user is asked anything (the
    // preview reads it), and nothing is deleted.
    let gone = with(json!({"branch": "docs/tour"}));
    let again = alice.call("github_delete_branch", gone.clone())?;
    assert_eq!(again["isError"], true, "{again}");
    assert!(again.get("inputRequests").is_none(), "{again}");
    assert!(text(&again).contains("not found"), "{again}");
    assert_eq!(env.journal("DELETE", "/git/refs/heads/docs/tour")?.len(), 1);
    Ok(())
}

#[test]
fn issues_are_listed_searched_read_opened_changed_and_commented() -> Result<()> {
    let env = Env::start(true)?;
    let alice = env.user("alice")?;
    let bob = env.user("bob")?;
    let with = |extra: Value| {
        let mut args = json!({"owner": "acme", "repo": "widgets"});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        args
    };

    // Open issues only: the pull requests (5-7) GitHub lists among them are left out.
    let (open, t) = ok(&alice, &env, "github_list_issues", with(json!({})))?;
    assert_eq!(numbers(&open, "number"), BTreeSet::from([1, 2, 4]));
    assert!(
        t.contains("acme/widgets#1 [open] Widget::initial panics on empty text (bug) @alice"),
        "{t}"
    );
    let (mine, _) = ok(
        &alice,
        &env,
        "github_list_issues",
        with(json!({"assignee": "me"})),
    )?;
    assert_eq!(numbers(&mine, "number"), BTreeSet::from([1, 4]));
    let (bugs, _) = ok(
        &alice,
        &env,
        "github_list_issues",
        with(json!({"labels": ["bug"]})),
    )?;
    assert_eq!(numbers(&bugs, "number"), BTreeSet::from([1]));
    let (closed, _) = ok(
        &alice,
        &env,
        "github_list_issues",
        with(json!({"state": "closed"})),
    )?;
    assert_eq!(numbers(&closed, "number"), BTreeSet::from([3]));
    assert_eq!(
        closed["items"][0]["labels"],
        json!(["documentation", "good first issue"])
    );

    let (found, t) = ok(
        &alice,
        &env,
        "github_search_issues",
        json!({"involvement": "assigned_to_me"}),
    )?;
    let repos: BTreeSet<String> = found["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| format!("{}#{}", i["repo"].as_str().unwrap_or_default(), i["number"]))
        .collect();
    assert_eq!(
        repos,
        BTreeSet::from([
            "acme/widgets#1".into(),
            "acme/widgets#4".into(),
            "acme/infra#1".into()
        ])
    );
    assert!(
        t.contains("acme/infra#1 [open] Rotate the status page TLS certificate"),
        "{t}"
    );
    let (prs, _) = ok(
        &bob,
        &env,
        "github_search_issues",
        json!({"involvement": "created_by_me", "pull_requests": true}),
    )?;
    assert_eq!(numbers(&prs, "number"), BTreeSet::from([6]));
    let e = fails(&alice, "github_search_issues", json!({}))?;
    assert!(e.contains("say what to look for"), "{e}");

    let (issue, t) = ok(&alice, &env, "github_get_issue", with(json!({"number": 1})))?;
    assert_eq!(issue["title"], "Widget::initial panics on empty text");
    assert_eq!(issue["author"], "bob");
    assert_eq!(issue["comments"], 2);
    assert!(
        issue["body"]
            .as_str()
            .is_some_and(|b| b.contains("called `Option::unwrap()` on a `None` value"))
    );
    assert_eq!(
        issue["comment_items"].as_array().map(|c| c
            .iter()
            .map(|x| x["author"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()),
        Some(vec!["alice", "bob"])
    );
    assert!(
        t.contains("--- alice at 2024-02-21T10:02:00Z:\nConfirmed."),
        "{t}"
    );
    let (paged, _) = ok(
        &alice,
        &env,
        "github_get_issue",
        with(json!({"number": 1, "limit": 1})),
    )?;
    assert_eq!(paged["comment_items"].as_array().map(Vec::len), Some(1));
    assert_eq!(paged["next_cursor"], "2");
    let e = fails(&alice, "github_get_issue", with(json!({"number": 999})))?;
    assert!(e.contains("not found"), "{e}");

    // Open, change and comment; each read back.
    let (made, t) = ok(
        &alice,
        &env,
        "github_create_issue",
        with(
            json!({"title": "Render benchmarks", "body": "Measure render_into.", "labels": ["enhancement"], "assignees": ["bob"]}),
        ),
    )?;
    assert_eq!(made["number"], 8);
    assert_eq!(made["state"], "open");
    assert_eq!(
        t,
        "opened acme/widgets#8 [open] Render benchmarks (enhancement) @bob"
    );
    let (read, _) = ok(&bob, &env, "github_get_issue", with(json!({"number": 8})))?;
    assert_eq!(read["author"], "alice");
    assert_eq!(read["body"], "Measure render_into.");
    assert_eq!(read["assignees"], json!(["bob"]));

    let (changed, t) = ok(
        &bob,
        &env,
        "github_update_issue",
        with(
            json!({"number": 8, "state": "closed", "close_reason": "completed", "labels": ["enhancement", "ci"]}),
        ),
    )?;
    assert_eq!(changed["state"], "closed");
    assert_eq!(changed["labels"], json!(["enhancement", "ci"]));
    assert!(t.starts_with("updated acme/widgets#8 [closed]"), "{t}");
    let (closed, _) = ok(
        &alice,
        &env,
        "github_list_issues",
        with(json!({"state": "closed"})),
    )?;
    assert_eq!(numbers(&closed, "number"), BTreeSet::from([3, 8]));
    let e = fails(&alice, "github_update_issue", with(json!({"number": 8})))?;
    assert!(e.contains("nothing to change"), "{e}");

    let (posted, t) = ok(
        &alice,
        &env,
        "github_comment_on_issue",
        with(json!({"number": 8, "body": "Done in #5."})),
    )?;
    assert!(
        posted["url"]
            .as_str()
            .is_some_and(|u| u.contains("/acme/widgets/issues/8#issuecomment-")),
        "{posted}"
    );
    assert!(t.starts_with("commented on acme/widgets#8: "), "{t}");
    let (read, _) = ok(&alice, &env, "github_get_issue", with(json!({"number": 8})))?;
    assert_eq!(read["comments"], 1);
    assert_eq!(read["comment_items"][0]["author"], "alice");
    assert_eq!(read["comment_items"][0]["body"], "Done in #5.");
    Ok(())
}

#[test]
fn pull_requests_are_summarised_and_diffed_compactly() -> Result<()> {
    let env = Env::start(true)?;
    let alice = env.user("alice")?;
    let with = |extra: Value| {
        let mut args = json!({"owner": "acme", "repo": "widgets"});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        args
    };

    let (open, t) = ok(&alice, &env, "github_list_pull_requests", with(json!({})))?;
    assert_eq!(numbers(&open, "number"), BTreeSet::from([5, 6, 7]));
    let draft = open["items"]
        .as_array()
        .and_then(|i| i.iter().find(|p| p["number"] == 7))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (draft["draft"].clone(), draft["author"].clone()),
        (json!(true), json!("carol"))
    );
    assert!(
        t.contains("#5 [open] Fast rendering and no panic on empty text (feature/fast-render → main) by alice (enhancement) review requested: @bob"),
        "{t}"
    );
    let (one, _) = ok(
        &alice,
        &env,
        "github_list_pull_requests",
        with(json!({"head": "feature/fast-render"})),
    )?;
    assert_eq!(numbers(&one, "number"), BTreeSet::from([5]));
    let (none, t) = ok(
        &alice,
        &env,
        "github_list_pull_requests",
        with(json!({"state": "closed"})),
    )?;
    assert_eq!(none["items"], json!([]));
    assert_eq!(t, "no matching pull requests");

    let (pr, t) = ok(
        &alice,
        &env,
        "github_get_pull_request",
        with(json!({"number": 5})),
    )?;
    assert_eq!(pr["title"], "Fast rendering and no panic on empty text");
    assert_eq!(pr["state"], "open");
    assert_eq!(pr["author"], "alice");
    assert_eq!(
        (pr["head"].clone(), pr["base"].clone()),
        (json!("feature/fast-render"), json!("main"))
    );
    assert_eq!(pr["mergeable"], true);
    assert_eq!(pr["mergeable_state"], "unstable");
    assert_eq!(pr["requested_reviewers"], json!(["bob"]));
    assert_eq!(
        pr["review"],
        json!({"decision": "review_required", "reviews": []})
    );
    assert_eq!(pr["comments"], 1);
    let changes = &pr["changes"];
    assert_eq!(
        (changes["commits"].clone(), changes["files"].clone()),
        (json!(2), json!(3))
    );
    let top: Vec<&Value> = changes["top_files"]
        .as_array()
        .map(|f| f.iter().collect())
        .unwrap_or_default();
    assert_eq!(
        top.iter()
            .map(|f| f["path"].as_str().unwrap_or_default())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["src/lib.rs", "src/render.rs", "src/widget.rs"])
    );
    assert_eq!(
        top.iter()
            .map(|f| f["additions"].as_u64().unwrap_or(0))
            .sum::<u64>(),
        changes["additions"].as_u64().unwrap_or(u64::MAX)
    );
    let sizes: Vec<u64> = top
        .iter()
        .map(|f| f["additions"].as_u64().unwrap_or(0) + f["deletions"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        sizes.windows(2).all(|w| w[0] >= w[1]),
        "most changed first: {sizes:?}"
    );
    let render = top
        .iter()
        .find(|f| f["path"] == "src/render.rs")
        .cloned()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (render["status"].clone(), render["deletions"].clone()),
        (json!("added"), json!(0))
    );
    let checks = &pr["checks"];
    assert_eq!(checks["state"], "failure");
    for (name, state) in [
        ("build", "success"),
        ("test", "failure"),
        ("lint", "success"),
        ("security/scan", "success"),
        ("license/check", "pending"),
    ] {
        assert!(
            checks["items"]
                .as_array()
                .is_some_and(|i| i.contains(&json!({"name": name, "state": state}))),
            "{name} {state}: {checks}"
        );
    }
    let head_sha = pr["head_sha"].as_str().unwrap_or_default().to_owned();
    assert!(t.contains("mergeable: true (unstable)"), "{t}");
    assert!(
        t.contains("checks: failure, build success, test failure"),
        "{t}"
    );
    assert!(t.contains("2 commits, 3 files, +"), "{t}");
    let (limited, t) = ok(
        &alice,
        &env,
        "github_get_pull_request",
        with(json!({"number": 5, "max_files": 1})),
    )?;
    assert_eq!(
        limited["changes"]["top_files"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(limited["changes"]["other_files"], 2);
    assert!(t.contains("… and 2 more files"), "{t}");

    // The summary against the raw responses a passthrough would return for the same
    // question: the five GitHub payloads the tool reads.
    let http = reqwest::blocking::Client::new();
    let base = format!("{}/repos/acme/widgets", env.ghes.api_url());
    let mut raw_bytes = 0;
    for path in [
        "/pulls/5".to_owned(),
        "/pulls/5/files".into(),
        "/pulls/5/reviews".into(),
        format!("/commits/{head_sha}/check-runs"),
        format!("/commits/{head_sha}/status"),
    ] {
        let body = http
            .get(format!("{base}{path}"))
            .bearer_auth(USERS[0].1)
            .header("accept", "application/vnd.github+json")
            .send()?
            .text()?;
        raw_bytes += body.len();
    }
    let ours = serde_json::to_string(&pr)?.len();
    println!(
        "pull request summary: {ours} bytes structured, {} bytes text; raw {raw_bytes} bytes ({:.0}x)",
        t.len(),
        raw_bytes as f64 / ours as f64
    );
    assert!(raw_bytes >= 20 * ours, "{raw_bytes} raw vs {ours}");

    let (pr7, _) = ok(
        &alice,
        &env,
        "github_get_pull_request",
        with(json!({"number": 7})),
    )?;
    assert_eq!(pr7["draft"], true);
    assert_eq!(pr7["mergeable"], false);
    assert_eq!(pr7["mergeable_state"], "dirty");
    assert_eq!(pr7["checks"], json!({"state": "none", "items": []}));
    let e = fails(
        &alice,
        "github_get_pull_request",
        with(json!({"number": 999})),
    )?;
    assert!(e.contains("not found"), "{e}");

    // The diff, per file, bounded.
    let (diff, t) = ok(
        &alice,
        &env,
        "github_get_pull_request_diff",
        with(json!({"number": 5})),
    )?;
    assert_eq!(diff["truncated"], false);
    let files = diff["files"].as_array().cloned().unwrap_or_default();
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
    let (only, t) = ok(
        &alice,
        &env,
        "github_get_pull_request_diff",
        with(json!({"number": 5, "paths": ["src/ren*.rs"]})),
    )?;
    assert_eq!(only["files"].as_array().map(Vec::len), Some(1));
    assert_eq!(only["files"][0]["path"], "src/render.rs");
    assert!(!t.contains("src/widget.rs"), "{t}");
    let (cut, t) = ok(
        &alice,
        &env,
        "github_get_pull_request_diff",
        with(json!({"number": 5, "max_file_chars": 80})),
    )?;
    assert_eq!(cut["truncated"], true);
    for f in cut["files"].as_array().into_iter().flatten() {
        assert_eq!(f["truncated"], true, "{f}");
        assert!(
            f["patch"]
                .as_str()
                .is_some_and(|p| p.contains("…[truncated: ") && p.ends_with(" more lines]")),
            "{f}"
        );
    }
    assert!(t.contains("more lines]"), "{t}");
    let (tight, t) = ok(
        &alice,
        &env,
        "github_get_pull_request_diff",
        with(json!({"number": 5, "max_chars": 300})),
    )?;
    assert_eq!(tight["truncated"], true);
    let shown = tight["files"].as_array().map(Vec::len).unwrap_or(0);
    let omitted = tight["omitted"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(shown + omitted, 3, "{tight}");
    assert!(omitted >= 1, "{tight}");
    assert!(
        t.contains("…[left out for room: ") && t.contains("ask for them with paths]"),
        "{t}"
    );
    let (nothing, t) = ok(
        &alice,
        &env,
        "github_get_pull_request_diff",
        with(json!({"number": 5, "paths": ["docs/"]})),
    )?;
    assert_eq!(nothing["files"], json!([]));
    assert_eq!(t, "no changed file matches paths");
    Ok(())
}

#[test]
fn pull_requests_are_opened_reviewed_and_merged() -> Result<()> {
    let env = Env::start(false)?;
    let alice = env.user("alice")?;
    let bob = env.user("bob")?;
    let with = |extra: Value| {
        let mut args = json!({"owner": "acme", "repo": "widgets"});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        args
    };

    let (made, t) = ok(
        &alice,
        &env,
        "github_create_pull_request",
        with(
            json!({"title": "Stack fast rendering on the typo fix", "head": "feature/fast-render", "base": "fix/readme-typo", "body": "Stacked.", "draft": true}),
        ),
    )?;
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
    let (read, _) = ok(
        &bob,
        &env,
        "github_get_pull_request",
        with(json!({"number": 8})),
    )?;
    assert_eq!(read["body"], "Stacked.");
    assert_eq!(read["author"], "alice");
    assert_eq!(read["changes"]["commits"], 2);
    let e = fails(
        &alice,
        "github_create_pull_request",
        with(json!({"title": "Nothing", "head": "stale"})),
    )?;
    assert!(
        e.contains("rejected") && e.contains("No commits between main and stale"),
        "{e}"
    );
    assert_eq!(env.journal("POST", "/repos/acme/widgets/pulls")?.len(), 2);

    // Reviews: an approval, a comment with a line comment, a change request.
    let (approved, t) = ok(
        &alice,
        &env,
        "github_review_pull_request",
        with(json!({"number": 6, "event": "APPROVE"})),
    )?;
    assert_eq!(approved["state"], "APPROVED");
    assert!(t.starts_with("reviewed acme/widgets#6: approved; "), "{t}");
    let (pr6, _) = ok(
        &bob,
        &env,
        "github_get_pull_request",
        with(json!({"number": 6})),
    )?;
    assert_eq!(
        pr6["review"],
        json!({"decision": "approved", "reviews": [{"author": "alice", "state": "APPROVED"}]})
    );
    let (commented, t) = ok(
        &bob,
        &env,
        "github_review_pull_request",
        with(
            json!({"number": 5, "event": "COMMENT", "body": "One nit.", "comments": [{"path": "src/render.rs", "line": 3, "body": "Say why it reuses the buffer."}]}),
        ),
    )?;
    assert_eq!(
        (commented["state"].clone(), commented["comments"].clone()),
        (json!("COMMENTED"), json!(1))
    );
    assert!(t.contains("commented with 1 line comment(s)"), "{t}");
    let (pr5, _) = ok(
        &alice,
        &env,
        "github_get_pull_request",
        with(json!({"number": 5})),
    )?;
    assert_eq!(
        pr5["review"]["reviews"],
        json!([{"author": "bob", "state": "COMMENTED"}])
    );
    assert_eq!(pr5["review"]["decision"], "review_required");
    assert_eq!(commented["commit_sha"], pr5["head_sha"]);
    let (_, _) = ok(
        &alice,
        &env,
        "github_review_pull_request",
        with(json!({"number": 7, "event": "REQUEST_CHANGES", "body": "Please rebase on main."})),
    )?;
    let (pr7, _) = ok(
        &alice,
        &env,
        "github_get_pull_request",
        with(json!({"number": 7})),
    )?;
    assert_eq!(pr7["review"]["decision"], "changes_requested");
    let e = fails(
        &alice,
        "github_review_pull_request",
        with(json!({"number": 5, "event": "APPROVE"})),
    )?;
    assert!(e.contains("Can not approve your own pull request"), "{e}");
    let e = fails(
        &alice,
        "github_review_pull_request",
        with(json!({"number": 6, "event": "COMMENT"})),
    )?;
    assert!(e.contains("needs a body or line comments"), "{e}");
    let e = fails(
        &alice,
        "github_review_pull_request",
        with(json!({"number": 6, "event": "LGTM"})),
    )?;
    assert!(e.contains("invalid arguments"), "{e}");

    // Merges: the expected head guards against unseen pushes; then a squash.
    let head = pr6["head_sha"].as_str().unwrap_or_default().to_owned();
    let e = fails(
        &alice,
        "github_merge_pull_request",
        with(json!({"number": 6, "expected_head_sha": "0000000000000000000000000000000000000000"})),
    )?;
    assert!(e.contains("Head branch was modified"), "{e}");
    let (merged, t) = ok(
        &alice,
        &env,
        "github_merge_pull_request",
        with(json!({"number": 6, "method": "squash", "expected_head_sha": head})),
    )?;
    assert_eq!(merged["merged"], true);
    let sha = merged["sha"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        t,
        format!("merged acme/widgets#6 (squash) as {}", &sha[..7])
    );
    let (pr6, _) = ok(
        &alice,
        &env,
        "github_get_pull_request",
        with(json!({"number": 6})),
    )?;
    assert_eq!(pr6["state"], "merged");
    let (readme, _) = ok(
        &alice,
        &env,
        "github_get_file",
        with(json!({"path": "README.md"})),
    )?;
    assert!(
        readme["content"]
            .as_str()
            .is_some_and(|c| c.contains("one space on either side")),
        "{readme}"
    );
    let (log, _) = ok(
        &alice,
        &env,
        "github_list_commits",
        with(json!({"limit": 1})),
    )?;
    assert_eq!(log["items"][0]["sha"], sha.as_str());
    assert_eq!(log["items"][0]["title"], "Fix a typo in the README (#6)");
    let e = fails(
        &alice,
        "github_merge_pull_request",
        with(json!({"number": 7})),
    )?;
    assert!(e.contains("Pull Request is not mergeable"), "{e}");
    let merges: Vec<u64> = env
        .journal("PUT", "/pulls/6/merge")?
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(
        merges,
        [409, 200],
        "each merge was sent once, never repeated"
    );
    Ok(())
}

/// The decision records of `tool` in the runtime's audit log.
fn decisions(env: &Env, tool: &str) -> Vec<Value> {
    run_ok(env.rt.cli().args(["audit", "tail", "--json", "-n", "200"]))
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "decision" && r["tool"] == tool)
        .collect()
}

/// The question of an input-required result, and its state.
fn question(asked: &Value) -> (String, String) {
    assert_eq!(asked["resultType"], "input_required", "{asked}");
    let q = &asked["inputRequests"]["confirm"];
    assert_eq!(q["method"], "elicitation/create", "{asked}");
    (
        q["params"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        asked["requestState"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn a_merge_confirmation_shows_the_exact_merge_and_a_push_after_it_refuses_the_merge() -> Result<()>
{
    let env = Env::start(true)?;
    let alice = env.user("alice")?;
    let with = |extra: Value| {
        let mut args = json!({"owner": "acme", "repo": "widgets"});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        args
    };
    let (pr6, _) = ok(
        &alice,
        &env,
        "github_get_pull_request",
        with(json!({"number": 6})),
    )?;
    let head = pr6["head_sha"].as_str().unwrap_or_default().to_owned();
    assert_eq!(head.len(), 40, "{pr6}");

    // The question names the pull request, its title, both branches, the head commit and
    // the merge method: what will happen, not just which tool.
    let args = with(json!({"number": 6, "method": "squash"}));
    let (shown, state) = question(&alice.call("github_merge_pull_request", args.clone())?);
    for part in [
        "github_merge_pull_request on acme/widgets",
        "pull request acme/widgets#6",
        "\u{201c}Fix a typo in the README\u{201d}",
        "from branch \u{201c}fix/readme-typo\u{201d} into \u{201c}main\u{201d}",
        &format!("head commit {head}"),
        "merge method squash",
        "cannot be undone",
    ] {
        assert!(shown.contains(part), "{part:?} missing from {shown:?}");
    }

    // Someone pushes to the pull request's branch after the user approved the merge.
    let pushed = env.ghes.control(
        "push",
        &json!({"repo": "acme/widgets", "branch": "fix/readme-typo", "author": "bob", "message": "Sneak in a change"}),
    )?;
    let new_head = pushed["sha"].as_str().unwrap_or_default().to_owned();
    assert_ne!(new_head, head);
    let refused = answer(&alice, "github_merge_pull_request", &args, &state, true)?;
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(
        text(&refused).contains("changed after the user approved it"),
        "{refused}"
    );
    // Nothing merged: GitHub was asked to merge the approved head only, and refused.
    let merges = env.journal("PUT", "/pulls/6/merge")?;
    assert_eq!(merges.len(), 1, "{merges:?}");
    assert_eq!(merges[0]["status"], 409, "{merges:?}");
    let (pr6, _) = ok(
        &alice,
        &env,
        "github_get_pull_request",
        with(json!({"number": 6})),
    )?;
    assert_eq!(pr6["state"], "open");

    // The audit trail records what the user was shown and the head it was bound to.
    let records = decisions(&env, "github_merge_pull_request");
    let confirmed = records
        .iter()
        .find(|r| r["decision"] == "allow")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        confirmed["confirmation"]["shown"],
        shown.as_str(),
        "{records:?}"
    );
    assert_eq!(confirmed["confirmation"]["answer"], "confirmed");
    assert_eq!(
        confirmed["confirmation"]["binding"],
        json!({"head_sha": head, "merge_method": "squash"})
    );

    // Asked again, the user sees the new head; confirmed, the merge goes through.
    let (shown, state) = question(&alice.call("github_merge_pull_request", args.clone())?);
    assert!(
        shown.contains(&format!("head commit {new_head}")),
        "{shown}"
    );
    let done = answer(&alice, "github_merge_pull_request", &args, &state, true)?;
    assert!(done["isError"] != true, "{done}\n{}", env.connector.log());
    assert_eq!(done["structuredContent"]["merged"], true);
    let statuses: Vec<u64> = env
        .journal("PUT", "/pulls/6/merge")?
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(statuses, [409, 200]);
    Ok(())
}

#[test]
fn an_approving_review_needs_confirmation_and_is_bound_to_the_head_shown() -> Result<()> {
    let env = Env::start(true)?;
    let alice = env.user("alice")?;
    let bob = env.user("bob")?;
    let with = |extra: Value| {
        let mut args = json!({"owner": "acme", "repo": "widgets"});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        args
    };
    // A comment needs no confirmation.
    let (commented, _) = ok(
        &bob,
        &env,
        "github_review_pull_request",
        with(json!({"number": 5, "event": "COMMENT", "body": "One nit."})),
    )?;
    assert_eq!(commented["state"], "COMMENTED");

    // An approval does, naming what is approved.
    let (pr6, _) = ok(
        &alice,
        &env,
        "github_get_pull_request",
        with(json!({"number": 6})),
    )?;
    let head = pr6["head_sha"].as_str().unwrap_or_default().to_owned();
    let args = with(json!({"number": 6, "event": "APPROVE"}));
    let (shown, state) = question(&alice.call("github_review_pull_request", args.clone())?);
    for part in [
        "approve pull request acme/widgets#6",
        "\u{201c}Fix a typo in the README\u{201d}",
        "\u{201c}fix/readme-typo\u{201d} into \u{201c}main\u{201d}",
        &format!("head commit {head}"),
    ] {
        assert!(shown.contains(part), "{part:?} missing from {shown:?}");
    }
    assert!(!shown.contains("cannot be undone"), "{shown}");
    assert!(env.journal("POST", "/pulls/6/reviews")?.is_empty());

    // A push between the answer and the call: no review is posted.
    env.ghes.control(
        "push",
        &json!({"repo": "acme/widgets", "branch": "fix/readme-typo", "author": "bob", "message": "More"}),
    )?;
    let refused = answer(&alice, "github_review_pull_request", &args, &state, true)?;
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(
        text(&refused).contains("changed after the user approved it"),
        "{refused}"
    );
    assert!(env.journal("POST", "/pulls/6/reviews")?.is_empty());

    // Asked anew and confirmed: the approval is of exactly the head shown.
    let (shown, state) = question(&alice.call("github_review_pull_request", args.clone())?);
    let (pr6, _) = ok(
        &alice,
        &env,
        "github_get_pull_request",
        with(json!({"number": 6})),
    )?;
    let new_head = pr6["head_sha"].as_str().unwrap_or_default().to_owned();
    assert!(shown.contains(&new_head), "{shown}");
    let done = answer(&alice, "github_review_pull_request", &args, &state, true)?;
    assert!(done["isError"] != true, "{done}\n{}", env.connector.log());
    assert_eq!(done["structuredContent"]["state"], "APPROVED");
    assert_eq!(done["structuredContent"]["commit_sha"], new_head.as_str());
    assert_eq!(env.journal("POST", "/pulls/6/reviews")?.len(), 1);
    Ok(())
}

#[test]
fn the_upstream_refuses_what_the_policy_allowed() -> Result<()> {
    // The tenant policy lets every user call every tool; bob is only triage upstream.
    let env = Env::start(false)?;
    let alice = env.user("alice")?;
    let bob = env.user("bob")?;
    let with = |extra: Value| {
        let mut args = json!({"owner": "acme", "repo": "widgets"});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        args
    };
    assert!(
        bob.tool_names()?
            .iter()
            .any(|n| n == "github_merge_pull_request")
    );

    let e = fails(
        &bob,
        "github_merge_pull_request",
        with(json!({"number": 6})),
    )?;
    assert!(
        e.contains("ghes refused this user") && e.contains("Must have push access"),
        "{e}"
    );
    let merges = env.journal("PUT", "/pulls/6/merge")?;
    assert_eq!(merges.len(), 1, "{merges:?}");
    assert_eq!(
        (merges[0]["user"].clone(), merges[0]["status"].clone()),
        (json!("bob"), json!(403))
    );
    let (pr6, _) = ok(
        &alice,
        &env,
        "github_get_pull_request",
        with(json!({"number": 6})),
    )?;
    assert_eq!(pr6["state"], "open");

    let e = fails(
        &bob,
        "github_create_branch",
        with(json!({"branch": "bob/x"})),
    )?;
    assert!(e.contains("refused") && e.contains("push access"), "{e}");
    let e = fails(
        &bob,
        "github_delete_branch",
        with(json!({"branch": "stale"})),
    )?;
    assert!(e.contains("refused") && e.contains("push access"), "{e}");
    let (b, _) = ok(&alice, &env, "github_list_branches", with(json!({})))?;
    assert!(strings(&b, "name").iter().any(|n| n == "stale"));
    assert!(!strings(&b, "name").iter().any(|n| n == "bob/x"));
    // What bob may do upstream still works for him.
    let (me, _) = ok(&bob, &env, "github_whoami", json!({}))?;
    assert_eq!(me["login"], "bob");
    let (posted, _) = ok(
        &bob,
        &env,
        "github_comment_on_issue",
        with(json!({"number": 6, "body": "Thanks!"})),
    )?;
    assert!(posted["url"].is_string());
    Ok(())
}

#[test]
fn ci_runs_are_listed_and_a_failed_job_log_is_tailed() -> Result<()> {
    let env = Env::start(true)?;
    let alice = env.user("alice")?;
    let with = |extra: Value| {
        let mut args = json!({"owner": "acme", "repo": "widgets"});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        args
    };

    let (runs, t) = ok(&alice, &env, "github_list_workflow_runs", with(json!({})))?;
    assert_eq!(
        strings(&runs, "branch"),
        ["fix/readme-typo", "feature/fast-render", "main"]
    );
    assert_eq!(
        strings(&runs, "status"),
        ["in_progress", "completed", "completed"]
    );
    assert_eq!(
        each(&runs, "conclusion")
            .into_iter()
            .cloned()
            .collect::<Vec<_>>(),
        [Value::Null, json!("failure"), json!("success")]
    );
    assert_eq!(strings(&runs, "workflow"), ["CI", "CI", "CI"]);
    let failed = runs["items"][1].clone();
    let run_id = failed["id"].as_u64().unwrap_or_default();
    assert_eq!(failed["event"], "pull_request");
    assert_eq!(failed["actor"], "alice");
    assert_eq!(
        failed["title"],
        "Widget::initial no longer panics on empty text"
    );
    assert!(t.contains(&format!("run {run_id} CI [failure] Widget::initial no longer panics on empty text on feature/fast-render (pull_request, ")), "{t}");
    let (f, _) = ok(
        &alice,
        &env,
        "github_list_workflow_runs",
        with(json!({"status": "failure"})),
    )?;
    assert_eq!(numbers(&f, "id"), BTreeSet::from([run_id]));
    let (b, _) = ok(
        &alice,
        &env,
        "github_list_workflow_runs",
        with(json!({"branch": "main"})),
    )?;
    assert_eq!(strings(&b, "conclusion"), ["success"]);
    let main_run = b["items"][0]["id"].as_u64().unwrap_or_default();

    env.ghes.clear_requests()?;
    let (logs, t) = ok(
        &alice,
        &env,
        "github_get_failed_job_log",
        with(json!({"run_id": run_id})),
    )?;
    assert_eq!(logs["run_id"], run_id);
    let jobs = logs["jobs"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 1, "{logs}");
    let job = &jobs[0];
    assert_eq!(job["name"], "test");
    assert_eq!(job["conclusion"], "failure");
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
    assert!(
        t.starts_with(&format!(
            "job test ({}) failure at step \"Run test\": last 50 of ",
            job["id"]
        )),
        "{t}"
    );
    // The log came through the redirect, and the log storage never saw a token.
    let journal = env.ghes.requests()?;
    let api_log = journal
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/logs")))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (api_log["status"].clone(), api_log["user"].clone()),
        (json!(302), json!("alice"))
    );
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

    let (short, _) = ok(
        &alice,
        &env,
        "github_get_failed_job_log",
        with(json!({"run_id": run_id, "lines": 2})),
    )?;
    assert_eq!(
        short["jobs"][0]["tail"],
        "error: test failed, to rerun pass `--lib`\n##[error]Process completed with exit code 101."
    );
    let (fine, t) = ok(
        &alice,
        &env,
        "github_get_failed_job_log",
        with(json!({"run_id": main_run})),
    )?;
    assert_eq!(fine["jobs"], json!([]));
    assert_eq!(
        t,
        format!("run {main_run} has no failed job (build success, test success, lint success)")
    );
    // One job asked for by id, failed or not.
    let jobs: Value = reqwest::blocking::Client::new()
        .get(format!(
            "{}/repos/acme/widgets/actions/runs/{run_id}/jobs",
            env.ghes.api_url()
        ))
        .bearer_auth(USERS[0].1)
        .send()?
        .json()?;
    let build_id = jobs["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["name"] == "build"))
        .and_then(|j| j["id"].as_u64())
        .unwrap_or_default();
    let (build, _) = ok(
        &alice,
        &env,
        "github_get_failed_job_log",
        with(json!({"run_id": run_id, "job_id": build_id})),
    )?;
    assert_eq!(build["jobs"][0]["name"], "build");
    assert_eq!(build["jobs"][0]["conclusion"], "success");
    assert!(build["jobs"][0].get("failed_step").is_none(), "{build}");
    assert!(
        build["jobs"][0]["tail"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{build}"
    );
    let e = fails(
        &alice,
        "github_get_failed_job_log",
        with(json!({"run_id": run_id, "job_id": 999_999_999u64})),
    )?;
    assert!(
        e.contains(&format!("run {run_id} has no job 999999999")),
        "{e}"
    );
    let e = fails(
        &alice,
        "github_get_failed_job_log",
        with(json!({"run_id": 999_999})),
    )?;
    assert!(e.contains("not found"), "{e}");
    Ok(())
}

#[test]
fn binary_files_are_reported_not_dumped() -> Result<()> {
    // A seed of its own: the built-in one has text files only.
    let seed = json!({
        "users": [{"login": "alice"}],
        "tokens": [{"token": USERS[0].1, "user": "alice", "scopes": ["repo"]}],
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
    let env = Env::start_with(true, Some(&seed))?;
    let alice = env.user("alice")?;
    let (f, t) = ok(
        &alice,
        &env,
        "github_get_file",
        json!({"owner": "acme", "repo": "assets", "path": "logo.png"}),
    )?;
    assert_eq!(f["binary"], true, "{f}");
    assert_eq!(f["type"], "file");
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
    let (readme, _) = ok(
        &alice,
        &env,
        "github_get_file",
        json!({"owner": "acme", "repo": "assets", "path": "README.md"}),
    )?;
    assert_eq!(readme["content"], "Brand assets.\n");
    assert!(readme.get("binary").is_none(), "{readme}");
    Ok(())
}

/// A seed of one repository, `acme/shapes`, that alice administers: a commit by her on
/// `main`, and on `topic` one by an author with no account on the server.
fn shapes_seed() -> Value {
    json!({
        "users": [{"login": "alice", "name": "Alice Admin", "email": "alice@acme.test"}],
        "tokens": [{"token": USERS[0].1, "user": "alice", "scopes": ["repo"]}],
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
    let env = Env::start_with(true, Some(&shapes_seed()))?;
    let alice = env.user("alice")?;
    let (page, t) = ok(
        &alice,
        &env,
        "github_list_commits",
        json!({"owner": "acme", "repo": "shapes", "ref": "topic"}),
    )?;
    assert_eq!(strings(&page, "author"), ["Dana Doe", "alice"], "{page}");
    assert_eq!(page["items"][0]["author_email"], "dana@example.com");
    assert!(page["items"][1].get("author_email").is_none(), "{page}");
    assert!(
        t.contains(" 2024-01-02 Dana Doe <dana@example.com> Add a circle"),
        "{t}"
    );
    assert!(t.contains(" 2024-01-01 alice Add shapes"), "{t}");
    Ok(())
}

#[test]
fn writes_leave_out_the_fields_the_caller_did_not_give() -> Result<()> {
    // GitHub refuses `null` for the fields its schema declares plain strings (`body`).
    let env = Env::start_with(false, Some(&shapes_seed()))?;
    let alice = env.user("alice")?;
    let cases = [
        (
            "github_create_pull_request",
            json!({"owner": "acme", "repo": "shapes", "title": "Circle", "head": "topic"}),
        ),
        (
            "github_create_issue",
            json!({"owner": "acme", "repo": "shapes", "title": "Squares too"}),
        ),
    ];
    for (tool, args) in cases {
        let (v, _) = ok(&alice, &env, tool, args)?;
        assert!(v["number"].as_u64().is_some(), "{tool}: {v}");
    }
    Ok(())
}

#[test]
fn a_pull_request_summary_shows_what_the_app_may_not_read() -> Result<()> {
    // A GitHub App without the Checks or Commit statuses read permission gets 403
    // "Resource not accessible by integration" for those parts of a pull request it can read.
    let env = Env::start(false)?;
    let alice = env.user("alice")?;
    let runs = "/commits/[^/]+/check-runs$";
    let status = "/commits/[^/]+/status$";
    let cases: [(&[&str], &[&str]); 3] = [
        (&[runs], &["check runs"]),
        (&[status], &["commit statuses"]),
        (&[runs, status], &["check runs", "commit statuses"]),
    ];
    for (refused, parts) in cases {
        for path in refused {
            env.ghes.control(
                "faults",
                &json!({"method": "GET", "path_regex": path, "action": "status", "status": 403}),
            )?;
        }
        let (pr, t) = ok(
            &alice,
            &env,
            "github_get_pull_request",
            json!({"owner": "acme", "repo": "widgets", "number": 5}),
        )?;
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
        assert!(
            pr["changes"]["top_files"]
                .as_array()
                .is_some_and(|f| !f.is_empty()),
            "{pr}"
        );
        assert_eq!(pr["checks"].is_null(), parts.len() == 2, "{pr}");
        env.ghes.control_delete("faults")?;
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
    let env = Env::start_with(true, Some(&seed))?;
    let alice = env.user("alice")?;
    let (runs, _) = ok(
        &alice,
        &env,
        "github_list_workflow_runs",
        json!({"owner": "acme", "repo": "shapes"}),
    )?;
    let run_id = runs["items"][0]["id"].clone();
    let (failed, _) = ok(
        &alice,
        &env,
        "github_get_failed_job_log",
        json!({"owner": "acme", "repo": "shapes", "run_id": run_id}),
    )?;
    let job_id = failed["jobs"][0]["id"].clone();
    assert_eq!(failed["jobs"][0]["name"], "shard 102", "{failed}");
    // The same job asked for by id, found on the second page.
    let (by_id, t) = ok(
        &alice,
        &env,
        "github_get_failed_job_log",
        json!({"owner": "acme", "repo": "shapes", "run_id": run_id, "job_id": job_id, "lines": 3}),
    )?;
    for found in [&failed, &by_id] {
        let job = &found["jobs"][0];
        assert!(
            job["tail"]
                .as_str()
                .is_some_and(|l| l.ends_with("error: the real cause is at the end")),
            "{}",
            job["tail"].as_str().unwrap_or_default().len()
        );
        assert!(
            job["partial"]
                .as_str()
                .is_some_and(|p| p.contains("only its last 16777216 were read")),
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
[hooks]
confirm_destructive = false
"#;

/// The runtime's audit records (the last 50).
fn audit_tail(env: &Env) -> Vec<Value> {
    run_ok(env.rt.cli().args(["audit", "tail", "--json", "-n", "50"]))
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A role limited to one instance allows a call there, and denies the same owner/repo on
/// the connector's other instance of the same kind; tools/list shows which instances each
/// tool can act on; the audit records name the instance.
#[test]
fn an_instance_scoped_role_allows_its_instance_and_denies_the_same_repo_on_another() -> Result<()> {
    let env = Env::start_two_instances(SANDBOX_ONLY_POLICY)?;
    let alice = env.user("alice")?;

    let tools = alice.tools()?;
    let get_issue = tools
        .iter()
        .find(|t| t["name"] == "github_get_issue")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        get_issue["_meta"]["mcp-edge/instances"],
        json!(["ghes-prod", "ghes-sandbox"]),
        "{get_issue}"
    );
    let choices = get_issue["inputSchema"]["properties"]["instance"]["enum"].clone();
    assert!(
        choices
            .as_array()
            .is_some_and(|c| c.contains(&json!("ghes-prod")) && c.contains(&json!("ghes-sandbox"))),
        "{get_issue}"
    );

    let issue = |instance: Option<&str>| {
        let mut a = json!({"owner": "acme", "repo": "widgets", "number": 1});
        if let (Some(i), Some(o)) = (instance, a.as_object_mut()) {
            o.insert("instance".into(), json!(i));
        }
        a
    };
    let (sandbox, _) = ok(
        &alice,
        &env,
        "github_get_issue",
        issue(Some("ghes-sandbox")),
    )?;
    assert_eq!(sandbox["number"], 1);
    let prod = alice.call("github_get_issue", issue(Some("ghes-prod")))?;
    assert_eq!(prod["isError"], true, "{prod}");
    let why = text(&prod);
    assert!(
        why.contains("role triage") && why.contains("ghes-prod:acme/widgets"),
        "{why}"
    );
    // With two instances a call that names none has no instance: the scoped rule does not
    // match it (and the connector would ask which one).
    let unnamed = alice.call("github_get_issue", issue(None))?;
    assert_eq!(unnamed["isError"], true, "{unnamed}");
    // Only the sandbox call reached the upstream.
    assert_eq!(env.journal("GET", "/repos/acme/widgets/issues/1")?.len(), 1);

    let records = audit_tail(&env);
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
    let env = Env::start_two_instances(&format!(
        "{OPEN_POLICY}\n[hooks]\nconfirm_destructive = false\n"
    ))?;
    let alice = env.user("alice")?;
    let port = env
        .ghes
        .base
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    // The same fake under another name: another origin, as a separate blob store would be.
    env.ghes
        .set_log_storage(Some(&format!("http://localhost:{port}")))?;
    let on = |instance: &str, extra: Value| {
        let mut args = json!({"instance": instance, "owner": "acme", "repo": "widgets"});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        args
    };
    let (runs, _) = ok(
        &alice,
        &env,
        "github_list_workflow_runs",
        on("ghes-prod", json!({"status": "failure"})),
    )?;
    let run_id = runs["items"][0]["id"].as_u64().unwrap_or_default();

    env.ghes.clear_requests()?;
    let refused = alice.call(
        "github_get_failed_job_log",
        on("ghes-prod", json!({"run_id": run_id})),
    )?;
    assert_eq!(refused["isError"], true, "{refused}");
    let why = text(&refused);
    assert!(
        why.contains("localhost")
            && why.contains("not its own origin nor in log_storage_hosts of provider ghes-prod"),
        "{why}"
    );
    assert!(env.journal("GET", "")?.iter().all(|r| {
        !r["path"]
            .as_str()
            .unwrap_or_default()
            .starts_with("/_services/")
    }));

    let (logs, _) = ok(
        &alice,
        &env,
        "github_get_failed_job_log",
        on("ghes-sandbox", json!({"run_id": run_id})),
    )?;
    assert!(
        logs["jobs"].as_array().is_some_and(|j| !j.is_empty()),
        "{logs}"
    );
    assert!(
        env.journal("GET", "")?.iter().any(|r| r["path"]
            .as_str()
            .unwrap_or_default()
            .starts_with("/_services/actions/logs/")),
        "the listed log storage was fetched"
    );
    Ok(())
}
