//! `edge-connector doctor`: one test per failure it detects, each breaking exactly that
//! thing on loopback and asserting the advice and a non-zero exit, and one all-green run
//! against a real runtime and a fake upstream over HTTPS with its CA bundle.
//!
//! `all_green` and `a_listening_socket_is_reported` are kept apart by a nextest test group
//! (`.config/nextest.toml`): the second runs a process named edge-connector that listens,
//! which the first would rightly report.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::{Connector, Process, Runtime, bin, free_port, run, wait_for};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use serde_json::Value;

/// A running runtime, an enrolled connector (not running), its configuration file and an
/// initialised vault.
struct Setup {
    rt: Runtime,
    connector: Connector,
    config: PathBuf,
}

impl Setup {
    fn new() -> Result<Self> {
        Self::with_providers("")
    }

    fn with_providers(providers: &str) -> Result<Self> {
        let mut rt = Runtime::init()?;
        rt.start()?;
        let connector = Connector::enroll(&rt, "acme", "c1")?;
        let config = rt.dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\n[vault]\nidentity_file = {:?}\n{providers}",
                connector.state_dir,
                rt.dir.path().join("vault.key")
            ),
        )?;
        e2e::run_ok(
            Connector::cli()
                .args(["vault", "--config"])
                .arg(&config)
                .arg("init"),
        );
        Ok(Self {
            rt,
            connector,
            config,
        })
    }

    /// Rewrites one `key = "value"` line of connector.toml (the enrollment).
    fn set_enrollment(&self, key: &str, value: &str) -> Result<()> {
        let path = self.connector.state_dir.join("connector.toml");
        let text = std::fs::read_to_string(&path)?;
        let edited: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{key} =")) {
                    format!("{key} = {value:?}")
                } else {
                    l.to_owned()
                }
            })
            .collect();
        std::fs::write(&path, edited.join("\n") + "\n")?;
        Ok(())
    }

    fn doctor(&self) -> Report {
        doctor(&self.config, &[])
    }
}

/// What doctor printed and how it exited.
struct Report {
    ok: bool,
    json: Value,
}

impl Report {
    fn check(&self, id: &str) -> &Value {
        self.json["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == id))
            .unwrap_or_else(|| panic!("no check {id} in {:#}", self.json))
    }

    /// Asserts the run failed, check `id` failed, and its words contain every needle.
    fn assert_fails(&self, id: &str, needles: &[&str]) {
        assert!(!self.ok, "doctor exited 0 although {id} should fail");
        assert_eq!(self.json["ok"], false);
        let c = self.check(id);
        assert_eq!(c["status"], "fail", "{id}: {c:#}");
        let words = format!(
            "{} {}",
            c["summary"].as_str().unwrap_or_default(),
            c["fix"].as_str().unwrap_or_default()
        );
        for n in needles {
            assert!(words.contains(n), "{id}: {n:?} not in {words:?}");
        }
    }
}

fn doctor(config: &Path, env: &[(&str, &str)]) -> Report {
    let mut cmd = Connector::cli();
    cmd.args(["doctor", "--json", "--config"]).arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}): {stdout}"));
    Report {
        ok: out.status.success(),
        json,
    }
}

/// A private CA and a certificate for localhost/127.0.0.1 that it signed, as PEM files.
struct PrivatePki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn private_pki(dir: &Path) -> Result<PrivatePki> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "doctor test private CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
        .signed_by(&leaf_key, &issuer)?;
    let pki = PrivatePki {
        ca: dir.join("private-ca.pem"),
        cert: dir.join("upstream.pem"),
        key: dir.join("upstream.key"),
    };
    std::fs::write(&pki.ca, ca_cert.pem())?;
    std::fs::write(&pki.cert, leaf.pem())?;
    std::fs::write(&pki.key, leaf_key.serialize_pem())?;
    Ok(pki)
}

