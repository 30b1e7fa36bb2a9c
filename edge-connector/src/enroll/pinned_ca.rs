//! Server-certificate verification against a CA known only by its fingerprint.
//!
//! Before enrollment the connector has no CA certificate, only the SHA-256 fingerprint the
//! operator copied from `connector token create`. The runtime sends its CA in the TLS chain;
//! this verifier takes the chain element whose fingerprint matches as the only trust anchor
//! and then verifies normally (chain, validity, hostname). A wrong fingerprint fails the
//! handshake before the join token is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use certs::Fingerprint;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Verifies a server against a pinned CA fingerprint.
#[derive(Debug)]
pub struct PinnedCa {
    fingerprint: Fingerprint,
    provider: Arc<CryptoProvider>,
    mismatch: AtomicBool,
}

impl PinnedCa {
    /// A verifier pinning `fingerprint`.
    pub fn new(fingerprint: Fingerprint, provider: Arc<CryptoProvider>) -> Self {
        Self {
            fingerprint,
            provider,
            mismatch: AtomicBool::new(false),
        }
    }

    /// Whether a handshake failed because no certificate matched the fingerprint.
    pub fn saw_mismatch(&self) -> bool {
        self.mismatch.load(Ordering::Relaxed)
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(anchor) = intermediates
            .iter()
            .find(|c| Fingerprint::of_der(c).matches(&self.fingerprint))
        else {
            self.mismatch.store(true, Ordering::Relaxed);
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ));
        };
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
