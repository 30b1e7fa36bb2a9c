//! The corporate egress proxy, for real: Debian's `tinyproxy` on loopback with Basic
//! authentication and a `ConnectPort` allow-list, and the connector's CONNECT client
//! (`edge_connector::connect_proxy`), enrollment and upstream tool calls going through it.
//!
//! `scripts/test` installs tinyproxy. Without it, the suite runs only as root (which can
//! install it); otherwise it says why it skipped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::mcp_client::McpClient;
use e2e::{Connector, FakeUpstream, Process, Runtime, free_port, run, wait_for};
use edge_connector::config::{Proxy, TunnelConfig};
use edge_connector::connect_proxy::{self as proxy, ProxyError, ProxyRoute};
use edge_connector::egress::ProxyEnv;
use secrecy::SecretString;
use serde_json::{Value, json};

const USER: &str = "svc-edge";
const PASSWORD: &str = "Pr0xy-pa55word-7f3a";
const TIMEOUT: Duration = Duration::from_secs(20);

/// A tinyproxy in the foreground on a loopback port, killed on drop.
struct TinyProxy {
    port: u16,
    process: Process,
    _dir: tempfile::TempDir,
}

impl TinyProxy {
    /// Starts one that wants `USER`/`PASSWORD` and allows CONNECT to `connect_ports` only.
    fn start(connect_ports: &[u16]) -> Option<Self> {
        let bin = tinyproxy()?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nLogLevel Connect\n\
             Allow 127.0.0.1\nDisableViaHeader Yes\nBasicAuth {USER} {PASSWORD}\n"
        );
        for p in connect_ports {
            conf.push_str(&format!("ConnectPort {p}\n"));
        }
        // As root tinyproxy drops privileges; nobody can read nothing of ours, which it
        // does not need (no log or pid file: the log goes to our log file).
        if nix::unistd::Uid::effective().is_root() {
            conf.push_str("User nobody\nGroup nogroup\n");
        }
        let file = dir.path().join("tinyproxy.conf");
        std::fs::write(&file, conf).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-d").arg("-c").arg(&file);
        let process = Process::spawn(cmd, dir.path().join("tinyproxy.log")).unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_for(TIMEOUT, "tinyproxy to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .unwrap_or_else(|e| panic!("{e}: {}", process.log_text()));
        Some(Self {
            port,
            process,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A route to it as `user` with `password` (from the "vault").
    fn route(&self, user: Option<&str>, password: &str, target_port: u16) -> ProxyRoute {
        let tunnel = TunnelConfig {
            proxy: Proxy::Url(self.url().parse().unwrap()),
            proxy_user: user.map(str::to_owned),
            ..TunnelConfig::default()
        };
        let secret = SecretString::from(password.to_owned());
        proxy::route_for(
            &tunnel,
            &ProxyEnv::default(),
            "127.0.0.1",
            target_port,
            || Ok(Some(secret)),
        )
        .unwrap()
        .unwrap()
    }
}

/// tinyproxy's path; `None` (skip, said out loud) when it is missing and we cannot install it.
fn tinyproxy() -> Option<PathBuf> {
    let found = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_some() {
        return found;
    }
    assert!(
        !nix::unistd::Uid::effective().is_root(),
        "tinyproxy is not installed: run ./scripts/test, which installs it (apt-get install tinyproxy)"
    );
    eprintln!(
        "SKIPPED: tinyproxy is not installed and this is not root (./scripts/test installs it)"
    );
    None
}

/// A loopback TCP echo server; returns its port.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn assert_no_password(e: &ProxyError) {
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
}

#[test]
fn bytes_echo_through_tinyproxy_with_the_right_credentials() {
    let echo = echo_server();
    let Some(tp) = TinyProxy::start(&[echo]) else {
        return;
    };
    let route = tp.route(Some(USER), PASSWORD, echo);
    rt().block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = proxy::connect(&route, "127.0.0.1", echo, TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{e}: {}", tp.process.log_text()));
        for msg in [
            &b"SSH-2.0-edge-connector\r\n"[..],
            &[0u8, 255, 13, 10, 7][..],
        ] {
            s.write_all(msg).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg);
        }
    });
}