/// The fake GHES over HTTPS with a certificate from `pki`; returns it and its address.
fn fake_upstream_https(dir: &Path, pki: &PrivatePki) -> Result<(Process, String)> {
    let addr_file = dir.join("upstream.addr");
    let mut cmd = Command::new(bin("fake-upstream"));
    cmd.args(["--kind", "github", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&pki.key)
        .arg("--addr-file")
        .arg(&addr_file);
    let p = Process::spawn(cmd, dir.join("upstream.log"))?;
    let addr = wait_for(Duration::from_secs(20), "fake upstream", || {
        std::fs::read_to_string(&addr_file)
            .ok()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
    })
    .with_context(|| p.log_text())?;
    Ok((p, addr))
}

fn provider_block(name: &str, addr: &str, extra: &str) -> String {
    format!(
        "[[provider]]\nname = \"{name}\"\nkind = \"github\"\napi_url = \"https://{addr}/api/v3\"\n{extra}"
    )
}

#[test]
fn all_green() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = private_pki(dir.path())?;
    let (_upstream, addr) = fake_upstream_https(dir.path(), &pki)?;
    let ca = format!("ca_bundle = {:?}\nproxy = \"none\"\n", pki.ca);
    let mut s = Setup::with_providers(&provider_block("ghes", &addr, &ca))?;
    // A real connector running, so the listening check inspects a live process.
    s.connector.start(&s.rt, &[])?;
    let r = s.doctor();
    let failed: Vec<&Value> = r.json["checks"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["status"] == "fail").collect())
        .unwrap_or_default();
    assert!(failed.is_empty(), "failures: {failed:#?}");
    assert!(r.ok, "doctor exited non-zero with no failing check");
    for id in [
        "enrollment",
        "certificate",
        "runtime-quic",
        "runtime-https-tcp",
        "clock",
        "vault",
        "upstream:ghes",
        "no-listening-socket",
    ] {
        assert_eq!(r.check(id)["status"], "pass", "{id}: {:#}", r.check(id));
    }
    let quic = r.check("runtime-quic")["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(
        quic.contains("accepted this connector's certificate"),
        "{quic}"
    );
    let up = r.check("upstream:ghes")["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(
        up.contains("answered HTTP") && up.contains("ca_bundle"),
        "{up}"
    );
    let listening = r.check("no-listening-socket")["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(listening.contains("none listening"), "{listening}");

    // The text rendering says so too, and egress-report lists the same destinations.
    let text = e2e::run_ok(Connector::cli().args(["doctor", "--config"]).arg(&s.config));
    assert!(text.contains("All checks passed."), "{text}");
    let egress = e2e::run_ok(
        Connector::cli()
            .args(["egress-report", "--json", "--config"])
            .arg(&s.config),
    );
    println!("{egress}");
    let egress: Value = serde_json::from_str(&egress)?;
    let rows: Vec<String> = egress["destinations"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|d| format!("{} {}:{}", d["protocol"], d["host"], d["port"]))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        rows.contains(&format!("\"udp/quic\" \"localhost\":{}", s.rt.quic_port)),
        "{rows:?}"
    );
    assert!(
        rows.contains(&format!("\"tcp/https\" \"localhost\":{}", s.rt.https_port)),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("\"tcp/https\" \"127.0.0.1\"")),
        "{rows:?}"
    );
    Ok(())
}

#[test]
fn runtime_unresolvable() -> Result<()> {
    let s = Setup::new()?;
    s.set_enrollment("quic_endpoint", "runtime.invalid:4433")?;
    s.set_enrollment("runtime", "runtime.invalid:8443")?;
    let r = s.doctor();
    r.assert_fails(
        "runtime-dns",
        &[
            "cannot resolve runtime.invalid",
            "getent hosts runtime.invalid",
        ],
    );
    r.assert_fails("runtime-https-dns", &["cannot resolve runtime.invalid"]);
    Ok(())
}

#[test]
fn udp_blocked_nothing_answers_the_quic_handshake() -> Result<()> {
    let s = Setup::new()?;
    // A UDP socket that takes datagrams and never answers: a firewall dropping them.
    let black_hole = UdpSocket::bind("127.0.0.1:0")?;
    let port = black_hole.local_addr()?.port();
    s.set_enrollment("quic_endpoint", &format!("127.0.0.1:{port}"))?;
    let r = s.doctor();
    r.assert_fails(
        "runtime-quic",
        &[
            &format!("UDP {port} to 127.0.0.1 seems blocked"),
            "no answer to the QUIC handshake within 5 s",
            &format!("Open outbound UDP {port} to 127.0.0.1 in your firewall"),
        ],
    );
    Ok(())
}

#[test]
fn tcp_refused() -> Result<()> {
    let s = Setup::new()?;
    let port = free_port();
    s.set_enrollment("runtime", &format!("localhost:{port}"))?;
    let r = s.doctor();
    r.assert_fails(
        "runtime-https-tcp",
        &[
            &format!("TCP {port} to localhost"),
            "was refused",
            &format!("outbound TCP {port}"),
        ],
    );
    Ok(())
}

