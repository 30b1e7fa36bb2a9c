//! CA tooling for the tunnel.
//!
//! The runtime's CA signs two kinds of certificate: the runtime's own server certificate (QUIC
//! and HTTPS) and one short-lived client certificate per connector. A connector certificate's
//! only name is a SPIFFE URI SAN naming tenant and connector
//! ([`shared::identity::ConnectorIdentity`]); the runtime trusts nothing else the connector says
//! about who it is.
//!
//! - [`authority`]: create and load the CA, issue server certificates, sign connector CSRs.
//! - [`csr`]: the connector's side: a fresh key pair and a CSR for its identity.
//! - [`inspect`]: read identity, validity and serial back out of a certificate.
//! - [`fingerprint`]: the `sha256:<hex>` fingerprint used to pin the CA at enrollment.
//! - [`files`]: atomic writes, private keys at mode 0600.

#![forbid(unsafe_code)]

pub mod authority;
pub mod csr;
pub mod files;
pub mod fingerprint;
pub mod inspect;

pub use authority::CertificateAuthority;
pub use fingerprint::Fingerprint;

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The CSR could not be parsed or its signature does not verify.
    #[error("invalid CSR: {0}")]
    InvalidCsr(String),
    /// The CSR asks for an identity other than the one this enrollment grants.
    #[error("CSR asks for identity {found}, but this enrollment grants {expected}")]
    IdentityMismatch {
        /// What the token or connection grants.
        expected: String,
        /// What the CSR asked for.
        found: String,
    },
    /// The requested certificate lifetime is outside the allowed range.
    #[error("certificate lifetime {requested:?} is outside {min:?}..={max:?}")]
    BadLifetime {
        /// Requested.
        requested: std::time::Duration,
        /// Minimum.
        min: std::time::Duration,
        /// Maximum.
        max: std::time::Duration,
    },
    /// A certificate or key could not be parsed.
    #[error("could not parse {what}: {reason}")]
    Parse {
        /// Which object.
        what: &'static str,
        /// Parser's reason.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing a file failed, or a link was planted where it was to go.
    #[error(transparent)]
    File(#[from] shared::fs::FsError),
}
