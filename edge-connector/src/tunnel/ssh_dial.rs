//! Dialling the runtime over SSH on TCP: the transport for networks that block UDP.
//!
//! The runtime's host key must be the one its CA-pinned enrollment answer named (never
//! trust on first use); a different key is refused before any frame, naming both
//! fingerprints. The connector authenticates with its enrolled key as SSH user
//! `<connector id>`; the runtime accepts it only as the key of the certificate it issued.
//! Calls then arrive as channels the runtime opens, like QUIC streams.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, ChannelOpenHandle, DisconnectReason, Msg, Session};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{Channel, ChannelOpenFailure};
use rustls_pki_types::PrivateKeyDer;
use shared::link::ssh::{self as ssh_link, Incoming, SshLink, parse_disconnect};
use shared::link::{Link, LinkError};
use tokio::net::TcpStream;
use tracing::debug;

use super::dial::MAX_CONCURRENT_CALLS;

/// Why an SSH tunnel could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshDialError {
    /// The enrollment named no SSH host key (or an unreadable one).
    #[error(
        "no usable SSH host key of the runtime in connector.toml ({0}); re-enroll with a runtime that serves --ssh-listen"
    )]
    NoHostKey(String),
    /// Our key cannot be used for SSH.
    #[error("the connector key cannot sign SSH authentication: {0}")]
    Key(String),
    /// The TCP connection failed.
    #[error("TCP connection: {0}")]
    Tcp(String),
    /// The egress proxy refused or failed (its error names it and its answer).
    #[error(transparent)]
    Proxy(#[from] crate::connect_proxy::ProxyError),
    /// The runtime presented another host key than the one pinned at enrollment.
    #[error(
        "the runtime's SSH host key is {seen}, but enrollment pinned {expected}: refusing (a machine in the middle, or a runtime whose key changed: re-enroll if so)"
    )]
    HostKeyMismatch {
        /// The pinned key's fingerprint.
        expected: String,
        /// The presented key's fingerprint.
        seen: String,
    },
    /// The SSH handshake failed.
    #[error("SSH handshake: {0}")]
    Handshake(String),
    /// The runtime refused our key.
    #[error(
        "the runtime refused this connector's key over SSH (unknown, expired, renewed away or of another runtime)"
    )]
    Refused,
    /// Nothing answered in time.
    #[error("SSH handshake timed out")]
    Timeout,
}

/// The runtime's pinned host key, parsed from `connector.toml`.
pub fn host_key(line: Option<&str>) -> Result<PublicKey, SshDialError> {
    let line = line.ok_or_else(|| SshDialError::NoHostKey("none recorded".into()))?;
    PublicKey::from_openssh(line).map_err(|e| SshDialError::NoHostKey(e.to_string()))
}

/// Our enrolled key as an SSH signing key.
pub fn client_key(key: &PrivateKeyDer<'_>) -> Result<PrivateKey, SshDialError> {
    match key {
        PrivateKeyDer::Pkcs8(der) => russh::keys::pkcs8::decode_pkcs8(der.secret_pkcs8_der(), None)
            .map_err(|e| SshDialError::Key(e.to_string())),
        _ => Err(SshDialError::Key("not a PKCS#8 key".into())),
    }
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Where the session's end is recorded, whether or not the link exists yet (the runtime
/// may disconnect, say as revoked, right after accepting our authentication).
#[derive(Default)]
struct LinkSlot {
    link: Option<SshLink>,
    ended: Option<LinkError>,
}

/// Our SSH client callbacks.
struct Client {
    expected: PublicKey,
    seen: Arc<Mutex<Option<String>>>,
    incoming: Incoming,
    slot: Arc<Mutex<LinkSlot>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(c) => &PublicKey::from(c.public_key().clone()),
        };
        if key.key_data() == self.expected.key_data() {
            return Ok(true);
        }
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(fingerprint(key));
        Ok(false)
    }

    async fn server_channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.incoming.has_room() {
            reply.accept().await;
            self.incoming.offer(channel);
        } else {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
        }
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let why = match reason {
            DisconnectReason::ReceivedDisconnect(info) => parse_disconnect(&info.message),
            DisconnectReason::Error(e) => LinkError::Lost(format!("SSH session: {e}")),
        };
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match &slot.link {
            Some(link) => link.mark_closed(why),
            None => slot.ended = Some(why),
        }
        Ok(())
    }
}

fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(60)),
        keepalive_interval: Some(Duration::from_secs(15)),
        ..Default::default()
    })
}

/// An SSH session over `stream` (a TCP connection to the runtime, direct or through a
/// proxy; `remote` names its far end for logs), authenticated as `user` with `key`, the
/// runtime pinned to `expected`; within `timeout`.
pub async fn connect(
    stream: TcpStream,
    remote: SocketAddr,
    expected: PublicKey,
    user: &str,
    key: PrivateKey,
    timeout: Duration,
) -> Result<Link, SshDialError> {
    let (incoming, incoming_rx) = ssh_link::incoming(MAX_CONCURRENT_CALLS as usize);
    let seen = Arc::new(Mutex::new(None));
    let slot = Arc::new(Mutex::new(LinkSlot::default()));
    let mux_starter = incoming.clone();
    let client = Client {
        expected: expected.clone(),
        seen: seen.clone(),
        incoming,
        slot: slot.clone(),
    };
    let handshake = async {
        let mut handle = client::connect_stream(config(), stream, client)
            .await
            .map_err(
                |e| match seen.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    Some(seen) => SshDialError::HostKeyMismatch {
                        expected: fingerprint(&expected),
                        seen,
                    },
                    None => SshDialError::Handshake(e.to_string()),
                },
            )?;
        let auth = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), None))
            .await
            .map_err(|e| SshDialError::Handshake(e.to_string()))?;
        if !auth.success() {
            return Err(SshDialError::Refused);
        }
        // The control stream first, then the channel that carries the call streams; a
        // runtime that refuses the second opens a channel per call instead. A runtime that
        // refuses us right after authentication (revoked, busy) disconnects meanwhile: the
        // link then carries its close code, as over QUIC.
        let control = match handle.channel_open_session().await {
            Ok(control) => control,
            Err(e) => {
                debug!(error = %e, "control channel not opened");
                return Ok((handle, None));
            }
        };
        match handle.channel_open_session().await {
            Ok(mux) => {
                mux_starter.serve_mux(mux, MAX_CONCURRENT_CALLS);
            }
            Err(e) => debug!(error = %e, "the runtime opens a channel per call"),
        }
        Ok((handle, Some(ssh_link::channel_streams(control))))
    };
    let (handle, control) = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| SshDialError::Timeout)??;
    let mut link = SshLink::new(handle, remote, incoming_rx);
    if let Some(control) = control {
        link = link.with_opened(control);
    }
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(why) = slot.ended.take() {
        link.mark_closed(why);
    }
    slot.link = Some(link.clone());
    Ok(Link::Ssh(link))
}

/// A TCP connection to `endpoint` (`host:port`), trying each address in turn.
pub async fn tcp(
    endpoint: &str,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), SshDialError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(endpoint)
        .await
        .map_err(|e| SshDialError::Tcp(format!("cannot resolve {endpoint}: {e}")))?
        .collect();
    let mut last = String::from("no addresses");
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                // russh sets no-delay only on sockets it opens itself: without it every
                // small frame waits for the previous one's acknowledgement (~40 ms).
                let _ = s.set_nodelay(true);
                return Ok((s, addr));
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: timed out"),
        }
    }
    Err(SshDialError::Tcp(format!("{endpoint}: {last}")))
}