#[test]
fn clock_skew() -> Result<()> {
    let s = Setup::new()?;
    // A stand-in for the runtime's HTTPS endpoint, with the runtime's own certificate,
    // whose clock is two hours ahead.
    let fake = skewed_https(&s.rt.data_dir(), 7200)?;
    s.set_enrollment("runtime", &format!("localhost:{fake}"))?;
    let r = s.doctor();
    r.assert_fails(
        "clock",
        &[
            "this machine's clock is about",
            "behind the runtime's",
            "timedatectl set-ntp true",
        ],
    );
    let summary = r.check("clock")["summary"].as_str().unwrap_or_default();
    let secs: u64 = summary
        .split("about ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    assert!((7195..=7205).contains(&secs), "{summary}");
    Ok(())
}

/// Serves HTTPS on loopback with the runtime's server certificate, answering every request
/// with a `Date` `skew` seconds from now; returns the port.
fn skewed_https(data_dir: &Path, skew: i64) -> Result<u16> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(data_dir.join("server.pem"))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(data_dir.join("server.key"))?;
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?,
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut reader = BufReader::new(&mut tls);
            let mut line = String::new();
            // Plain TCP probes close without a handshake: skip them.
            let mut seen_request = false;
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                seen_request = true;
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            if !seen_request {
                continue;
            }
            let date = http_date(time::OffsetDateTime::now_utc() + time::Duration::seconds(skew));
            let body = "{\"trust_domain\":\"localhost\"}";
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.flush();
            let _ = tls.read(&mut [0u8; 1]);
        }
    });
    Ok(port)
}

fn http_date(t: time::OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Replaces the connector's certificate with one the runtime CA signed for the same
/// identity, valid from `start` to `end` seconds relative to now.
fn forge_certificate(s: &Setup, start: i64, end: i64) -> Result<()> {
    let data = s.rt.data_dir();
    let ca_pem = std::fs::read_to_string(data.join("ca.pem"))?;
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(data.join("ca.key"))?)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let enrollment = std::fs::read_to_string(s.connector.state_dir.join("connector.toml"))?;
    let identity = enrollment
        .lines()
        .find_map(|l| l.strip_prefix("identity = "))
        .context("identity in connector.toml")?
        .trim_matches('"')
        .to_owned();
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = vec![SanType::URI(identity.try_into()?)];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::seconds(start);
    params.not_after = now + time::Duration::seconds(end);
    let cert = params.signed_by(&key, &issuer)?;
    std::fs::write(
        s.connector.state_dir.join("identity.pem"),
        format!("{}{}{}", cert.pem(), ca_pem, key.serialize_pem()),
    )?;
    Ok(())
}

#[test]
fn certificate_expired() -> Result<()> {
    let s = Setup::new()?;
    forge_certificate(&s, -2 * 86_400, -3600)?;
    let r = s.doctor();
    r.assert_fails("certificate", &["the certificate expired at", "re-enroll"]);
    assert_eq!(r.check("runtime-quic")["status"], "skip");
    Ok(())
}

#[test]
fn certificate_expiring_soon() -> Result<()> {
    let s = Setup::new()?;
    forge_certificate(&s, -23 * 3600, 3600)?;
    let r = s.doctor();
    r.assert_fails(
        "certificate",
        &[
            "expires soon and renewal is overdue",
            "renews its certificate over the tunnel",
        ],
    );
    Ok(())
}

#[test]
fn vault_unreadable() -> Result<()> {
    let s = Setup::new()?;
    // A vault file that the key cannot open (damaged, or encrypted to another key).
    std::fs::write(
        s.connector.state_dir.join("vault.age"),
        b"age-encryption.org/v1\n-> X25519 garbage\n",
    )?;
    let r = s.doctor();
    r.assert_fails(
        "vault",
        &["the vault cannot be used", "does not decrypt with this key"],
    );
    // And a key that is not an age identity.
    std::fs::remove_file(s.connector.state_dir.join("vault.age"))?;
    std::fs::write(s.rt.dir.path().join("vault.key"), "not a key\n")?;
    let r = s.doctor();
    r.assert_fails("vault", &["the vault cannot be used", "is an age identity"]);
    Ok(())
}

