//! What the runtime's SSH tunnel endpoint does with peers that are not a well-behaved
//! enrolled connector: each is refused with a clear reason, and the runtime keeps serving its
//! real connectors throughout.

use std::time::Duration;

use anyhow::Result;
use e2e::{Connector, Runtime, free_port, run_ok};
use edge_connector::tunnel::ssh_dial::{self, SshDialError};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use shared::close::CloseCode;
use shared::io::write_frame;
use shared::link::{Link, LinkError};
use shared::wire::{self, ControlFrame, control_frame::Kind};
use tokio::io::AsyncWriteExt;

const TIMEOUT: Duration = Duration::from_secs(10);

fn enrollment(state_dir: &std::path::Path) -> Result<toml::Value> {
    Ok(toml::from_str(&std::fs::read_to_string(
        state_dir.join("connector.toml"),
    )?)?)
}

fn field(v: &toml::Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

/// An SSH session to the runtime as `user`, signing with the key in `key_from`'s state dir.
async fn ssh_as(
    enrolled: &toml::Value,
    user: &str,
    key_from: &std::path::Path,
) -> Result<Link, SshDialError> {
    let pem = std::fs::read(key_from.join("identity.pem")).expect("identity.pem");
    let key = PrivateKeyDer::from_pem_slice(&pem).expect("key in identity.pem");
    let key = ssh_dial::client_key(&key)?;
    let expected = ssh_dial::host_key(Some(&field(enrolled, "ssh_host_key")))?;
    let (stream, remote) = ssh_dial::tcp(&field(enrolled, "tcp_endpoint"), TIMEOUT).await?;
    ssh_dial::connect(stream, remote, expected, user, key, TIMEOUT).await
}

async fn close_code(link: &Link) -> Option<CloseCode> {
    match tokio::time::timeout(TIMEOUT, link.closed()).await {
        Ok(LinkError::Closed { code, .. }) => CloseCode::from_code(code),
        other => panic!("expected an application close, got {other:?}"),
    }
}

fn hello(connector_id: &str) -> ControlFrame {
    ControlFrame {
        kind: Some(Kind::Hello(wire::Hello {
            min_version: 1,
            max_version: 1,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssh_endpoint_refuses_bad_peers_and_bad_frames_and_keeps_serving() -> Result<()> {
    let mut rt = Runtime::init()?;
    let ssh_port = free_port();
    rt.serve_args = vec!["--ssh-listen".into(), format!("127.0.0.1:{ssh_port}")];
    rt.start()?;
    let mut real = Connector::enroll(&rt, "acme", "real")?;
    real.start(&rt, &["--transport", "tcp"])?;
    let spare = Connector::enroll(&rt, "acme", "spare")?;
    let other_tenant = Connector::enroll(&rt, "globex", "other")?;
    let enrolled = enrollment(&spare.state_dir)?;

    // The key of another tenant's connector, presented as ours: refused at authentication.
    let e = ssh_as(&enrolled, &spare.id, &other_tenant.state_dir)
        .await
        .expect_err("another tenant's key");
    assert!(matches!(e, SshDialError::Refused), "{e}");
    // Our key under another connector's name: refused too.
    let e = ssh_as(&enrolled, &other_tenant.id, &spare.state_dir)
        .await
        .expect_err("another connector's name");
    assert!(matches!(e, SshDialError::Refused), "{e}");
    // A name that is no connector id at all.
    let e = ssh_as(&enrolled, "../../etc/passwd\n", &spare.state_dir)
        .await
        .expect_err("not a connector id");
    assert!(matches!(e, SshDialError::Refused), "{e}");

    // No key at all: the only method is public key.
    {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", ssh_port)).await?;
        let mut handle =
            russh::client::connect_stream(Default::default(), stream, AcceptAny).await?;
        let auth = handle.authenticate_none(spare.id.clone()).await?;
        assert!(!auth.success(), "authentication without a key");
    }

    // Not SSH at all: the runtime closes the connection.
    {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", ssh_port)).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        // Closed (an end or a reset, either is fine) rather than left hanging.
        let closed = tokio::time::timeout(
            TIMEOUT,
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut buf),
        )
        .await;
        assert!(closed.is_ok(), "the runtime kept a non-SSH peer open");
        assert!(buf.starts_with(b"SSH-2.0-"), "{buf:?}");
    }

    // Garbage, an oversize length prefix and a truncated frame on the control channel.
    for bytes in [
        b"\x00\x00\x00\x05\xff\xff\xff\xff\xff".to_vec(),
        vec![0x7f, 0xff, 0xff, 0xff, 1, 2, 3],
        vec![0, 0, 0, 50, 1, 2, 3],
    ] {
        let link = ssh_as(&enrolled, &spare.id, &spare.state_dir).await?;
        let (mut send, _recv) = link.open_bi().await?;
        send.write_all(&bytes).await?;
        send.finish();
        assert_eq!(
            close_code(&link).await,
            Some(CloseCode::ProtocolError),
            "for {bytes:?}"
        );
    }

    // A hello naming another connector than the key's.
    let link = ssh_as(&enrolled, &spare.id, &spare.state_dir).await?;
    let (mut send, _recv) = link.open_bi().await?;
    write_frame(&mut send, &hello(&real.id)).await?;
    assert_eq!(close_code(&link).await, Some(CloseCode::IdentityMismatch));

    // A third channel from the connector side (after the control stream and the one that
    // carries the calls) is refused: calls are the runtime's to open.
    let link = ssh_as(&enrolled, &spare.id, &spare.state_dir).await?;
    let (_control, _recv) = link.open_bi().await?;
    assert!(
        link.open_bi().await.is_err(),
        "a third connector-opened channel"
    );

    // Garbage instead of HTTP/2 on the channel that carries the calls: the runtime ends
    // that SSH session (and no other), without waiting for heartbeats to fail.
    {
        let pem = std::fs::read(spare.state_dir.join("identity.pem"))?;
        let key = ssh_dial::client_key(&PrivateKeyDer::from_pem_slice(&pem)?)?;
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", ssh_port)).await?;
        let mut handle =
            russh::client::connect_stream(Default::default(), stream, AcceptAny).await?;
        let auth = handle
            .authenticate_publickey(
                spare.id.clone(),
                russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), None),
            )
            .await?;
        assert!(auth.success(), "the spare connector's own key");
        let control = handle.channel_open_session().await?;
        let calls = handle.channel_open_session().await?;
        write_frame(&mut control.make_writer(), &hello(&spare.id)).await?;
        calls
            .data(&b"\xffthis is not an HTTP/2 preface\r\n\r\n"[..])
            .await?;
        let ended = tokio::time::timeout(TIMEOUT, async {
            while !handle.is_closed() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "the runtime kept a session whose call channel failed"
        );
    }

    // A revoked connector is refused before any frame, with the reason.
    run_ok(rt.cli().args(["connector", "revoke", &spare.id]));
    let link = ssh_as(&enrolled, &spare.id, &spare.state_dir).await?;
    assert_eq!(close_code(&link).await, Some(CloseCode::Revoked));

    // Through all of it the runtime kept serving the real connector over SSH.
    assert!(rt.ping(&real.id).is_ok(), "{}", real.log());
    assert!(real.process.as_mut().and_then(|p| p.try_wait()).is_none());
    assert!(
        rt.serve.as_mut().and_then(|p| p.try_wait()).is_none(),
        "runtime crashed"
    );
    Ok(())
}

/// An SSH client that accepts any host key: only for the no-key case, which fails before
/// the host key would matter.
struct AcceptAny;

impl russh::client::Handler for AcceptAny {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_key_is_refused_over_ssh() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.serve_args = vec![
        "--ssh-listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--connector-cert-ttl".into(),
        "60s".into(),
    ];
    rt.start()?;
    // Enrolled, never run: nothing renews its one-minute certificate.
    let c = Connector::enroll(&rt, "acme", "sleeper")?;
    let enrolled = enrollment(&c.state_dir)?;
    let link = ssh_as(&enrolled, &c.id, &c.state_dir).await?;
    link.close(CloseCode::Normal, "checked");
    tokio::time::sleep(Duration::from_secs(62)).await;
    let e = ssh_as(&enrolled, &c.id, &c.state_dir)
        .await
        .expect_err("an expired certificate's key");
    assert!(matches!(e, SshDialError::Refused), "{e}");
    Ok(())
}
