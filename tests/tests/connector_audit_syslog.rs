//! The connector's audit log forwarded to the customer's syslog collector (issue 17, item 6):
//! a TLS listener in this test, receiving RFC 5424 messages framed by octet counting, gets
//! every record `edge-connector audit tail` shows; with the collector stopped, calls go on
//! and succeed, and when it is back on the same port the records written meanwhile arrive.

use std::io::{BufRead, BufReader, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use e2e::tool_suite::ToolEnv;
use e2e::{Connector, free_port, run, wait_for};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

/// Messages received, as text.
type Received = Arc<Mutex<Vec<String>>>;

/// A syslog collector on 127.0.0.1:`port`: TLS, octet-counted frames.
struct Collector {
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Collector {
    fn start(port: u16, tls: Arc<rustls::ServerConfig>, received: Received) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, c) = (stop.clone(), conns.clone());
        let accept = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok((tcp, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = tcp.set_nonblocking(false);
                if let Ok(clone) = tcp.try_clone() {
                    c.lock().unwrap().push(clone);
                }
                let (tls, received) = (tls.clone(), received.clone());
                std::thread::spawn(move || read_frames(tcp, tls, received));
            }
        });
        Ok(Self {
            stop,
            conns,
            accept: Some(accept),
        })
    }

    /// Closes the listener and every connection.
    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            a.join().unwrap();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// Reads `LEN SP MSG` frames until the connection ends.
fn read_frames(tcp: TcpStream, tls: Arc<rustls::ServerConfig>, received: Received) {
    let Ok(conn) = rustls::ServerConnection::new(tls) else {
        return;
    };
    let mut reader = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    loop {
        let mut len = Vec::new();
        match reader.read_until(b' ', &mut len) {
            Ok(n) if n > 1 => {}
            _ => return,
        }
        let Some(len) = std::str::from_utf8(&len[..len.len() - 1])
            .ok()
            .and_then(|l| l.parse::<usize>().ok())
        else {
            panic!("a frame without an octet count: {len:?}");
        };
        let mut msg = vec![0; len];
        if reader.read_exact(&mut msg).is_err() {
            return;
        }
        received
            .lock()
            .unwrap()
            .push(String::from_utf8(msg).expect("UTF-8"));
    }
}

/// A private CA (written to `dir/syslog-ca.pem`) and the collector's TLS configuration with
/// a certificate for 127.0.0.1 from it.
fn collector_tls(dir: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "syslog test CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    std::fs::write(dir.join("syslog-ca.pem"), ca_cert.pem())?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &issuer)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok(Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key)?,
    ))
}

/// Every line of the connector's log, as `audit tail` prints it.
fn tail(env: &ToolEnv) -> Vec<String> {
    let out = run(Connector::cli()
        .args(["audit", "tail", "-n", "100000", "--config"])
        .arg(&env.config));
    assert!(out.status.success(), "audit tail: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn seq(line: &str) -> u64 {
    serde_json::from_str::<Value>(line).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

/// The lines after sequence number `after` that no received message carries yet.
fn missing(env: &ToolEnv, after: u64, received: &Received) -> Vec<String> {
    let got = received.lock().unwrap();
    tail(env)
        .into_iter()
        .filter(|l| seq(l) > after)
        .filter(|l| !got.iter().any(|m| m.ends_with(&format!("] {l}"))))
        .collect()
}

#[test]
fn every_record_reaches_the_syslog_collector_and_those_written_while_it_was_down_arrive_when_it_returns()
-> Result<()> {
    let mut env = ToolEnv::github().start()?;
    let dir = env.rt.dir.path().to_owned();
    let tls = collector_tls(&dir)?;
    let port = free_port();
    let received: Received = Arc::default();
    let collector = Collector::start(port, tls.clone(), received.clone())?;

    let mut config = std::fs::read_to_string(&env.config)?;
    config.push_str(&format!(
        "\n[audit.syslog]\naddress = \"127.0.0.1:{port}\"\nca_bundle = \"{}\"\nqueue = 1000\n",
        dir.join("syslog-ca.pem").display()
    ));
    std::fs::write(&env.config, config)?;
    env.connector.process.as_mut().expect("running").kill();
    let path = env.config.clone();
    env.connector.start_configured(&env.rt, &path)?;
    wait_for(Duration::from_secs(30), "the collector connection", || {
        env.connector
            .log()
            .contains("syslog collector connected")
            .then_some(())
    })?;
    let before = tail(&env).last().map_or(0, |l| seq(l));

    let alice = env.user("alice");
    let args = json!({"owner": "acme", "repo": "widgets", "number": 1});
    for _ in 0..3 {
        alice.ok("github_get_issue", args.clone());
    }
    wait_for(
        Duration::from_secs(30),
        "every record at the collector",
        || missing(&env, before, &received).is_empty().then_some(()),
    )?;
    {
        let got = received.lock().unwrap();
        let call = got
            .iter()
            .find(|m| m.contains(r#""kind":"call""#))
            .expect("a call record");
        assert!(call.starts_with("<86>1 "), "{call}");
        let fields: Vec<&str> = call.splitn(8, ' ').collect();
        assert_eq!(
            (fields[3], fields[5], fields[6]),
            ("edge-connector", "call", "[edgeAudit@32473"),
            "{call}"
        );
    }

    // The collector goes away: calls go on and succeed.
    collector.stop();
    wait_for(Duration::from_secs(30), "the connector noticing", || {
        env.connector
            .log()
            .contains("syslog collector unreachable")
            .then_some(())
    })?;
    let during = tail(&env).last().map_or(0, |l| seq(l));
    for _ in 0..3 {
        alice.ok("github_get_issue", args.clone());
    }
    let queued = missing(&env, during, &received);
    assert!(
        queued
            .iter()
            .filter(|l| l.contains(r#""kind":"call""#))
            .count()
            >= 3,
        "{queued:?}"
    );

    // Back on the same port: what was written meanwhile arrives.
    let collector = Collector::start(port, tls, received.clone())?;
    wait_for(
        Duration::from_secs(60),
        "the records queued during the outage",
        || missing(&env, before, &received).is_empty().then_some(()),
    )?;
    assert!(
        env.connector
            .log()
            .contains("syslog collector reachable again")
    );
    collector.stop();
    Ok(())
}
