//! Real networks built from Linux network namespaces: the connector runs in a namespace of
//! its own (`edge-XXXXXX`), joined to the root namespace by a veth pair on a random /30 of
//! 10.0.0.0/8; the runtime, the fake GitHub Enterprise Server and tinyproxy listen on the
//! root side's address. nftables inside the connector's namespace plays the corporate
//! firewall (UDP dropped, no inbound, only the proxy allowed) and `tc netem` the bad link
//! (where the kernel has no netem: nftables loss and a delaying relay, see [`DelayRelay`]).
//! Nothing leaves this machine.
//!
//! Needs root (CI runs as root) and `ip`, `tc`, `nft` and `tinyproxy` (`scripts/test`
//! installs them); otherwise every test says "skipped: needs root" and passes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::hash::BuildHasher;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::mcp_client::McpClient;
use e2e::tool_suite::GITHUB_TOKENS;
use e2e::{Connector, FakeUpstream, Process, Runtime, bin, free_port, run, run_ok, wait_for};
use serde_json::{Value, json};

const PROXY_USER: &str = "svc-edge";
const PROXY_PASSWORD: &str = "Ns-pr0xy-pa55word-91c4";

/// A random number, different per call and per process.
fn random() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::hash::RandomState::new().hash_one((nanos, std::process::id()))
}

/// Whether this test can build namespaces; says why not when it cannot.
fn can_run() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root (network namespaces, nftables and tc)");
        return false;
    }
    for tool in ["ip", "tc", "nft", "tinyproxy"] {
        let found = run(Command::new("sh").args(["-c", &format!("command -v {tool}")]));
        assert!(
            found.status.success(),
            "{tool} is not installed: run ./scripts/test, which installs it"
        );
    }
    true
}

/// Runs `program args...`, which must succeed.
fn sh(program: &str, args: &[&str]) {
    run_ok(Command::new(program).args(args));
}

/// The connector's network namespace and its veth pair; deleted on drop (also on panic),
/// which takes the namespace's nftables tables and qdiscs with it.
struct Netns {
    name: String,
    host_if: String,
    ns_if: String,
    /// The root side's address: where the runtime, fake and proxies listen.
    host_ip: Ipv4Addr,
    /// The connector's address.
    ns_ip: Ipv4Addr,
}