#[test]
fn missing_or_wrong_credentials_are_auth_required_naming_the_proxy() {
    let echo = echo_server();
    let Some(tp) = TinyProxy::start(&[echo]) else {
        return;
    };
    rt().block_on(async {
        let anonymous = ProxyRoute::new(&tp.url().parse().unwrap(), None, None, "test").unwrap();
        let e = proxy::connect(&anonymous, "127.0.0.1", echo, TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ProxyError::AuthRequired { user: None, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains(&tp.authority()), "{e}");

        let wrong = tp.route(Some(USER), "not-the-password", echo);
        let e = proxy::connect(&wrong, "127.0.0.1", echo, TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProxyError::AuthRequired { user: Some(u), .. } if u == USER),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains(&tp.authority()) && text.contains("proxy/password"),
            "{text}"
        );
        assert!(!text.contains("not-the-password"), "{text}");
        assert_no_password(&e);
    });
}

#[test]
fn a_port_outside_connect_port_is_refused_with_403() {
    let echo = echo_server();
    let other = echo_server();
    let Some(tp) = TinyProxy::start(&[echo]) else {
        return;
    };
    let route = tp.route(Some(USER), PASSWORD, other);
    rt().block_on(async {
        let e = proxy::connect(&route, "127.0.0.1", other, TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ProxyError::Refused { status: 403, .. }),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains(&tp.authority()) && text.contains(&format!("127.0.0.1:{other}")),
            "{text}"
        );
        assert_no_password(&e);
    });
}

/// A configuration for enrolling into `state_dir` through the proxy at `proxy_url`.
fn proxy_config(dir: &Path, state_dir: &Path, proxy_url: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[vault]\nidentity_file = \"vault.key\"\n[tunnel]\nproxy = {proxy_url:?}\nproxy_user = {USER:?}\n",
            state_dir.display().to_string()
        ),
    )
    .unwrap();
    config
}

