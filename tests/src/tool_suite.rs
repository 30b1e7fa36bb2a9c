//! One environment and one caller for the tool suites (`github_tools`, `gitlab_tools`):
//! a runtime with gateway `eng` of tenant `acme`, a fake upstream (`tests/fake-upstream`)
//! and a connector serving it, with each seed user's own token in the connector's vault.
//!
//! [`ToolEnv::github`] and [`ToolEnv::gitlab`] give a builder for what the suites vary (the
//! tenant policy, whether destructive calls are confirmed, the fake's seed, the provider
//! instances, the tokens); [`ToolEnv::user`] signs a user in as a [`Caller`] with `ok`,
//! `fails` and `confirm`. [`ToolEnv::table`] runs [`Row`]s in order and names every
//! failing row in one report.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::Result;
use serde_json::{Value, json};

use crate::mcp_client::McpClient;
use crate::{Connector, FakeUpstream, OPEN_POLICY, Runtime, run_ok};

/// The seed users' GitHub personal access tokens.
pub const GITHUB_TOKENS: [(&str, &str); 3] = [
    ("alice", "ghp_aliceFakeToken000000000000000000000"),
    ("bob", "ghp_bobFakeToken00000000000000000000000"),
    ("carol", "ghp_carolFakeToken000000000000000000000"),
];

/// The seed users' GitLab personal access tokens.
pub const GITLAB_TOKENS: [(&str, &str); 2] = [
    ("alice", "glpat-aliceFakeToken0000"),
    ("bob", "glpat-bobFakeToken000000"),
];

/// Which upstream the environment fakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub Enterprise Server.
    Github,
    /// GitLab.
    Gitlab,
}

impl Provider {
    fn kind(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
        }
    }
}

/// What a [`ToolEnv`] is started with.
#[derive(Debug, Clone)]
pub struct ToolEnvBuilder {
    provider: Provider,
    policy: Option<String>,
    confirm_destructive: bool,
    seed: Option<Value>,
    instances: Vec<(String, String)>,
    tokens: Vec<(String, String)>,
    agent_prefix: &'static str,
    agent_role: &'static str,
}

impl ToolEnvBuilder {
    /// The tenant policy (default: [`OPEN_POLICY`]).
    pub fn policy(mut self, text: &str) -> Self {
        self.policy = Some(text.to_owned());
        self
    }

    /// Turns off the runtime's hook that asks the user before destructive tools.
    pub fn without_confirmation(mut self) -> Self {
        self.confirm_destructive = false;
        self
    }

    /// Seeds the fake from `seed` instead of its built-in world.
    pub fn seed(mut self, seed: Value) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The connector's provider instances of this kind, each a name and more TOML lines
    /// for its `[[provider]]` table; every user's token is stored for each.
    pub fn instances(mut self, instances: &[(&str, &str)]) -> Self {
        self.instances = instances
            .iter()
            .map(|(n, extra)| ((*n).to_owned(), (*extra).to_owned()))
            .collect();
        self
    }

    /// The users' tokens (login, token), replacing the provider's seed tokens.
    pub fn tokens(mut self, tokens: &[(&str, &str)]) -> Self {
        self.tokens = tokens
            .iter()
            .map(|(u, t)| ((*u).to_owned(), (*t).to_owned()))
            .collect();
        self
    }