impl Netns {
    /// A namespace `edge-XXXXXX` joined to the root namespace by a veth pair on a random
    /// /30 in 10.100.0.0-10.249.255.255 (parallel tests pick different ones).
    fn new() -> Self {
        let r = random();
        let tag = format!("{:06x}", r & 0xff_ffff);
        let b = 100 + ((r >> 24) % 150) as u8;
        let c = (r >> 32) as u8;
        let d = ((r >> 40) % 64) as u8 * 4;
        let net = Self {
            name: format!("edge-{tag}"),
            host_if: format!("vh-{tag}"),
            ns_if: format!("vn-{tag}"),
            host_ip: Ipv4Addr::new(10, b, c, d + 1),
            ns_ip: Ipv4Addr::new(10, b, c, d + 2),
        };
        // From here on, drop cleans up whatever part was made.
        sh("ip", &["netns", "add", &net.name]);
        sh(
            "ip",
            &[
                "link",
                "add",
                &net.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &net.ns_if,
                "netns",
                &net.name,
            ],
        );
        sh(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", net.host_ip),
                "dev",
                &net.host_if,
            ],
        );
        sh("ip", &["link", "set", &net.host_if, "up"]);
        net.ns_ok("ip", &["link", "set", "lo", "up"]);
        net.ns_ok(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", net.ns_ip),
                "dev",
                &net.ns_if,
            ],
        );
        net.ns_ok("ip", &["link", "set", &net.ns_if, "up"]);
        println!(
            "namespace {}: connector {} <-> runtime side {} ({} / {})",
            net.name, net.ns_ip, net.host_ip, net.ns_if, net.host_if
        );
        net
    }

    /// The /30 the pair is on.
    fn cidr(&self) -> String {
        let [a, b, c, d] = self.host_ip.octets();
        format!("{a}.{b}.{c}.{}/30", d - 1)
    }

    /// `program` run inside the namespace.
    fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    fn ns_ok(&self, program: &str, args: &[&str]) {
        run_ok(self.exec(program).args(args));
    }

    /// Loads an nftables script (table `inet e2e`) inside the namespace.
    fn nft(&self, script: &str) {
        let mut child = self
            .exec("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("nft: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).expect("writing to nft");
        }
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft -f failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Deletes the firewall table.
    fn nft_clear(&self) {
        self.ns_ok("nft", &["delete", "table", "inet", "e2e"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for args in [
            vec![
                "netns", "exec", &self.name, "nft", "delete", "table", "inet", "e2e",
            ],
            vec!["netns", "del", &self.name],
            vec!["link", "del", &self.host_if],
        ] {
            let _ = Command::new("ip")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A runtime on the root side of `net` with the SSH tunnel beside QUIC; returns it and
/// the SSH port.
fn runtime(net: &Netns) -> Result<(Runtime, u16)> {
    let mut rt = Runtime::init_with_hostname(&net.host_ip.to_string())?;
    let ssh = free_port();
    rt.serve_args = vec!["--ssh-listen".into(), format!("{}:{ssh}", net.host_ip)];
    rt.start()?;
    Ok((rt, ssh))
}

/// A connector of `acme` not yet enrolled: where its state will be.
fn connector(rt: &Runtime, name: &str) -> Connector {
    Connector {
        state_dir: rt.dir.path().join(name),
        id: String::new(),
        process: None,
        env: Vec::new(),
    }
}

/// Creates `c`'s state directory (mode 0700), which a configuration names before enrollment.
fn make_state_dir(c: &Connector) -> Result<()> {
    std::fs::create_dir_all(&c.state_dir)?;
    std::fs::set_permissions(
        &c.state_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    Ok(())
}

/// Enrolls `c` from inside the namespace: into its state directory, or as `config` says.
fn enroll(net: &Netns, rt: &Runtime, c: &mut Connector, config: Option<&Path>) {
    let tok = rt.token("acme", "15m");
    let mut cmd = net.exec(bin("edge-connector"));
    cmd.args([
        "enroll",
        "--runtime",
        &rt.https_endpoint(),
        "--token",
        &tok.token,
        "--ca-fingerprint",
        &tok.ca_fingerprint,
    ]);
    match config {
        Some(file) => cmd.arg("--config").arg(file),
        None => cmd.arg("--state-dir").arg(&c.state_dir),
    };
    run_ok(&mut cmd);
    c.id = tok.connector_id;
}

/// Starts `edge-connector run ARGS` inside the namespace (replacing a running one).
fn spawn(net: &Netns, c: &mut Connector, args: &[OsString]) -> Result<()> {
    if let Some(mut p) = c.process.take() {
        p.kill();
    }
    let mut cmd = net.exec(bin("edge-connector"));
    cmd.arg("run").args(args);
    c.process = Some(Process::spawn(cmd, c.state_dir.with_extension("log"))?);
    Ok(())
}

/// `--state-dir DIR` of `c`, as `spawn` arguments, with `extra` after.
fn state_args(c: &Connector, extra: &[&str]) -> Vec<OsString> {
    let mut args = vec!["--state-dir".into(), c.state_dir.clone().into_os_string()];
    args.extend(extra.iter().map(OsString::from));
    args
}

/// `--config FILE`, as `spawn` arguments.
fn config_args(config: &Path) -> Vec<OsString> {
    vec!["--config".into(), config.to_path_buf().into_os_string()]
}

/// Waits until the runtime lists `c` online over `transport`; returns how long it took.
fn wait_transport(
    rt: &Runtime,
    c: &Connector,
    transport: &str,
    limit: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    wait_for(limit, &format!("connector online over {transport}"), || {
        rt.connector(&c.id)
            .filter(|r| r["status"] == "online" && r["transport"] == transport)
    })
    .with_context(|| c.log())?;
    Ok(start.elapsed())
}

/// `n` echo calls one after the other; each must succeed. Returns their latencies.
fn timed_echoes(rt: &Runtime, c: &Connector, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let start = Instant::now();
            let out = rt.echo(&format!("call {i}"), 0);
            let took = start.elapsed();
            assert!(
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).contains(&format!("call {i}")),
                "call {i} failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                c.log()
            );
            took
        })
        .collect()
}

/// p50 and max of `latencies`.
fn p50_max(latencies: &mut [Duration]) -> (Duration, Duration) {
    latencies.sort();
    let p50 = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();
    let max = latencies.last().copied().unwrap_or_default();
    (p50, max)
}

/// Echo calls in a loop on a thread of their own, counting successes and failures.
struct CallLoop {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl CallLoop {
    fn start(rt: &Runtime) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let data_dir = rt.data_dir();
        let thread = {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let out = run(Command::new(bin("cloud-runtime"))
                        .env("CLOUD_RUNTIME_DATA_DIR", &data_dir)
                        .args([
                            "connector",
                            "call",
                            "--tenant",
                            "acme",
                            "--tool",
                            "diag.echo",
                        ])
                        .args(["--args", r#"{"message":"x","delay_ms":200}"#]));
                    if out.status.success() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        eprintln!("call failed: {}", String::from_utf8_lossy(&out.stderr));
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        Self {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits for `n` more successful calls.
    fn wait_more(&self, n: usize, what: &str) -> Result<()> {
        let target = self.ok() + n;
        wait_for(Duration::from_secs(30), what, || {
            (self.ok() >= target).then_some(())
        })
    }

    /// Stops the loop; returns (succeeded, failed).
    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("caller thread");
        }
        (self.ok(), self.failed.load(Ordering::Relaxed))
    }
}

impl Drop for CallLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A tinyproxy in the foreground on the root side of `net`, killed on drop.
struct TinyProxy {
    addr: SocketAddr,
    process: Process,
    _dir: tempfile::TempDir,
}

impl TinyProxy {
    /// Starts one on `net`'s root-side address, open to the namespace's /30; with
    /// `PROXY_USER`/`PROXY_PASSWORD` Basic auth if `auth`; CONNECT only to `connect_ports`
    /// (any, if empty).
    fn start(net: &Netns, auth: bool, connect_ports: &[u16]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let addr = SocketAddr::new(IpAddr::V4(net.host_ip), free_port());
        let mut conf = format!(
            "Port {}\nListen {}\nTimeout 30\nMaxClients 50\nLogLevel Connect\n\
             Allow {}\nDisableViaHeader Yes\n",
            addr.port(),
            net.host_ip,
            net.cidr()
        );
        if auth {
            conf.push_str(&format!("BasicAuth {PROXY_USER} {PROXY_PASSWORD}\n"));
        }
        for p in connect_ports {
            conf.push_str(&format!("ConnectPort {p}\n"));
        }
        // As root tinyproxy drops privileges (it needs none of our files: it logs to ours).
        conf.push_str("User nobody\nGroup nogroup\n");
        let file = dir.path().join("tinyproxy.conf");
        std::fs::write(&file, conf)?;
        let mut cmd = Command::new("tinyproxy");
        cmd.arg("-d").arg("-c").arg(&file);
        let process = Process::spawn(cmd, dir.path().join("tinyproxy.log"))?;
        wait_for(Duration::from_secs(20), "tinyproxy to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .with_context(|| process.log_text())?;
        Ok(Self {
            addr,
            process,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// alice of the fake's seed signed in to gateway `eng` of `acme`, her GitHub token stored
/// in the vault of the connector configured by `config` for instance `ghes`.
fn alice(rt: &Runtime, config: &Path) -> Result<McpClient> {
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let client = McpClient::new_user(rt, "acme", "eng", "alice", "eng", "agent-alice", "triage")?;
    let token = GITHUB_TOKENS
        .iter()
        .find(|(u, _)| *u == "alice")
        .map(|(_, t)| *t)
        .context("alice's token")?;
    Connector::vault_set(config, &format!("user/ghes/{}", client.user_id), token)?;
    Ok(client)
}

/// A GitHub provider `ghes` on `fake`, with `more` TOML lines.
fn ghes_provider(fake: &FakeUpstream, more: &str) -> String {
    format!(
        "[[provider]]\nname = \"ghes\"\nkind = \"github\"\napi_url = \"{}\"\n{more}",
        fake.api_url()
    )
}

const LOCAL_POLICY: &str = "version = 1\n[[allow]]\ntools = [\"github_*\", \"diag.*\"]\n";

/// Whether a `tools/call` answer is a success.
fn succeeded(r: &Value) -> bool {
    r.get("error").is_none() && r["isError"] != true
}

#[test]
fn udp_blocked_tunnel_comes_up_over_tcp_and_returns_to_quic() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    let net = Netns::new();
    let (rt, _ssh) = runtime(&net)?;
    let mut c = connector(&rt, "c1");
    enroll(&net, &rt, &mut c, None);
    // The firewall drops QUIC: every UDP datagram to the runtime's tunnel port.
    net.nft(&format!(
        "table inet e2e {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n  \
         ip daddr {} udp dport {} drop\n }}\n}}\n",
        net.host_ip, rt.quic_port
    ));

    let args = state_args(&c, &[]);
    spawn(&net, &mut c, &args)?;
    let to_tcp = wait_transport(&rt, &c, "tcp", Duration::from_secs(20))?;
    println!(
        "UDP dropped: online over tcp {:.1} s after start (the issue asks within 10 s)",
        to_tcp.as_secs_f64()
    );
    assert!(rt.ping(&c.id).is_ok(), "{}", c.log());
    assert!(c.log().contains("seems blocked"), "{}", c.log());

    let calls = CallLoop::start(&rt);
    calls.wait_more(2, "calls over tcp")?;
    net.nft_clear();
    let to_quic = wait_transport(&rt, &c, "quic", Duration::from_secs(40))?;
    println!(
        "UDP allowed again: back on quic {:.1} s later",
        to_quic.as_secs_f64()
    );
    calls.wait_more(2, "calls over quic")?;
    let (ok, failed) = calls.finish();
    println!("calls while moving tcp -> quic: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "{}", c.log());
    Ok(())
}

#[test]
fn no_inbound_packets_still_works() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    let net = Netns::new();
    let (rt, _ssh) = runtime(&net)?;
    let mut c = connector(&rt, "c1");
    enroll(&net, &rt, &mut c, None);
    // Nothing new gets in: only the replies to what the connector opened.
    net.nft(
        "table inet e2e {\n chain in {\n  type filter hook input priority 0; policy drop;\n  \
         iif \"lo\" accept\n  ct state established,related accept\n }\n}\n",
    );
    // The rule is in force: a connection to a closed port times out instead of being
    // refused.
    let probe = TcpStream::connect_timeout(
        &SocketAddr::new(IpAddr::V4(net.ns_ip), 9),
        Duration::from_secs(1),
    );
    let kind = probe.as_ref().err().map(std::io::Error::kind);
    println!("inbound TCP to the connector's namespace: {kind:?}");
    assert!(
        matches!(kind, Some(k) if k != std::io::ErrorKind::ConnectionRefused),
        "inbound packets are not dropped: {probe:?}"
    );

    // QUIC first: the connector killed on QUIC comes back on TCP, whose new tunnel must
    // retire the dead QUIC one at once (it would take calls until found dead otherwise).
    for transport in ["quic", "tcp"] {
        let extra = ["--transport", transport];
        let args = state_args(&c, &extra);
        spawn(&net, &mut c, &args)?;
        let took = wait_transport(&rt, &c, transport, Duration::from_secs(20))?;
        let ping = rt.ping(&c.id);
        assert!(ping.is_ok(), "{ping:?}\n{}", c.log());
        let mut latencies = timed_echoes(&rt, &c, 5);
        let (p50, max) = p50_max(&mut latencies);
        println!(
            "no inbound, --transport {transport}: online in {:.1} s, 5 calls ok (p50 {p50:?}, max {max:?})",
            took.as_secs_f64()
        );
    }
    Ok(())
}

#[test]
fn through_the_proxy_when_direct_tcp_and_udp_are_dropped() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    let net = Netns::new();
    let dir = tempfile::tempdir()?;
    let frames = dir.path().join("frames.bin");
    let ssh_port = free_port();
    let mut rt = Runtime::init_with_hostname(&net.host_ip.to_string())?;
    rt.serve_args = vec![
        "--ssh-listen".into(),
        format!("{}:{ssh_port}", net.host_ip),
        "--debug-frame-log".into(),
        frames.display().to_string(),
    ];
    rt.start()?;
    let fake = FakeUpstream::start(rt.dir.path(), "github", &[])?;
    // The one way out, with Basic auth: CONNECT to enrollment and the SSH tunnel only, and
    // plain HTTP forwarded to the fake upstream on the root namespace's loopback (a
    // provider's http:// api_url must be a loopback address), which `ConnectPort` does not
    // restrict.
    let proxy = TinyProxy::start(&net, true, &[rt.https_port, ssh_port])?;

    let mut c = connector(&rt, "c1");
    make_state_dir(&c)?;
    let config = c.configure(
        &format!(
            "[tunnel]\ntransport = \"tcp\"\nproxy = \"{}\"\nproxy_user = \"{PROXY_USER}\"\n\n{}",
            proxy.url(),
            ghes_provider(
                &fake,
                &format!(
                    "proxy = \"{}\"\nproxy_user = \"{PROXY_USER}\"\n",
                    proxy.url()
                )
            )
        ),
        LOCAL_POLICY,
        &[
            ("proxy/password", PROXY_PASSWORD),
            ("provider/ghes/proxy_password", PROXY_PASSWORD),
        ],
    )?;
    // Out of the namespace: loopback, and TCP to the proxy; nothing else.
    net.nft(&format!(
        "table inet e2e {{\n chain out {{\n  type filter hook output priority 0; policy drop;\n  \
         oif \"lo\" accept\n  ip daddr {} tcp dport {} accept\n }}\n}}\n",
        net.host_ip,
        proxy.addr.port()
    ));

    // The rules are in force: the runtime's HTTPS port is out of reach without the proxy.
    let direct = run(net.exec("timeout").args([
        "2",
        "bash",
        "-c",
        &format!("exec 3<>/dev/tcp/{}/{}", net.host_ip, rt.https_port),
    ]));
    // 124: `timeout` stopped a connect that got no answer.
    assert_eq!(
        direct.status.code(),
        Some(124),
        "a direct connection was not dropped: {}",
        String::from_utf8_lossy(&direct.stderr)
    );

    enroll(&net, &rt, &mut c, Some(&config));
    spawn(&net, &mut c, &config_args(&config))?;
    let took = wait_transport(&rt, &c, "tcp", Duration::from_secs(20))?;
    println!(
        "only the proxy reachable: enrolled, online over tcp in {:.1} s",
        took.as_secs_f64()
    );
    assert!(rt.ping(&c.id).is_ok(), "{}", c.log());
    let proxy_log = proxy.process.log_text();
    assert!(proxy_log.contains(&format!(":{ssh_port}")), "{proxy_log}");
    assert!(c.log().contains("through the egress proxy"), "{}", c.log());

    let client = alice(&rt, &config)?;
    let me = client.call("github_whoami", json!({}))?;
    assert!(succeeded(&me), "{me}\n{}", c.log());
    assert_eq!(me["structuredContent"]["login"], "alice", "{me}");
    let upstream_calls = fake
        .requests()?
        .into_iter()
        .filter(|r| r["user"] == "alice")
        .count();
    println!(
        "github_whoami through {} with Basic auth: {upstream_calls} request(s) as alice at the fake",
        proxy.addr
    );
    assert!(upstream_calls >= 1);
    let proxy_log = proxy.process.log_text();
    assert!(
        proxy_log.contains(&format!("GET {}/user", fake.api_url())),
        "{proxy_log}"
    );

    // The password is in the vault and nowhere else, nor its Basic encoding.
    let audit = rt.audit_text().into_bytes();
    let frame_bytes = std::fs::read(&frames).unwrap_or_default();
    assert!(!frame_bytes.is_empty(), "the frame log is empty");
    let places: Vec<(&str, Vec<u8>)> = vec![
        ("connector log", c.log().into_bytes()),
        (
            "runtime log",
            rt.serve
                .as_ref()
                .map(Process::log_text)
                .unwrap_or_default()
                .into_bytes(),
        ),
        ("proxy log", proxy.process.log_text().into_bytes()),
        ("fake upstream log", fake.process.log_text().into_bytes()),
        ("config", std::fs::read(&config)?),
        (
            "connector.toml",
            std::fs::read(c.state_dir.join("connector.toml"))?,
        ),
        ("audit", audit),
        ("frames", frame_bytes),
    ];
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{PROXY_USER}:{PROXY_PASSWORD}"))
    };
    for (what, bytes) in &places {
        for secret in [PROXY_PASSWORD, encoded.as_str()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the proxy password is in the {what}"
            );
        }
    }
    println!(
        "proxy password found in none of: {}",
        places
            .iter()
            .map(|(w, _)| *w)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Makes the namespace's link lose 5% of its packets each way: `tc netem` (with 100 ms of
/// delay) where the kernel has it, else nftables dropping at random (no delay: nftables
/// cannot hold packets). Returns what it did.
/// A bad link on the connector's side: 5% loss each way and 100 ms added delay. `tc netem`
/// does both where the kernel has it; otherwise nftables drops 5% inside the namespace and
/// a [`DelayRelay`] holds every packet and byte the connector sends for 100 ms. Returns
/// what was set up (kept alive by the caller) and its description.
fn lossy_link(net: &Netns, rt: &Runtime, ssh: u16) -> (Option<DelayRelay>, String) {
    let netem = run(net.exec("tc").args([
        "qdisc", "add", "dev", &net.ns_if, "root", "netem", "loss", "5%", "delay", "100ms",
    ]));
    if netem.status.success() {
        return (None, "netem: 5% loss, 100 ms delay".into());
    }
    println!(
        "tc netem unavailable ({}): 5% loss each way by nftables, 100 ms delay by a relay",
        String::from_utf8_lossy(&netem.stderr).trim()
    );
    net.nft(&format!(
        "table inet e2e {{\n chain out {{\n  type filter hook output priority 0;\n  \
         oif \"{0}\" numgen random mod 100 < 5 drop\n }}\n chain in {{\n  \
         type filter hook input priority 0;\n  iif \"{0}\" numgen random mod 100 < 5 drop\n }}\n}}\n",
        net.ns_if
    ));
    let relay = DelayRelay::start(net, rt.quic_port, ssh, Duration::from_millis(100));
    (
        Some(relay),
        "nftables: 5% loss each way; relay: 100 ms delay from the connector".into(),
    )
}

/// Where `tc netem` is missing, a delaying hop in the root namespace: nftables there sends
/// the connector's packets for the runtime's QUIC and SSH ports to this relay instead (DNAT
/// on the veth), which forwards each UDP datagram, and each chunk of each TCP connection,
/// to the runtime after `delay`; answers come back at once.
struct DelayRelay {
    table: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl DelayRelay {
    fn start(net: &Netns, quic: u16, ssh: u16, delay: Duration) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("relay runtime");
        let host = net.host_ip;
        let (udp_port, tcp_port) = rt.block_on(async {
            let udp = tokio::net::UdpSocket::bind((host, 0))
                .await
                .expect("relay UDP");
            let tcp = tokio::net::TcpListener::bind((host, 0))
                .await
                .expect("relay TCP");
            let ports = (
                udp.local_addr().expect("UDP port").port(),
                tcp.local_addr().expect("TCP port").port(),
            );
            tokio::spawn(relay_udp(udp, SocketAddr::from((host, quic)), delay));
            tokio::spawn(relay_tcp(tcp, SocketAddr::from((host, ssh)), delay));
            ports
        });
        let table = format!("e2e_delay_{}", net.host_if.replace('-', "_"));
        let script = format!(
            "table ip {table} {{\n chain pre {{\n  type nat hook prerouting priority -100;\n  \
             iifname \"{ifname}\" ip daddr {host} udp dport {quic} dnat to {host}:{udp_port}\n  \
             iifname \"{ifname}\" ip daddr {host} tcp dport {ssh} dnat to {host}:{tcp_port}\n }}\n}}\n",
            ifname = net.host_if,
        );
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nft");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).expect("writing to nft");
        }
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft -f failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            table,
            runtime: Some(rt),
        }
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .status();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// UDP: one upstream socket per connector address; datagrams to the runtime wait `delay`.
async fn relay_udp(front: tokio::net::UdpSocket, runtime: SocketAddr, delay: Duration) {
    let front = Arc::new(front);
    let mut peers: BTreeMap<SocketAddr, Arc<tokio::net::UdpSocket>> = BTreeMap::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, from)) = front.recv_from(&mut buf).await {
        let back = match peers.get(&from) {
            Some(s) => s.clone(),
            None => {
                let Ok(s) = tokio::net::UdpSocket::bind((runtime.ip(), 0)).await else {
                    continue;
                };
                if s.connect(runtime).await.is_err() {
                    continue;
                }
                let s = Arc::new(s);
                let (answers, front) = (s.clone(), front.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    while let Ok(n) = answers.recv(&mut buf).await {
                        let _ = front.send_to(buf.get(..n).unwrap_or_default(), from).await;
                    }
                });
                peers.insert(from, s.clone());
                s
            }
        };
        let datagram = buf.get(..n).unwrap_or_default().to_vec();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = back.send(&datagram).await;
        });
    }
}

/// TCP: each connection piped to the runtime, what the connector sends held `delay`.
async fn relay_tcp(front: tokio::net::TcpListener, runtime: SocketAddr, delay: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while let Ok((client, _)) = front.accept().await {
        tokio::spawn(async move {
            let Ok(upstream) = tokio::net::TcpStream::connect(runtime).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut up_rx, mut up_tx) = upstream.into_split();
            let (queue, mut queued) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok(n) = client_rx.read(&mut buf).await {
                    let chunk = buf.get(..n).unwrap_or_default().to_vec();
                    if n == 0
                        || queue
                            .send((tokio::time::Instant::now() + delay, chunk))
                            .is_err()
                    {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some((due, chunk)) = queued.recv().await {
                    tokio::time::sleep_until(due).await;
                    if up_tx.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                let _ = up_tx.shutdown().await;
            });
            let _ = tokio::io::copy(&mut up_rx, &mut client_tx).await;
        });
    }
}

#[test]
fn lossy_link_calls_complete_on_both_transports() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    let net = Netns::new();
    let (rt, ssh) = runtime(&net)?;
    let mut c = connector(&rt, "c1");
    enroll(&net, &rt, &mut c, None);
    let (_relay, link) = lossy_link(&net, &rt, ssh);
    // QUIC first: the connector killed on QUIC comes back on TCP, whose new tunnel must
    // retire the dead QUIC one at once (it would take calls until found dead otherwise).
    for transport in ["quic", "tcp"] {
        let extra = ["--transport", transport];
        let args = state_args(&c, &extra);
        spawn(&net, &mut c, &args)?;
        let took = wait_transport(&rt, &c, transport, Duration::from_secs(30))?;
        let mut latencies = timed_echoes(&rt, &c, 20);
        let (p50, max) = p50_max(&mut latencies);
        assert!(
            p50 >= Duration::from_millis(100),
            "the 100 ms delay is not in the path: p50 {p50:?}"
        );
        println!(
            "{link}, --transport {transport}: online in {:.1} s, 20/20 calls ok, p50 {p50:?}, max {max:?}",
            took.as_secs_f64()
        );
    }
    Ok(())
}

/// What the writer thread saw: each comment body it sent, and whether the call succeeded.
type Outcomes = Vec<(String, bool)>;

/// Every comment body on acme/widgets#1, read from the fake as alice, all pages.
fn comment_bodies(fake: &FakeUpstream) -> Result<Vec<String>> {
    let token = GITHUB_TOKENS
        .iter()
        .find(|(u, _)| *u == "alice")
        .map(|(_, t)| *t)
        .context("alice's token")?;
    let http = reqwest::blocking::Client::new();
    let mut bodies = Vec::new();
    for page in 1.. {
        let list: Vec<Value> = http
            .get(format!(
                "{}/repos/acme/widgets/issues/1/comments?per_page=100&page={page}",
                fake.api_url()
            ))
            .header("authorization", format!("token {token}"))
            .send()?
            .error_for_status()?
            .json()?;
        if list.is_empty() {
            break;
        }
        bodies.extend(
            list.iter()
                .filter_map(|c| c["body"].as_str().map(str::to_owned)),
        );
        if page > 50 {
            bail!("too many pages of comments");
        }
    }
    Ok(bodies)
}

#[test]
fn runtime_killed_under_load_no_call_runs_twice() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    let net = Netns::new();
    let (mut rt, _ssh) = runtime(&net)?;
    let fake = FakeUpstream::start(rt.dir.path(), "github", &[])?;
    // The fake listens on the root namespace's loopback (a provider's http:// api_url must
    // be a loopback address), which the connector reaches through a tinyproxy without auth.
    let upstream_proxy = TinyProxy::start(&net, false, &[])?;
    let mut c = connector(&rt, "c1");
    make_state_dir(&c)?;
    let config = c.configure(
        &ghes_provider(&fake, &format!("proxy = \"{}\"\n", upstream_proxy.url())),
        LOCAL_POLICY,
        &[],
    )?;
    enroll(&net, &rt, &mut c, Some(&config));
    spawn(&net, &mut c, &config_args(&config))?;
    wait_transport(&rt, &c, "quic", Duration::from_secs(20))?;
    let client = alice(&rt, &config)?;
    fake.clear_requests()?;

    // Writes in a loop, each comment with a body of its own.
    let prefix = format!("netns-{:08x}", random() as u32);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, ok, prefix) = (stop.clone(), ok.clone(), prefix.clone());
        std::thread::spawn(move || -> Outcomes {
            let mut outcomes = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = format!("{prefix} call {i}");
                let args = json!({"owner": "acme", "repo": "widgets", "number": 1, "body": body});
                let answer = client.call("github_comment_on_issue", args);
                let done = answer.as_ref().is_ok_and(succeeded);
                if !done && outcomes.iter().filter(|(_, ok)| !ok).count() < 3 {
                    eprintln!("{body} failed: {answer:?}");
                }
                if done {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    std::thread::sleep(Duration::from_millis(100));
                }
                outcomes.push((body, done));
            }
            outcomes
        })
    };
    let oks = || ok.load(Ordering::Relaxed);
    wait_for(Duration::from_secs(30), "writes before the kill", || {
        (oks() >= 5).then_some(())
    })?;

    if let Some(mut serve) = rt.serve.take() {
        serve.kill();
    }
    let killed_at = oks();
    std::thread::sleep(Duration::from_millis(500));
    rt.start()?;
    let restarted = Instant::now();
    // Back when a call goes through the tunnel again (the listing may be stale right
    // after the kill); the connector's backoff is capped at 30 s.
    wait_for(
        Duration::from_secs(40),
        "connector back after the restart",
        || rt.ping(&c.id).ok(),
    )
    .with_context(|| c.log())?;
    let back = restarted.elapsed();
    wait_for(Duration::from_secs(30), "writes after the restart", || {
        (oks() >= killed_at + 5).then_some(())
    })?;
    stop.store(true, Ordering::Relaxed);
    let outcomes = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))?;

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for body in comment_bodies(&fake)?
        .into_iter()
        .filter(|b| b.starts_with(&prefix))
    {
        *seen.entry(body).or_default() += 1;
    }
    let posts = fake
        .requests()?
        .into_iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/issues/1/comments"))
        })
        .count();
    let succeeded_calls: Vec<&String> = outcomes
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(b, _)| b)
        .collect();
    let failed = outcomes.len() - succeeded_calls.len();
    let failed_but_written = outcomes
        .iter()
        .filter(|(b, ok)| !ok && seen.contains_key(b))
        .count();
    println!(
        "runtime killed -9 after {killed_at} writes; connector back {:.1} s after the restart; \
         {} calls: {} ok, {failed} failed during the outage ({failed_but_written} of them written upstream); \
         {} comments, {posts} POSTs at the fake",
        back.as_secs_f64(),
        outcomes.len(),
        succeeded_calls.len(),
        seen.len()
    );
    for body in &succeeded_calls {
        assert_eq!(
            seen.get(*body),
            Some(&1),
            "{body} succeeded but is upstream {:?} times",
            seen.get(*body)
        );
    }
    for (body, n) in &seen {
        assert_eq!(*n, 1, "{body} was written {n} times");
    }
    assert_eq!(
        posts,
        seen.len(),
        "POSTs at the fake that made no comment, or more than one each"
    );
    Ok(())
}