#[test]
fn upstream_unreachable() -> Result<()> {
    let port = free_port();
    let s = Setup::with_providers(&provider_block(
        "ghes",
        &format!("127.0.0.1:{port}"),
        "proxy = \"none\"\n",
    ))?;
    let r = s.doctor();
    r.assert_fails(
        "upstream:ghes",
        &[
            &format!("TCP {port} to 127.0.0.1"),
            "was refused",
            "outbound TCP",
        ],
    );
    Ok(())
}

#[test]
fn upstream_tls_untrusted_without_its_ca_bundle() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = private_pki(dir.path())?;
    let (_upstream, addr) = fake_upstream_https(dir.path(), &pki)?;
    let s = Setup::with_providers(&provider_block("ghes", &addr, "proxy = \"none\"\n"))?;
    let r = s.doctor();
    r.assert_fails(
        "upstream:ghes",
        &[
            "the certificate is not trusted",
            "set ca_bundle = \"/etc/edge-connector/ghes-ca.pem\"",
        ],
    );
    Ok(())
}

#[test]
fn https_proxy_is_honoured_and_its_failure_explained() -> Result<()> {
    let s = Setup::with_providers(&provider_block(
        "ghes",
        "ghes.example.com",
        "proxy = \"env\"\n",
    ))?;
    let proxy_port = free_port();
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let r = doctor(
        &s.config,
        &[("HTTPS_PROXY", &proxy), ("NO_PROXY", "localhost")],
    );
    r.assert_fails(
        "upstream:ghes",
        &[
            &format!("TCP {proxy_port} to 127.0.0.1"),
            "was refused",
            "the proxy of provider ghes",
            "from HTTPS_PROXY",
        ],
    );
    let env = r.check("proxy-env")["summary"].as_str().unwrap_or_default();
    assert!(env.contains(&format!("HTTPS_PROXY={proxy}")), "{env}");
    Ok(())
}

#[test]
fn a_listening_socket_is_reported() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // A process the kernel names edge-connector that listens on TCP: a build that breaks
    // invariant 1, as doctor would find it on a customer's machine.
    let impostor = dir.path().join("edge-connector");
    std::fs::copy(bin("fake-upstream"), &impostor)?;
    let addr_file = dir.path().join("addr");
    let mut cmd = Command::new(&impostor);
    cmd.args(["--kind", "github", "--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file);
    let listener = Process::spawn(cmd, dir.path().join("impostor.log"))?;
    let addr = wait_for(Duration::from_secs(20), "listener", || {
        std::fs::read_to_string(&addr_file)
            .ok()
            .filter(|a| !a.trim().is_empty())
    })
    .with_context(|| listener.log_text())?;
    let port = addr
        .trim()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("state_dir = {:?}\n", dir.path().join("state")),
    )?;
    let r = doctor(&config, &[]);
    r.assert_fails(
        "no-listening-socket",
        &[
            "an edge-connector process accepts inbound traffic",
            &format!("process {}: tcp 127.0.0.1:{port}", listener.pid()),
            "The connector must never listen",
        ],
    );
    Ok(())
}

#[test]
fn revoked_connector() -> Result<()> {
    let s = Setup::new()?;
    e2e::run_ok(s.rt.cli().args(["connector", "revoke", &s.connector.id]));
    let r = s.doctor();
    r.assert_fails(
        "runtime-quic",
        &["the runtime says this connector is revoked", "re-enroll"],
    );
    Ok(())
}

#[test]
fn config_unloadable() -> Result<()> {
    let s = Setup::new()?;
    std::fs::write(&s.config, "state_dir = 3\n")?;
    let r = s.doctor();
    r.assert_fails(
        "config",
        &[
            "the configuration cannot be used",
            "config.toml:1:",
            "packaged example",
        ],
    );
    Ok(())
}

#[test]
fn not_enrolled_or_enrollment_damaged() -> Result<()> {
    let s = Setup::new()?;
    let enrollment = s.connector.state_dir.join("connector.toml");
    let saved = std::fs::read(&enrollment)?;
    std::fs::remove_file(&enrollment)?;
    let r = s.doctor();
    r.assert_fails(
        "enrollment",
        &[
            "this connector is not enrolled",
            "connector token create",
            "edge-connector enroll --config",
        ],
    );
    // A damaged enrollment file: restore it or enroll again.
    std::fs::write(&enrollment, b"runtime = [\n")?;
    let r = s.doctor();
    r.assert_fails(
        "enrollment",
        &["the enrollment cannot be read", "re-enroll"],
    );
    std::fs::write(&enrollment, saved)?;
    Ok(())
}
