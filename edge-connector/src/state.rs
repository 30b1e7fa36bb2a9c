//! The connector's state directory.
//!
//! ```text
//! STATE/            0700
//!   connector.toml  who we are and where the runtime is (written at enroll)
//!   ca.pem          the runtime CA, pinned by fingerprint at enroll
//!   identity.pem    certificate chain and private key, mode 0600
//! ```
//! Chain and key share one file so that a renewal replaces both in a single atomic rename:
//! a crash can never leave a certificate beside the wrong key.
//!
//! Files are read without following symbolic links and written through
//! [`shared::fs::write_atomic`]; before writing, the directory must pass
//! [`state_guard::check`] (owned by root, the caller or the service user; nobody else may
//! write it).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use certs::csr::ConnectorKey;
use certs::inspect::CertInfo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use shared::fs::FsError;
use shared::identity::ConnectorIdentity;

use crate::state_guard::{self, StateDirError};

/// Largest state file read (a certificate chain and key are a few kilobytes).
const MAX_STATE_FILE: u64 = 1024 * 1024;

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Not enrolled yet.
    #[error("{0} holds no enrollment (run `edge-connector enroll` first)")]
    NotEnrolled(PathBuf),
    /// Already enrolled.
    #[error(
        "{0} is already enrolled as {1}; use another --state-dir or remove this one to re-enroll"
    )]
    AlreadyEnrolled(PathBuf, String),
    /// A file is unreadable or malformed.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] certs::Error),
    /// The directory may be written by someone else than root and the service user.
    #[error(transparent)]
    UnsafeDir(#[from] StateDirError),
    /// A link or a non-regular file stands where a state file should be.
    #[error(transparent)]
    File(#[from] FsError),
    /// Creating the directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What `connector.toml` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Our SPIFFE identity.
    pub identity: String,
    /// The runtime's HTTPS endpoint used at enrollment, `host:port`.
    pub runtime: String,
    /// The runtime's QUIC tunnel endpoint, `host:port`.
    pub quic_endpoint: String,
    /// TLS server name of the runtime.
    pub server_name: String,
    /// The pinned CA fingerprint.
    pub ca_fingerprint: String,
    /// The runtime's SSH-over-TCP tunnel endpoint, `host:port`, if it offers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_endpoint: Option<String>,
    /// The runtime's SSH host key (OpenSSH public key line), learned at enrollment over the
    /// CA-pinned HTTPS answer: the only host key the TCP transport accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_host_key: Option<String>,
}

/// The loaded identity: certificate chain and key.
pub struct Identity {
    /// Who we are.
    pub identity: ConnectorIdentity,
    /// Chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
    /// The leaf's validity and serial.
    pub cert: CertInfo,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("identity", &self.identity)
            .field("serial", &self.cert.serial_hex)
            .finish_non_exhaustive()
    }
}

/// A state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    service_user: String,
}