    /// Starts the runtime, the fake upstream and the connector.
    pub fn start(self) -> Result<ToolEnv> {
        let mut rt = Runtime::init()?;
        if self.policy.is_some() || !self.confirm_destructive {
            let mut policy = self
                .policy
                .clone()
                .unwrap_or_else(|| OPEN_POLICY.to_owned());
            if !self.confirm_destructive {
                policy.push_str("\n[hooks]\nconfirm_destructive = false\n");
            }
            rt.apply_policy("acme", &policy);
        }
        rt.start()?;
        run_ok(
            rt.cli()
                .args(["gateway", "create", "--tenant", "acme", "eng"]),
        );
        let mut extra = Vec::new();
        if let Some(seed) = &self.seed {
            let file = rt.dir.path().join("seed.json");
            std::fs::write(&file, seed.to_string())?;
            extra = vec!["--seed".to_owned(), file.display().to_string()];
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let kind = self.provider.kind();
        let upstream = FakeUpstream::start(rt.dir.path(), kind, &extra)?;
        let mut connector = Connector::enroll(&rt, "acme", "c1")?;
        let api = upstream.api_url();
        let providers: Vec<String> = self
            .instances
            .iter()
            .map(|(name, more)| {
                format!("[[provider]]\nname = \"{name}\"\nkind = \"{kind}\"\napi_url = \"{api}\"\n{more}")
            })
            .collect();
        let config = connector.configure(
            &providers.join("\n"),
            &format!("version = 1\n[[allow]]\ntools = [\"{kind}_*\", \"diag.*\"]\n"),
            &[],
        )?;
        connector.start_configured(&rt, &config)?;
        Ok(ToolEnv {
            provider: self.provider,
            upstream,
            connector,
            config,
            instances: self.instances.into_iter().map(|(n, _)| n).collect(),
            tokens: self.tokens,
            agent_prefix: self.agent_prefix,
            agent_role: self.agent_role,
            users: RefCell::default(),
            http: reqwest::blocking::Client::new(),
            rt,
        })
    }
}

/// A running runtime, fake upstream and connector (all stopped on drop).
pub struct ToolEnv {
    provider: Provider,
    /// The fake GitHub or GitLab.
    pub upstream: FakeUpstream,
    /// The connector process.
    pub connector: Connector,
    /// The connector's configuration file.
    pub config: PathBuf,
    instances: Vec<String>,
    tokens: Vec<(String, String)>,
    agent_prefix: &'static str,
    agent_role: &'static str,
    users: RefCell<BTreeMap<String, Rc<McpClient>>>,
    http: reqwest::blocking::Client,
    /// The runtime; last, so that it stops after the connector.
    pub rt: Runtime,
}

impl ToolEnv {
    /// A GitHub environment: instance `ghes`, the seed's GitHub tokens, agents of role
    /// `triage`, destructive calls confirmed.
    pub fn github() -> ToolEnvBuilder {
        ToolEnvBuilder {
            provider: Provider::Github,
            policy: None,
            confirm_destructive: true,
            seed: None,
            instances: vec![("ghes".into(), String::new())],
            tokens: owned(&GITHUB_TOKENS),
            agent_prefix: "agent",
            agent_role: "triage",
        }
    }

    /// A GitLab environment: instance `gitlab`, the seed's GitLab tokens, agents of role
    /// `maintainer`, destructive calls confirmed.
    pub fn gitlab() -> ToolEnvBuilder {
        ToolEnvBuilder {
            provider: Provider::Gitlab,
            policy: None,
            confirm_destructive: true,
            seed: None,
            instances: vec![("gitlab".into(), String::new())],
            tokens: owned(&GITLAB_TOKENS),
            agent_prefix: "claude",
            agent_role: "maintainer",
        }
    }

    /// `login` signed in (group `eng`) through an agent of its own, with its token (if it
    /// has one) stored for every instance; made once, then reused.
    pub fn user(&self, login: &str) -> Caller<'_> {
        let existing = self.users.borrow().get(login).cloned();
        let client = match existing {
            Some(c) => c,
            None => {
                let c = Rc::new(self.sign_in(login).expect("signing in"));
                self.users.borrow_mut().insert(login.to_owned(), c.clone());
                c
            }
        };
        Caller {
            env: self,
            client,
            login: login.to_owned(),
        }
    }

    fn sign_in(&self, login: &str) -> Result<McpClient> {
        let agent = format!("{}-{login}", self.agent_prefix);
        let client = McpClient::new_user(
            &self.rt,
            "acme",
            "eng",
            login,
            "eng",
            &agent,
            self.agent_role,
        )?;
        if let Some((_, token)) = self.tokens.iter().find(|(u, _)| u == login) {
            for instance in &self.instances {
                let entry = format!("user/{instance}/{}", client.user_id);
                Connector::vault_set(&self.config, &entry, token)?;
            }
        }
        Ok(client)
    }

    /// A user's token, as the seed gives it.
    pub fn token(&self, login: &str) -> &str {
        self.tokens
            .iter()
            .find(|(u, _)| u == login)
            .map_or("", |(_, t)| t.as_str())
    }

    /// The fake's journal entries for `method` (any, if empty) and a path ending in
    /// `suffix`.
    pub fn journal(&self, method: &str, suffix: &str) -> Vec<Value> {
        self.upstream
            .requests()
            .expect("the fake's journal")
            .into_iter()
            .filter(|r| method.is_empty() || r["method"] == method)
            .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
            .collect()
    }

    /// The statuses of the journal entries [`ToolEnv::journal`] selects, in order.
    pub fn statuses(&self, method: &str, suffix: &str) -> Vec<u64> {
        self.journal(method, suffix)
            .iter()
            .filter_map(|r| r["status"].as_u64())
            .collect()
    }

