//! The SSH-over-TCP tunnel endpoint, for connectors on networks that block UDP.
//!
//! Same identity, same strength as QUIC: the connector signs the SSH authentication with its
//! enrolled key, and the runtime accepts that key only as the key of a certificate it issued
//! to that connector and still considers current (the SSH user name is the connector id;
//! the key must match the certificate's, within its validity). The tenant, the connector
//! and the certificate then go through the same admission as a QUIC client certificate
//! ([`super::listener::admit`]: revoked, unknown and superseded identities are refused
//! before any stream). The runtime's host key is pinned by the connector from its CA-pinned
//! enrollment answer: there is no trust on first use.
//!
//! Only the connector opens a channel to the runtime, once: the control stream. Every call
//! is a channel the runtime opens, as with QUIC's streams.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use certs::inspect::CertInfo;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::public::{EcdsaPublicKey, KeyData};
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelOpenFailure, MethodKind, MethodSet};
use shared::identity::ConnectorId;
use shared::link::ssh::{self as ssh_link, Incoming, SshLink};
use shared::link::{Link, LinkError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::{TunnelContext, listener, session};

/// Time allowed from the TCP connection to a verified SSH authentication.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the host key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostKeyError {
    /// Reading or writing the key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not an OpenSSH private key.
    #[error("{path}: not an OpenSSH private key: {reason}")]
    Format {
        /// The key file.
        path: std::path::PathBuf,
        /// What the parser said.
        reason: String,
    },
}

/// The runtime's SSH host key at `path`, made (Ed25519, mode 0600) if there is none yet.
pub fn load_or_create_host_key(path: &Path) -> Result<PrivateKey, HostKeyError> {
    let io = |source| HostKeyError::Io {
        path: path.to_owned(),
        source,
    };
    let format = |reason: String| HostKeyError::Format {
        path: path.to_owned(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => PrivateKey::from_openssh(text).map_err(|e| format(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::from(Ed25519Keypair::from_seed(&rand::random()));
            let text = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| format(e.to_string()))?;
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// The public half of `key` as an OpenSSH line, as enrollment tells it to connectors.
pub fn public_line(key: &PrivateKey) -> String {
    key.public_key()
        .to_openssh()
        .unwrap_or_else(|_| String::from("(unencodable host key)"))
}

/// The SSH server settings: public-key authentication only, no idle sessions.
pub fn server_config(host_key: PrivateKey) -> Arc<server::Config> {
    Arc::new(server::Config {
        keys: vec![host_key],
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 3,
        inactivity_timeout: Some(Duration::from_secs(60)),
        keepalive_interval: Some(Duration::from_secs(15)),
        ..Default::default()
    })
}

/// Accepts SSH tunnels until `shutdown`; each runs in `tracker`.
pub async fn accept_loop(
    listener: TcpListener,
    config: Arc<server::Config>,
    ctx: Arc<TunnelContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "SSH tunnel accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        tracker.spawn(serve(
            stream,
            peer,
            config.clone(),
            ctx.clone(),
            shutdown.clone(),
        ));
    }
}

/// One SSH connection: handshake and authentication within [`HANDSHAKE_TIMEOUT`],
/// admission, then the tunnel session.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<server::Config>,
    ctx: Arc<TunnelContext>,
    shutdown: CancellationToken,
) {
    // russh sets no-delay only on sockets it opens itself: without it every small frame
    // waits for the previous one's acknowledgement (~40 ms).
    let _ = stream.set_nodelay(true);
    let (incoming, incoming_rx) = ssh_link::incoming(1);
    let (authed_tx, authed_rx) = oneshot::channel();
    let handler = Handler {
        ctx: ctx.clone(),
        peer,
        authed: Some(authed_tx),
        incoming,
        control_opened: false,
    };
    let mut running = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        server::run_stream(config, stream, handler),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "SSH handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "SSH handshake timed out");
            return;
        }
    };
    let handle = running.handle();
    let cert = tokio::select! {
        c = tokio::time::timeout(HANDSHAKE_TIMEOUT, authed_rx) => match c {
            Ok(Ok(cert)) => cert,
            _ => {
                info!(%peer, "SSH tunnel not authenticated in time");
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "authentication timeout".into(), String::new())
                    .await;
                return;
            }
        },
        r = &mut running => {
            info!(%peer, result = ?r.err(), "SSH tunnel ended before authentication");
            return;
        }
    };
    let link = SshLink::new(handle, peer, incoming_rx);
    let ended = link.clone();
    tokio::spawn(async move {
        let why = match running.await {
            Ok(()) => "SSH session ended".to_owned(),
            Err(e) => format!("SSH session failed: {e}"),
        };
        ended.mark_closed(LinkError::Lost(why));
    });
    let link = Link::Ssh(link);
    let Some((identity, cert)) = listener::admit(&link, &ctx, cert).await else {
        return;
    };
    session::run(link, identity, cert, ctx, shutdown).await;
}

/// The SSH key of a certificate's public key (P-256 or P-384 ECDSA), to compare with the key
/// that signed an authentication.
fn ssh_key_of(spki_der: &[u8]) -> Option<KeyData> {
    use x509_parser::prelude::FromDer as _;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).ok()?;
    EcdsaPublicKey::from_sec1_bytes(&spki.subject_public_key.data)
        .ok()
        .map(KeyData::Ecdsa)
}

/// The certificate of connector `user` whose key is `key`, among those the runtime issued it
/// (current, or the one renewed while the current is unused), within its validity.
async fn certificate_for(ctx: &TunnelContext, user: &str, key: &PublicKey) -> Option<CertInfo> {
    let id: ConnectorId = user.parse().ok()?;
    let issued = match ctx.store.issued_certificates(&id).await {
        Ok(i) => i?,
        Err(e) => {
            warn!(error = %e, "store lookup failed; refusing SSH authentication");
            return None;
        }
    };
    let now = time::OffsetDateTime::now_utc();
    [issued.cert_der, issued.previous_cert_der]
        .into_iter()
        .flatten()
        .filter_map(|der| CertInfo::from_der(&der).ok())
        .find(|cert| {
            cert.identity.as_ref().is_some_and(|i| i.connector == id)
                && ssh_key_of(&cert.spki_der).as_ref() == Some(key.key_data())
                && cert.not_before <= now
                && now < cert.not_after
        })
}

/// Per-connection SSH server callbacks.
struct Handler {
    ctx: Arc<TunnelContext>,
    peer: SocketAddr,
    authed: Option<oneshot::Sender<CertInfo>>,
    incoming: Incoming,
    control_opened: bool,
}

impl server::Handler for Handler {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.authed.is_none() {
            return Ok(Auth::reject());
        }
        match certificate_for(&self.ctx, user, key.public_key).await {
            Some(cert) => {
                if let Some(tx) = self.authed.take() {
                    let _ = tx.send(cert);
                }
                Ok(Auth::Accept)
            }
            None => {
                // Debug-formatted: the user name is unauthenticated input.
                warn!(peer = %self.peer, user = ?user, "SSH key is not the current key of that connector");
                Ok(Auth::reject())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Authenticated, and only two channels: the control stream, then the one that
        // carries the call streams we open (a connector without it gets a channel per call).
        if self.authed.is_some() {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
        } else if !self.control_opened {
            self.control_opened = true;
            reply.accept().await;
            if !self.incoming.offer(channel) {
                debug!(peer = %self.peer, "control channel not taken");
            }
        } else if !self.incoming.has_mux() {
            reply.accept().await;
            self.incoming.start_mux_client(channel);
        } else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
        }
        Ok(())
    }
}
