//! Dialling the runtime.
//!
//! The QUIC endpoint is built on a UDP socket that is `connect()`ed to the runtime's
//! address: the kernel then delivers datagrams from that peer only, and `ss` shows an
//! established flow rather than an open port. The connector has no listening socket of any
//! kind. A fresh socket (and DNS lookup) per attempt follows the runtime if it moves.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use rustls::RootCertStore;
use shared::link::Link;

use crate::state::Identity;

/// Time allowed for one QUIC + TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// QUIC keep-alive interval: keeps NAT and firewall state alive and detects a dead path.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Idle timeout of the tunnel.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// How many calls the runtime may run on this connector at once.
pub const MAX_CONCURRENT_CALLS: u32 = 1024;

/// Why dialling failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The runtime's name did not resolve.
    #[error("cannot resolve {endpoint}: {reason}")]
    Resolve {
        /// What was looked up.
        endpoint: String,
        /// Why it failed.
        reason: String,
    },
    /// The TLS configuration could not be built from the state directory.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// No address answered.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// Where.
        endpoint: String,
        /// The last failure.
        reason: String,
    },
}

/// A live tunnel connection with the endpoint that drives it.
#[derive(Debug)]
pub struct Dialled {
    /// The endpoint (one per connection; owns the connected socket).
    pub endpoint: quinn::Endpoint,
    /// The connection.
    pub connection: quinn::Connection,
}

/// A live tunnel on either transport, as a session runs it.
#[derive(Debug)]
pub struct Tunnel {
    /// The connection.
    pub link: Link,
    /// The egress proxy it goes through, described for status and logs (no password).
    pub proxy: Option<String>,
    /// For QUIC, the endpoint that owns its socket (waited on at close so the close
    /// reaches the runtime).
    quic_endpoint: Option<quinn::Endpoint>,
}

impl Tunnel {
    /// Waits (at most `limit`) until a closed QUIC connection's close has been sent.
    pub async fn wait_idle(&self, limit: Duration) {
        if let Some(endpoint) = &self.quic_endpoint {
            let _ = tokio::time::timeout(limit, endpoint.wait_idle()).await;
        }
    }
}

impl From<Dialled> for Tunnel {
    fn from(d: Dialled) -> Self {
        Self {
            link: Link::Quic(d.connection),
            proxy: None,
            quic_endpoint: Some(d.endpoint),
        }
    }
}

impl Tunnel {
    /// An SSH tunnel, through `proxy` if one.
    pub fn ssh(link: Link, proxy: Option<String>) -> Self {
        Self {
            link,
            proxy,
            quic_endpoint: None,
        }
    }
}

/// Builds the QUIC client configuration: TLS 1.3 with our client certificate, the pinned
/// runtime CA as the only root, our ALPN, keep-alives.
pub fn client_config(
    identity: &Identity,
    ca: rustls_pki_types::CertificateDer<'static>,
) -> Result<quinn::ClientConfig, DialError> {
    let tls_err = |e: &dyn std::fmt::Display| DialError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca).map_err(|e| tls_err(&e))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(&e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| tls_err(&e))?;
    tls.alpn_protocols = vec![shared::ALPN.to_vec()];
    tls.enable_early_data = false;
    let quic = QuicClientConfig::try_from(tls).map_err(|e| tls_err(&e))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().map_err(|e| tls_err(&e))?));
    transport.max_concurrent_bidi_streams(MAX_CONCURRENT_CALLS.into());
    transport.max_concurrent_uni_streams(0u32.into());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

fn connected_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Why one address gave no connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// The local UDP socket could not be made (no route, no address family).
    #[error("{0}")]
    Socket(#[from] std::io::Error),
    /// quinn refused to start the handshake (a bad server name, say).
    #[error("{0}")]
    Start(#[from] quinn::ConnectError),
    /// Nothing answered in time: UDP blocked on the way, or nothing listening.
    #[error("handshake timed out")]
    Timeout,
    /// The handshake failed (TLS alert, refused certificate, closed by the peer).
    #[error("{0}")]
    Handshake(#[from] quinn::ConnectionError),
}

/// One handshake with `addr` over a fresh connected socket, within `timeout`. `doctor`
/// calls it per address to tell which one is blocked.
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    config: &quinn::ClientConfig,
    timeout: Duration,
) -> Result<Dialled, AttemptError> {
    let socket = connected_socket(addr)?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    let connecting = endpoint.connect_with(config.clone(), addr, server_name)?;
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(connection)) => Ok(Dialled {
            endpoint,
            connection,
        }),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(AttemptError::Timeout),
    }
}

/// Resolves `endpoint` (`host:port`) and connects to the first address that answers.
pub async fn dial(
    endpoint: &str,
    server_name: &str,
    config: &quinn::ClientConfig,
    timeout: Duration,
) -> Result<Dialled, DialError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(endpoint)
        .await
        .map_err(|e| DialError::Resolve {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        })?
        .collect();
    let mut last = String::from("no addresses");
    for addr in addrs {
        match connect(addr, server_name, config, timeout).await {
            Ok(d) => return Ok(d),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(DialError::Connect {
        endpoint: endpoint.to_owned(),
        reason: last,
    })
}