#[test]
fn enrollment_goes_through_the_proxy_with_the_password_from_the_vault() {
    let mut rt = Runtime::init().unwrap();
    let Some(tp) = TinyProxy::start(&[rt.https_port]) else {
        return;
    };
    rt.start().unwrap();
    let etc = rt.dir.path().join("etc");
    let state_dir = rt.dir.path().join("state");
    let config = proxy_config(&etc, &state_dir, &tp.url());
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::set_permissions(
        &state_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    e2e::run_ok(
        Connector::cli()
            .args(["vault", "init", "--config"])
            .arg(&config),
    );
    let enroll = |tok: &e2e::Token| {
        run(Connector::cli()
            .args([
                "enroll",
                "--runtime",
                &format!("127.0.0.1:{}", rt.https_port),
                "--token",
                &tok.token,
                "--ca-fingerprint",
                &tok.ca_fingerprint,
                "--config",
            ])
            .arg(&config))
    };

    // A wrong password: the proxy says 407 and enrollment names the proxy.
    Connector::vault_set(&config, "proxy/password", "wrong-password").unwrap();
    let out = enroll(&rt.token("acme", "15m"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&tp.authority()) && stderr.contains("proxy/password"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-password"), "{stderr}");

    Connector::vault_set(&config, "proxy/password", PASSWORD).unwrap();
    let tok = rt.token("acme", "15m");
    let out = enroll(&tok);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        tp.process.log_text()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&tok.connector_id), "{stdout}");
    // tinyproxy logged the CONNECT to the runtime: the request did go through it.
    let log = tp.process.log_text();
    assert!(
        log.contains(&format!("CONNECT 127.0.0.1:{}", rt.https_port)),
        "{log}"
    );
    assert!(!stdout.contains(PASSWORD) && !log.contains(PASSWORD));
}

/// `doctor --json`'s check `id` and `egress-report`'s text for `config`.
fn doctor_check_and_report(config: &Path, id: &str) -> (serde_json::Value, String) {
    let out = run(Connector::cli()
        .args(["doctor", "--json", "--config"])
        .arg(config));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let check = json["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id).cloned())
        .unwrap_or_else(|| panic!("no check {id} in {json:#}"));
    let report = e2e::run_ok(
        Connector::cli()
            .args(["egress-report", "--config"])
            .arg(config),
    );
    (check, report)
}

#[test]
fn doctor_tries_the_tunnel_tcp_path_through_the_proxy_and_names_its_answer() {
    let echo = echo_server();
    let mut rt = Runtime::init().unwrap();
    let Some(tp) = TinyProxy::start(&[echo]) else {
        return;
    };
    rt.start().unwrap();
    let connector = Connector::enroll(&rt, "acme", "c1").unwrap();
    // The runtime's SSH endpoint, as enrollment would name it: here the echo server, which
    // the proxy allows.
    let enrollment = connector.state_dir.join("connector.toml");
    let mut text = std::fs::read_to_string(&enrollment).unwrap();
    text.push_str(&format!("tcp_endpoint = \"127.0.0.1:{echo}\"\n"));
    std::fs::write(&enrollment, text).unwrap();
    let config = proxy_config(
        &connector.state_dir.with_extension("etc"),
        &connector.state_dir,
        &tp.url(),
    );
    e2e::run_ok(
        Connector::cli()
            .args(["vault", "init", "--config"])
            .arg(&config),
    );
    let path = format!(
        "tcp 127.0.0.1:{echo} via {} (user {USER}, password in vault)",
        tp.authority()
    );

    Connector::vault_set(&config, "proxy/password", PASSWORD).unwrap();
    let (check, report) = doctor_check_and_report(&config, "runtime-tcp");
    assert_eq!(check["status"], "pass", "{check:#}");
    assert_eq!(
        check["summary"],
        format!("{path}: the proxy opened the tunnel")
    );
    assert!(
        report.contains(&format!(
            "via proxy {} (user {USER}, password in the vault entry proxy/password)",
            tp.authority()
        )),
        "{report}"
    );
    assert!(!report.contains(PASSWORD), "{report}");

    Connector::vault_set(&config, "proxy/password", "wrong-password").unwrap();
    let (check, _) = doctor_check_and_report(&config, "runtime-tcp");
    assert_eq!(check["status"], "fail", "{check:#}");
    let summary = check["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with(&path) && summary.contains("Unauthorized"),
        "{check:#}"
    );
    assert!(!check.to_string().contains("wrong-password"), "{check:#}");
}

#[test]
fn the_ssh_tunnel_runs_through_the_proxy_and_its_password_stays_in_the_vault() {
    let mut rt = Runtime::init().unwrap();
    let ssh_port = free_port();
    let Some(tp) = TinyProxy::start(&[rt.https_port, ssh_port]) else {
        return;
    };
    let frames = rt.dir.path().join("frames.bin");
    rt.serve_args = vec![
        "--ssh-listen".into(),
        format!("127.0.0.1:{ssh_port}"),
        "--debug-frame-log".into(),
        frames.display().to_string(),
    ];
    rt.start().unwrap();
    let etc = rt.dir.path().join("etc");
    let state_dir = rt.dir.path().join("state");
    let config = proxy_config(&etc, &state_dir, &tp.url());
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::set_permissions(
        &state_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    e2e::run_ok(
        Connector::cli()
            .args(["vault", "init", "--config"])
            .arg(&config),
    );
    Connector::vault_set(&config, "proxy/password", PASSWORD).unwrap();
    let tok = rt.token("acme", "15m");
    e2e::run_ok(
        Connector::cli()
            .args([
                "enroll",
                "--runtime",
                &format!("127.0.0.1:{}", rt.https_port),
                "--token",
                &tok.token,
                "--ca-fingerprint",
                &tok.ca_fingerprint,
                "--config",
            ])
            .arg(&config),
    );
    let mut cmd = Connector::cli();
    cmd.args(["run", "--transport", "tcp", "--config"])
        .arg(&config);
    let log = rt.dir.path().join("connector.log");
    let connector = Process::spawn(cmd, log.clone()).unwrap();
    rt.wait_online(&tok.connector_id, TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}: {}", connector.log_text()));
    assert_eq!(rt.connector(&tok.connector_id).unwrap()["transport"], "tcp");
    assert!(
        rt.ping(&tok.connector_id).is_ok(),
        "{}",
        connector.log_text()
    );
    // The tunnel went through the proxy: tinyproxy logged the CONNECT to the SSH port.
    let proxy_log = tp.process.log_text();
    assert!(proxy_log.contains(&format!(":{ssh_port}")), "{proxy_log}");
    assert!(connector.log_text().contains("through the egress proxy"));

    // The password is in the vault and nowhere else: logs, configuration, audit, frames.
    let audit = rt.audit_text().into_bytes();
    let places: Vec<(&str, Vec<u8>)> = vec![
        ("connector log", connector.log_text().into_bytes()),
        (
            "runtime log",
            rt.serve.as_ref().unwrap().log_text().into_bytes(),
        ),
        ("proxy log", proxy_log.into_bytes()),
        ("config", std::fs::read(&config).unwrap()),
        (
            "connector.toml",
            std::fs::read(state_dir.join("connector.toml")).unwrap(),
        ),
        ("audit", audit),
        ("frames", std::fs::read(&frames).unwrap_or_default()),
    ];
    for (what, bytes) in places {
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "the proxy password is in the {what}"
        );
    }
}

const ALICE_PAT: &str = "ghp_aliceFakeToken000000000000000000000";

/// A GitHub provider `name` on `fake` through the proxy at `proxy_url`, with `more` lines.
fn provider_behind(name: &str, fake: &FakeUpstream, proxy_url: &str, more: &str) -> String {
    format!(
        "[[provider]]\nname = \"{name}\"\nkind = \"github\"\napi_url = \"{}\"\nproxy = \"{proxy_url}\"\n{more}\n",
        fake.api_url()
    )
}

/// The text of a `tools/call` result.
fn text_of(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn upstream_calls_go_through_the_providers_proxy_with_the_password_from_the_vault() {
    // Also: a wrong or missing password fails naming the proxy, a corrected one is picked up
    // without a restart, and the password is nowhere but in the vault.
    let mut rt = Runtime::init().unwrap();
    let Some(tp) = TinyProxy::start(&[]) else {
        return;
    };
    rt.start().unwrap();
    e2e::run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let fake = FakeUpstream::start(rt.dir.path(), "github", &[]).unwrap();
    let mut connector = Connector::enroll(&rt, "acme", "c1").unwrap();
    // `ghes` authenticates with the right password, `ghes-wrong` with a wrong one,
    // `ghes-anon` not at all: one fake behind one proxy.
    let providers = [
        provider_behind("ghes", &fake, &tp.url(), &format!("proxy_user = {USER:?}")),
        provider_behind(
            "ghes-wrong",
            &fake,
            &tp.url(),
            &format!("proxy_user = {USER:?}"),
        ),
        provider_behind("ghes-anon", &fake, &tp.url(), ""),
    ]
    .concat();
    let config = connector
        .configure(
            &providers,
            "version = 1\n[[allow]]\ntools = [\"github_*\"]\n",
            &[("provider/ghes/proxy_password", PASSWORD)],
        )
        .unwrap();

    // A proxy user without its password refuses to start, naming the entry to add.
    let mut cmd = Connector::cli();
    cmd.args(["run", "--config"]).arg(&config);
    let mut early = Process::spawn(cmd, rt.dir.path().join("no-password.log")).unwrap();
    let status = early.wait_exit(TIMEOUT).unwrap();
    let said = early.log_text();
    assert!(!status.success(), "{said}");
    assert!(
        said.contains("the vault has no entry provider/ghes-wrong/proxy_password")
            && said.contains("`edge-connector vault set provider/ghes-wrong/proxy_password`"),
        "{said}"
    );

    Connector::vault_set(
        &config,
        "provider/ghes-wrong/proxy_password",
        "not-the-proxy-password",
    )
    .unwrap();
    connector.start_configured(&rt, &config).unwrap();
    let alice = McpClient::new_user(&rt, "acme", "eng", "alice", "eng", "bot", "triage").unwrap();
    for name in ["ghes", "ghes-wrong", "ghes-anon"] {
        Connector::vault_set(
            &config,
            &format!("user/{name}/{}", alice.user_id),
            ALICE_PAT,
        )
        .unwrap();
    }
    fake.clear_requests().unwrap();

    // The right password: the call succeeds, and the proxy carried it.
    let r = alice
        .call("github_whoami", json!({"instance": "ghes"}))
        .unwrap();
    assert_eq!(
        r["structuredContent"]["login"],
        "alice",
        "{r}\n{}",
        connector.log()
    );
    let proxy_log = tp.process.log_text();
    assert!(
        proxy_log.contains(&format!("GET {}/user", fake.api_url())),
        "{proxy_log}"
    );
    assert!(!fake.requests().unwrap().is_empty());

    // A wrong password (tinyproxy answers 401) and none (407): the proxy is named with its
    // answer, and nothing reaches the upstream.
    fake.clear_requests().unwrap();
    for (instance, status, advice) in [
        (
            "ghes-wrong",
            "401 Unauthorized",
            "`edge-connector vault set provider/ghes-wrong/proxy_password`",
        ),
        (
            "ghes-anon",
            "407 Proxy Authentication Required",
            "set proxy_user in the [[provider]] block of ghes-anon",
        ),
    ] {
        let r = alice
            .call("github_whoami", json!({"instance": instance}))
            .unwrap();
        let text = text_of(&r);
        assert_eq!(r["isError"], true, "{r}");
        assert!(
            text.contains(&format!("the proxy {} refused", tp.authority()))
                && text.contains(status)
                && text.contains(advice),
            "{text}"
        );
        assert!(!text.contains("not-the-proxy-password"), "{text}");
        assert!(!text.contains("retryable"), "{text}");
        println!("{instance}: {text}");
    }
    assert_eq!(fake.requests().unwrap(), Vec::<Value>::new());

    // doctor and egress-report show the proxy path, its user and the vault entry.
    let path = format!(
        "via proxy {} (user {USER}, password in the vault entry provider/ghes/proxy_password)",
        tp.authority()
    );
    let (check, report) = doctor_check_and_report(&config, "upstream:ghes");
    assert_eq!(check["status"], "pass", "{check:#}");
    assert!(
        check["summary"]
            .as_str()
            .unwrap_or_default()
            .contains(&path),
        "{check:#}"
    );
    assert!(report.contains(&path), "{report}");
    let (check, _) = doctor_check_and_report(&config, "upstream:ghes-wrong");
    assert_eq!(check["status"], "fail", "{check:#}");
    let summary = check["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains(&format!("the proxy {} refused", tp.authority()))
            && summary.contains("401 Unauthorized"),
        "{check:#}"
    );
    assert!(!check.to_string().contains("not-the-proxy-password"));
    assert!(!report.contains(PASSWORD), "{report}");

    // The right password stored while the connector runs: the proxy's refusal makes it
    // read the vault again, and the call goes through, once.
    Connector::vault_set(&config, "provider/ghes-wrong/proxy_password", PASSWORD).unwrap();
    fake.clear_requests().unwrap();
    let r = alice
        .call("github_whoami", json!({"instance": "ghes-wrong"}))
        .unwrap();
    assert_eq!(r["structuredContent"]["login"], "alice", "{r}");
    assert_eq!(fake.requests().unwrap().len(), 1);

    // The password is in the vault and nowhere else, nor its Basic encoding.
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    };
    let audit = rt.audit_text().into_bytes();
    assert!(!audit.is_empty(), "the audit log is empty");
    let places: Vec<(&str, Vec<u8>)> = vec![
        ("connector log", connector.log().into_bytes()),
        (
            "runtime log",
            rt.serve.as_ref().unwrap().log_text().into_bytes(),
        ),
        ("proxy log", tp.process.log_text().into_bytes()),
        ("fake upstream log", fake.process.log_text().into_bytes()),
        ("config", std::fs::read(&config).unwrap()),
        ("audit", audit),
    ];
    for (what, bytes) in &places {
        for secret in [PASSWORD, encoded.as_str()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the proxy password is in the {what}"
            );
        }
    }
}
