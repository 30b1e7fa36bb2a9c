//! TLS configurations: the QUIC tunnel (mutual TLS against the runtime CA) and HTTPS
//! (server-authenticated, for enrollment and, later, MCP).
//!
//! Both use aws-lc-rs, the one crypto provider of the workspace, passed explicitly so that
//! nothing depends on a process-wide default.

use std::sync::Arc;
use std::time::Duration;

use std::path::PathBuf;

use quinn::crypto::rustls::{NoInitialCipherSuite, QuicServerConfig};
use rustls::RootCertStore;
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::data_dir::DataDir;

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: pem::Error,
    },
    /// The server certificate chain does not parse.
    #[error("parsing the server certificate chain")]
    Chain(#[source] pem::Error),
    /// The client-certificate verifier could not be built.
    #[error("building the client-certificate verifier")]
    Verifier(#[source] VerifierBuilderError),
    /// rustls refused the certificates, key or settings.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// The TLS configuration offers no cipher suite QUIC can use.
    #[error(transparent)]
    Quic(#[from] NoInitialCipherSuite),
    /// The idle timeout does not fit QUIC's transport parameter.
    #[error(transparent)]
    IdleTimeout(#[from] quinn::VarIntBoundsExceeded),
}

/// Idle time after which a silent tunnel is dropped (connectors send keep-alives every 5 s).
pub const TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The server's certificate chain and key.
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ServerIdentity {
    /// Loads `server.pem` and `server.key`.
    pub fn load(dir: &DataDir) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_file_iter(dir.server_cert())
            .map_err(|source| TlsError::Read {
                path: dir.server_cert(),
                source,
            })?
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsError::Chain)?;
        let key =
            PrivateKeyDer::from_pem_file(dir.server_key()).map_err(|source| TlsError::Read {
                path: dir.server_key(),
                source,
            })?;
        Ok(Self { chain, key })
    }
}

/// QUIC server config: TLS 1.3, our ALPN, client certificates required and verified
/// against the runtime CA (chain, validity, client-auth usage).
pub fn quic_server_config(
    id: &ServerIdentity,
    ca_der: &[u8],
) -> Result<quinn::ServerConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec()))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(TlsError::Verifier)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![shared::ALPN.to_vec()];
    // 0-RTT data could be replayed; tool calls are not all idempotent.
    tls.max_early_data_size = 0;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    // The connector opens only its control stream; calls are opened by the runtime.
    transport.max_concurrent_bidi_streams(2u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.max_idle_timeout(Some(TUNNEL_IDLE_TIMEOUT.try_into()?));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// HTTPS server config (no client certificates; HTTP/2 and HTTP/1.1).
pub fn https_server_config(id: &ServerIdentity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}
