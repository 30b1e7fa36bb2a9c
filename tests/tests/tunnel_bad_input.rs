//! Bad input at every trust boundary of enrollment and the tunnel: each is refused with a
//! clear, typed error; nothing is lost (a refused attempt does not burn the token) and nothing
//! crashes (the runtime goes on serving its real connector).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::{Connector, Runtime, run, run_ok};
use quinn::crypto::rustls::QuicClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use shared::close::CloseCode;
use shared::io::{FrameReader, write_frame};
use shared::wire::{self, ControlFrame, control_frame::Kind};

fn enroll_cmd(
    rt: &Runtime,
    token: &str,
    fingerprint: &str,
    state: &std::path::Path,
) -> std::process::Output {
    run(Connector::cli()
        .args([
            "enroll",
            "--runtime",
            &rt.https_endpoint(),
            "--token",
            token,
            "--ca-fingerprint",
            fingerprint,
            "--state-dir",
        ])
        .arg(state))
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn enrollment_refuses_bad_input_and_loses_nothing() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let dir = rt.dir.path().to_owned();

    // Wrong CA fingerprint: refused before the token is sent, so the token still works.
    let tok = rt.token("acme", "15m");
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let out = enroll_cmd(&rt, &tok.token, &wrong, &dir.join("a"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not present the CA with fingerprint"),
        "{}",
        stderr(&out)
    );
    let out = enroll_cmd(&rt, &tok.token, &tok.ca_fingerprint, &dir.join("a"));
    assert!(out.status.success(), "{}", stderr(&out));

    // Reused token.
    let out = enroll_cmd(&rt, &tok.token, &tok.ca_fingerprint, &dir.join("b"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("TokenUsed") && stderr(&out).contains("already used"),
        "{}",
        stderr(&out)
    );

    // Expired token.
    let short = rt.token("acme", "1s");
    std::thread::sleep(Duration::from_millis(1500));
    let out = enroll_cmd(&rt, &short.token, &short.ca_fingerprint, &dir.join("c"));
    assert!(stderr(&out).contains("TokenExpired"), "{}", stderr(&out));

    // Unknown (well-formed) token, and a tampered one (tenant changed: the hash no longer matches).
    let unknown = format!("mcpjt_acme_c-000000000000_{}", "00".repeat(32));
    let out = enroll_cmd(&rt, &unknown, &tok.ca_fingerprint, &dir.join("d"));
    assert!(stderr(&out).contains("TokenUnknown"), "{}", stderr(&out));
    let fresh = rt.token("acme", "15m");
    let tampered = fresh.token.replacen("_acme_", "_globex_", 1);
    let out = enroll_cmd(&rt, &tampered, &fresh.ca_fingerprint, &dir.join("e"));
    assert!(stderr(&out).contains("TokenUnknown"), "{}", stderr(&out));

    // Not a token at all; not a fingerprint at all.
    let out = enroll_cmd(&rt, "garbage", &tok.ca_fingerprint, &dir.join("f"));
    assert!(
        stderr(&out).contains("malformed join token"),
        "{}",
        stderr(&out)
    );
    let out = enroll_cmd(&rt, &fresh.token, "md5:1234", &dir.join("f"));
    assert!(
        stderr(&out).contains("--ca-fingerprint"),
        "{}",
        stderr(&out)
    );

    // An already-enrolled state directory is not overwritten.
    let out = enroll_cmd(&rt, &fresh.token, &fresh.ca_fingerprint, &dir.join("a"));
    assert!(
        stderr(&out).contains("already enrolled"),
        "{}",
        stderr(&out)
    );

    // The tampering attempts did not burn the real token.
    let out = enroll_cmd(&rt, &fresh.token, &fresh.ca_fingerprint, &dir.join("g"));
    assert!(out.status.success(), "{}", stderr(&out));
    Ok(())
}

fn https_client(rt: &Runtime) -> Result<reqwest::blocking::Client> {
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    Ok(reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
        .build()?)
}

#[test]
fn enrollment_endpoint_refuses_a_csr_for_another_tenant_and_garbage() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let client = https_client(&rt)?;
    let url = format!("https://{}/v1/enroll", rt.https_endpoint());
    let tok = rt.token("acme", "15m");

    // A token of acme with a CSR naming globex (a connector of A claiming tenant B).
    let key = certs::csr::ConnectorKey::generate()?;
    let claim: shared::identity::ConnectorIdentity = format!(
        "spiffe://localhost/tenant/globex/connector/{}",
        tok.connector_id
    )
    .parse()?;
    let resp = client
        .post(&url)
        .json(&serde_json::json!({ "token": tok.token, "csr_pem": key.csr_pem(&claim)? }))
        .send()?;
    assert_eq!(resp.status(), 403);
    let body: serde_json::Value = resp.json()?;
    assert_eq!(body["error"], "identity_mismatch", "{body}");

    // Garbage CSR, garbage JSON, unknown fields, oversize body.
    let resp = client.post(&url).json(&serde_json::json!({ "token": tok.token, "csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n" })).send()?;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<serde_json::Value>()?["error"], "csr_invalid");
    let resp = client.post(&url).body("{not json").send()?;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<serde_json::Value>()?["error"], "bad_request");
    let resp = client
        .post(&url)
        .json(&serde_json::json!({ "token": tok.token, "csr_pem": "", "admin": true }))
        .send()?;
    assert_eq!(resp.status(), 400);
    let resp = client.post(&url).body(vec![b'a'; 100_000]).send()?;
    assert_eq!(resp.status(), 413);

    // None of it burned the token.
    let out = enroll_cmd(
        &rt,
        &tok.token,
        &tok.ca_fingerprint,
        &rt.dir.path().join("ok"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    Ok(())
}

/// A hand-driven tunnel client, to say what the real connector never would.
struct RawClient {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
}

fn client_config(
    chain: Vec<CertificateDer<'static>>,
    key: Option<PrivateKeyDer<'static>>,
    ca: &Runtime,
) -> Result<quinn::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca.data_dir().join("ca.pem"))?)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    let mut tls = match key {
        Some(key) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![shared::ALPN.to_vec()];
    Ok(quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls)?,
    )))
}