    /// `GET {api}/{path}` at the fake as `login`, bypassing the connector: status and body
    /// text (what a passthrough tool would return).
    pub fn upstream_get(&self, login: &str, path: &str) -> (u16, String) {
        let url = format!("{}/{path}", self.upstream.api_url());
        let req = match self.provider {
            Provider::Github => self
                .http
                .get(url)
                .bearer_auth(self.token(login))
                .header("accept", "application/vnd.github+json"),
            Provider::Gitlab => self
                .http
                .get(url)
                .header("PRIVATE-TOKEN", self.token(login)),
        };
        let resp = req.send().expect("the fake upstream");
        let status = resp.status().as_u16();
        (status, resp.text().unwrap_or_default())
    }

    /// Like [`ToolEnv::upstream_get`] as alice, the body parsed (`null` if it is not JSON).
    pub fn upstream_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.upstream_get("alice", path);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// The runtime's last `n` audit records.
    pub fn audit(&self, n: usize) -> Vec<Value> {
        let out = run_ok(
            self.rt
                .cli()
                .args(["audit", "tail", "--json", "-n", &n.to_string()]),
        );
        out.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Runs `rows` in order (later rows may read what earlier ones wrote), each as its
    /// user; a failing row does not stop the others, and the panic names every one.
    pub fn table(&self, rows: Vec<Row<'_>>) {
        let mut failed = Vec::new();
        for row in rows {
            let caller = self.user(row.user);
            let outcome = catch_unwind(AssertUnwindSafe(|| caller.check(&row)));
            if let Err(panic) = outcome {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failed.push(format!("row {:?} ({}): {why}", row.name, row.tool));
            }
        }
        assert!(
            failed.is_empty(),
            "{} row(s) failed:\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The text content of a tool result (its text parts, joined by lines).
pub fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `base`'s fields with `extra`'s added (or replaced).
pub fn with(base: &Value, extra: Value) -> Value {
    let mut args = base.clone();
    if let (Some(a), Value::Object(e)) = (args.as_object_mut(), extra) {
        a.extend(e);
    }
    args
}

/// The values of `key` in each of `v["items"]`, strings as they are and other values as
/// JSON text.
pub fn strings(v: &Value, key: &str) -> Vec<String> {
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| match &i[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The values of `key` in each of `v["items"]`, sorted.
pub fn sorted(v: &Value, key: &str) -> Vec<String> {
    let mut all = strings(v, key);
    all.sort();
    all
}

/// A user signed in to the environment's gateway.
pub struct Caller<'e> {
    env: &'e ToolEnv,
    client: Rc<McpClient>,
    /// The user's login.
    pub login: String,
}

/// The question of an input-required result and the state to answer it with.
#[derive(Debug, Clone)]
pub struct Question {
    /// What the user is shown.
    pub message: String,
    /// The sealed request state.
    pub state: Value,
}

impl Caller<'_> {
    /// The MCP client.
    pub fn client(&self) -> &McpClient {
        &self.client
    }

    /// Every `tools/list` entry, all pages.
    pub fn listed_tools(&self) -> Vec<Value> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
            let page = self
                .client
                .request("tools/list", params)
                .expect("tools/list");
            let result = &page["result"];
            assert!(result.is_object(), "tools/list: {page}");
            tools.extend(result["tools"].as_array().cloned().unwrap_or_default());
            match result["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return tools,
            }
        }
    }

    /// `tools/call`: the result, or `{"error": ...}` for a JSON-RPC error.
    pub fn call(&self, tool: &str, args: Value) -> Value {
        self.client.call(tool, args).expect("tools/call")
    }

    /// Calls `tool`, which must succeed; returns the structured content and the text.
    pub fn ok_text(&self, tool: &str, args: Value) -> (Value, String) {
        let r = self.call(tool, args.clone());
        self.assert_ok(tool, &args, &r);
        (r["structuredContent"].clone(), text(&r))
    }

    /// Calls `tool`, which must succeed; returns the structured content.
    pub fn ok(&self, tool: &str, args: Value) -> Value {
        self.ok_text(tool, args).0
    }

    /// Calls `tool`, which must fail as a tool error whose text contains `part`; returns
    /// the text.
    pub fn fails(&self, tool: &str, args: Value, part: &str) -> String {
        let r = self.call(tool, args.clone());
        assert_failed(tool, &args, &r, &[part]);
        text(&r)
    }

    /// Calls `tool`, which must be refused with a JSON-RPC error whose message contains
    /// `part`; returns the error.
    pub fn refused(&self, tool: &str, args: Value, part: &str) -> Value {
        let r = self.call(tool, args.clone());
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(part)),
            "{tool} {args} should be refused with {part:?}: {r}"
        );
        r["error"].clone()
    }