impl StateDir {
    /// The directory at `root`, for the packages' service user.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            service_user: state_guard::DEFAULT_SERVICE_USER.to_owned(),
        }
    }

    /// The same directory, which `service_user` (a name or a uid) may own.
    #[must_use]
    pub fn with_service_user(self, service_user: &str) -> Self {
        Self {
            service_user: service_user.to_owned(),
            ..self
        }
    }

    /// Refuses a directory someone else could plant files in.
    fn check_dir(&self) -> Result<(), StateError> {
        state_guard::check(&self.root, &self.service_user)?;
        Ok(())
    }

    /// Reads a state file, never through a link.
    fn read(path: &Path) -> Result<Vec<u8>, StateError> {
        shared::fs::read_file(path, MAX_STATE_FILE).map_err(|e| match e {
            FsError::Io { path, source } => StateError::Invalid {
                path,
                reason: source.to_string(),
            },
            other => StateError::File(other),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn config_path(&self) -> PathBuf {
        self.root.join("connector.toml")
    }

    fn ca_path(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    fn identity_path(&self) -> PathBuf {
        self.root.join("identity.pem")
    }

    fn invalid(path: &Path, reason: impl ToString) -> StateError {
        StateError::Invalid {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// Creates the directory (0700) if needed and checks it is not already enrolled.
    pub fn prepare_for_enrollment(&self) -> Result<(), StateError> {
        if let Ok(cfg) = self.config() {
            return Err(StateError::AlreadyEnrolled(self.root.clone(), cfg.identity));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .and_then(|()| fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)))
            .map_err(|source| StateError::Io {
                path: self.root.clone(),
                source,
            })?;
        self.check_dir()
    }

    /// Writes the result of an enrollment. `connector.toml` goes last: its presence means
    /// "enrolled".
    pub fn save_enrollment(
        &self,
        config: &ConnectorConfig,
        ca_pem: &str,
        chain_pem: &str,
        key: &ConnectorKey,
    ) -> Result<(), StateError> {
        self.check_dir()?;
        certs::files::write_public(&self.ca_path(), ca_pem.as_bytes())?;
        self.save_identity(chain_pem, key)?;
        let text = toml::to_string(config).map_err(|e| Self::invalid(&self.config_path(), e))?;
        certs::files::write_public(&self.config_path(), text.as_bytes())?;
        Ok(())
    }

    /// Replaces the identity (chain + key) atomically.
    pub fn save_identity(&self, chain_pem: &str, key: &ConnectorKey) -> Result<(), StateError> {
        self.check_dir()?;
        let mut both = chain_pem.to_owned();
        if !both.ends_with('\n') {
            both.push('\n');
        }
        both.push_str(&key.to_pem());
        certs::files::write_secret(&self.identity_path(), both.as_bytes())?;
        Ok(())
    }

    /// Reads `connector.toml`.
    pub fn config(&self) -> Result<ConnectorConfig, StateError> {
        let path = self.config_path();
        let bytes = shared::fs::read_file(&path, MAX_STATE_FILE).map_err(|e| match e {
            FsError::Io { .. } => StateError::NotEnrolled(self.root.clone()),
            other => StateError::File(other),
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| Self::invalid(&path, e))?;
        toml::from_str(text).map_err(|e| Self::invalid(&path, e))
    }

    /// Reads the pinned CA.
    pub fn ca_der(&self) -> Result<CertificateDer<'static>, StateError> {
        let path = self.ca_path();
        CertificateDer::from_pem_slice(&Self::read(&path)?).map_err(|e| Self::invalid(&path, e))
    }

    /// Reads the identity and checks the key matches the certificate.
    pub fn identity(&self) -> Result<Identity, StateError> {
        let path = self.identity_path();
        let pem = zeroize::Zeroizing::new(Self::read(&path)?);
        let chain = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Self::invalid(&path, e))?;
        let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| Self::invalid(&path, e))?;
        let leaf = chain
            .first()
            .ok_or_else(|| Self::invalid(&path, "no certificate"))?;
        let cert = CertInfo::from_der(leaf).map_err(|e| Self::invalid(&path, e))?;
        let identity = cert
            .identity
            .clone()
            .ok_or_else(|| Self::invalid(&path, "certificate names no connector identity"))?;
        Ok(Identity {
            identity,
            chain,
            key,
            cert,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn state_files_are_never_read_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "identity = \"x\"\n").unwrap();
        for name in ["connector.toml", "ca.pem", "identity.pem"] {
            symlink(&target, dir.path().join(name)).unwrap();
        }
        assert!(matches!(
            state.config(),
            Err(StateError::File(FsError::Symlink { .. }))
        ));
        assert!(matches!(
            state.ca_der(),
            Err(StateError::File(FsError::Symlink { .. }))
        ));
        assert!(matches!(
            state.identity(),
            Err(StateError::File(FsError::Symlink { .. }))
        ));
    }

    #[test]
    fn an_identity_is_not_saved_into_a_directory_others_may_write() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let key = ConnectorKey::generate().unwrap();
        let err = StateDir::new(dir.path())
            .save_identity("", &key)
            .unwrap_err();
        assert!(err.to_string().contains("chmod 0700"), "{err}");
        assert!(!dir.path().join("identity.pem").exists());
    }
}