async fn connect(rt: &Runtime, config: quinn::ClientConfig) -> Result<RawClient> {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(config);
    let addr: SocketAddr = ([127, 0, 0, 1], rt.quic_port).into();
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        endpoint.connect(addr, "localhost")?.into_future(),
    )
    .await
    .context("handshake timed out")??;
    Ok(RawClient {
        _endpoint: endpoint,
        conn,
    })
}

fn identity_of(
    state_dir: &std::path::Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let pem = std::fs::read(state_dir.join("identity.pem"))?;
    let chain = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>()?;
    Ok((chain, PrivateKeyDer::from_pem_slice(&pem)?))
}

fn hello(connector_id: &str, min: u32, max: u32) -> ControlFrame {
    ControlFrame {
        kind: Some(Kind::Hello(wire::Hello {
            min_version: min,
            max_version: max,
            connector_id: connector_id.into(),
            build_version: "raw-test".into(),
            capabilities: vec![],
            tools: vec![],
            local_policy: vec![],
            audit_key: String::new(),
            slot: 0,
        })),
    }
}

/// Asserts the TLS handshake refused us. In TLS 1.3 the client finishes its side before the
/// server has judged the client certificate, so the refusal may arrive as a connection error
/// or as a TLS alert right after; either way no application data can flow.
async fn assert_handshake_refused(attempt: Result<RawClient>, what: &str) {
    let Ok(c) = attempt else { return };
    match tokio::time::timeout(Duration::from_secs(10), c.conn.closed()).await {
        Ok(quinn::ConnectionError::ConnectionClosed(close)) => {
            // 0x100..=0x1ff: a TLS alert carried as a QUIC crypto error.
            let code = u64::from(close.error_code);
            assert!(
                (0x100..=0x1ff).contains(&code),
                "{what}: closed with {close:?}"
            );
        }
        other => panic!("{what}: expected a TLS alert, got {other:?}"),
    }
}

/// Waits for the runtime to close the connection and returns its close code.
async fn close_code(conn: &quinn::Connection) -> Option<CloseCode> {
    match tokio::time::timeout(Duration::from_secs(10), conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(c)) => {
            CloseCode::from_code(c.error_code.into_inner())
        }
        other => panic!("expected an application close, got {other:?}"),
    }
}