    /// Calls a tool that needs the user's confirmation: asserts the runtime asked (an
    /// input-required result with an elicitation) and returns the question.
    pub fn ask(&self, tool: &str, args: Value) -> Question {
        let asked = self.call(tool, args);
        assert_eq!(asked["resultType"], "input_required", "{tool}: {asked}");
        let q = &asked["inputRequests"]["confirm"];
        assert_eq!(q["method"], "elicitation/create", "{tool}: {asked}");
        Question {
            message: q["params"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            state: asked["requestState"].clone(),
        }
    }

    /// Calls `tool` again with the user's answer (accept or decline) to `question` and
    /// its state (the stateless round); returns the result.
    pub fn answer(&self, tool: &str, args: &Value, question: &Question, accept: bool) -> Value {
        let response = if accept {
            json!({"action": "accept", "content": {"confirm": true}})
        } else {
            json!({"action": "decline"})
        };
        let v = self
            .client
            .request(
                "tools/call",
                json!({
                    "name": tool,
                    "arguments": args,
                    "inputResponses": {"confirm": response},
                    "requestState": question.state,
                }),
            )
            .expect("tools/call with the answer");
        v.get("result").cloned().unwrap_or(v)
    }

    /// [`Caller::ask`], then [`Caller::answer`]: the result of the confirmed (or declined)
    /// call.
    pub fn confirm(&self, tool: &str, args: Value, accept: bool) -> Value {
        let question = self.ask(tool, args.clone());
        self.answer(tool, &args, &question, accept)
    }

    /// Asserts a result is a success (with the connector's log if not).
    pub fn assert_ok(&self, tool: &str, args: &Value, r: &Value) {
        assert!(
            r.get("error").is_none() && r["isError"] == false,
            "{tool} {args} as {} failed: {r}\nconnector log:\n{}",
            self.login,
            self.env.connector.log()
        );
    }

    fn check(&self, row: &Row<'_>) {
        match &row.expect {
            Expect::Ok(check) => {
                let (v, t) = self.ok_text(row.tool, row.args.clone());
                check(&v, &t);
            }
            Expect::Fails(parts) => {
                let r = self.call(row.tool, row.args.clone());
                assert_failed(row.tool, &row.args, &r, parts);
            }
            Expect::Refused(part) => {
                self.refused(row.tool, row.args.clone(), part);
            }
        }
    }
}

fn assert_failed(tool: &str, args: &Value, r: &Value, parts: &[&str]) {
    assert_eq!(r["isError"], true, "{tool} {args} should fail: {r}");
    let t = text(r);
    for part in parts {
        assert!(
            t.contains(part),
            "{tool} {args}: {part:?} missing from {t:?}"
        );
    }
}

/// A row's check of a success: its structured content and text.
type Check<'a> = Box<dyn Fn(&Value, &str) + 'a>;

/// What a [`Row`] expects.
enum Expect<'a> {
    Ok(Check<'a>),
    Fails(Vec<&'a str>),
    Refused(&'a str),
}

/// One check of a table: a call by a user (alice unless [`Row::by`] says otherwise) and
/// what it must answer.
pub struct Row<'a> {
    name: String,
    user: &'a str,
    tool: &'a str,
    args: Value,
    expect: Expect<'a>,
}

impl<'a> Row<'a> {
    /// The call succeeds; `check` gets its structured content and text.
    pub fn ok(
        name: impl Into<String>,
        tool: &'a str,
        args: Value,
        check: impl Fn(&Value, &str) + 'a,
    ) -> Self {
        Self::new(name, tool, args, Expect::Ok(Box::new(check)))
    }

    /// The call fails as a tool error whose text contains each of `parts` (none: any
    /// tool error).
    pub fn fails(name: impl Into<String>, tool: &'a str, args: Value, parts: &[&'a str]) -> Self {
        Self::new(name, tool, args, Expect::Fails(parts.to_vec()))
    }

    /// The call is refused with a JSON-RPC error whose message contains `part`.
    pub fn refused(name: impl Into<String>, tool: &'a str, args: Value, part: &'a str) -> Self {
        Self::new(name, tool, args, Expect::Refused(part))
    }

    /// Made by `user` instead of alice.
    pub fn by(mut self, user: &'a str) -> Self {
        self.user = user;
        self
    }

    fn new(name: impl Into<String>, tool: &'a str, args: Value, expect: Expect<'a>) -> Self {
        Self {
            name: name.into(),
            user: "alice",
            tool,
            args,
            expect,
        }
    }
}