/// A certificate signed by the runtime's own CA (as only someone holding its key could), for
/// cases the CA would never issue: expired, or naming an identity the store does not know.
fn forged(
    rt: &Runtime,
    uri: &str,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(rt.data_dir().join("ca.key"))?)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(rt.data_dir().join("ca.pem"))?,
        ca_key,
    )?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into()?)];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((
        vec![cert.der().clone()],
        PrivateKeyDer::try_from(key.serialize_der()).map_err(anyhow::Error::msg)?,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_refuses_bad_peers_and_bad_frames() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let mut real = Connector::enroll(&rt, "acme", "real")?;
    real.start(&rt, &[])?;
    let spare = Connector::enroll(&rt, "acme", "spare")?;
    let (chain, key) = identity_of(&spare.state_dir)?;
    let ok_config = || client_config(chain.clone(), Some(key.clone_key()), &rt);

    // A certificate from another CA, and no certificate at all: refused in the handshake.
    let (other_ca, _) = certs::CertificateAuthority::create("localhost")?;
    let stranger = certs::csr::ConnectorKey::generate()?;
    let id: shared::identity::ConnectorIdentity =
        format!("spiffe://localhost/tenant/acme/connector/{}", spare.id).parse()?;
    let issued =
        other_ca.sign_connector(&stranger.csr_der(&id)?, &id, Duration::from_secs(3600))?;
    let foreign_chain = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let foreign_key = PrivateKeyDer::try_from(stranger.pkcs8_der()).map_err(anyhow::Error::msg)?;
    assert_handshake_refused(
        connect(&rt, client_config(foreign_chain, Some(foreign_key), &rt)?).await,
        "foreign CA",
    )
    .await;
    assert_handshake_refused(
        connect(&rt, client_config(vec![], None, &rt)?).await,
        "no client certificate",
    )
    .await;

    // An expired certificate from the right CA.
    let now = time::OffsetDateTime::now_utc();
    let (exp_chain, exp_key) = forged(
        &rt,
        &id.to_uri(),
        now - time::Duration::hours(2),
        now - time::Duration::hours(1),
    )?;
    assert_handshake_refused(
        connect(&rt, client_config(exp_chain, Some(exp_key), &rt)?).await,
        "expired certificate",
    )
    .await;

    // A valid-looking certificate naming a tenant the connector does not belong to.
    let (b_chain, b_key) = forged(
        &rt,
        &format!("spiffe://localhost/tenant/globex/connector/{}", spare.id),
        now,
        now + time::Duration::hours(1),
    )?;
    let c = connect(&rt, client_config(b_chain, Some(b_key), &rt)?).await?;
    assert_eq!(close_code(&c.conn).await, Some(CloseCode::UnknownConnector));

    // Protocol version the runtime does not speak: a clear reject, then the close.
    let c = connect(&rt, ok_config()?).await?;
    let (mut send, recv) = c.conn.open_bi().await?;
    write_frame(&mut send, &hello(&spare.id, 90, 99)).await?;
    let mut reader = FrameReader::new(recv, 1 << 20);
    match reader.next::<ControlFrame>().await? {
        Some(ControlFrame {
            kind: Some(Kind::HelloReject(r)),
        }) => {
            assert_eq!(r.reason, wire::RejectReason::UpgradeRequired as i32);
            assert!(
                r.message.contains("runtime must be upgraded") || r.message.contains("upgrade"),
                "{}",
                r.message
            );
        }
        other => panic!("expected a hello-reject, got {other:?}"),
    }
    assert_eq!(close_code(&c.conn).await, Some(CloseCode::UpgradeRequired));

    // A hello naming another connector than the certificate.
    let c = connect(&rt, ok_config()?).await?;
    let (mut send, _recv) = c.conn.open_bi().await?;
    write_frame(&mut send, &hello(&real.id, 1, 1)).await?;
    assert_eq!(close_code(&c.conn).await, Some(CloseCode::IdentityMismatch));

    // Garbage, an oversize length prefix, a truncated frame.
    for bytes in [
        b"\x00\x00\x00\x05\xff\xff\xff\xff\xff".to_vec(),
        vec![0x7f, 0xff, 0xff, 0xff, 1, 2, 3],
        vec![0, 0, 0, 50, 1, 2, 3],
    ] {
        let c = connect(&rt, ok_config()?).await?;
        let (mut send, _recv) = c.conn.open_bi().await?;
        send.write_all(&bytes).await?;
        send.finish()?;
        assert_eq!(
            close_code(&c.conn).await,
            Some(CloseCode::ProtocolError),
            "for {bytes:?}"
        );
    }

    // A heartbeat before hello is out of order.
    let c = connect(&rt, ok_config()?).await?;
    let (mut send, _recv) = c.conn.open_bi().await?;
    write_frame(
        &mut send,
        &ControlFrame {
            kind: Some(Kind::Heartbeat(wire::Heartbeat { seq: 1 })),
        },
    )
    .await?;
    assert_eq!(close_code(&c.conn).await, Some(CloseCode::ProtocolError));

    // A revoked connector is refused at the handshake.
    run_ok(rt.cli().args(["connector", "revoke", &spare.id]));
    let c = connect(&rt, ok_config()?).await?;
    assert_eq!(close_code(&c.conn).await, Some(CloseCode::Revoked));

    // Through all of it the runtime kept serving the real connector.
    assert!(rt.ping(&real.id).is_ok());
    assert!(real.process.as_mut().and_then(|p| p.try_wait()).is_none());
    assert!(
        rt.serve.as_mut().and_then(|p| p.try_wait()).is_none(),
        "runtime crashed"
    );
    Ok(())
}
