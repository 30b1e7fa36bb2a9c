//! The runtime's data directory: what `init` creates and `serve` reads.
//!
//! ```text
//! DIR/                 0700
//!   runtime.toml       hostname and trust domain
//!   ca.pem  ca.key     the runtime CA (key 0600)
//!   server.pem         server certificate chain for QUIC and HTTPS
//!   server.key         its key (0600)
//!   quic-reset.key     QUIC stateless-reset secret (0600): lets a restarted runtime tell
//!                      connectors at once that their old connection is gone
//!   token-signing.key  ES256 key of OAuth access tokens (0600), made on first serve
//!   request-state.key  HMAC key sealing stateless confirmations (0600), made on first serve
//!   audit.log          the hash-chained audit trail (0600); audit.head its checkpoint
//!   runtime.db         SQLite store
//!   admin.sock         local admin socket of a running `serve` (0600)
//! ```

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use certs::CertificateAuthority;
use serde::{Deserialize, Serialize};
use shared::identity::TrustDomain;

use crate::config_error::ConfigError;
use crate::store::{DatabaseUrl, Store, StoreError};

/// Why a data directory could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// Bad configuration (see [`ConfigError`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `init` on a directory that already holds a CA.
    #[error(
        "{} is already initialized (found runtime.toml); refusing to replace its CA",
        .0.display()
    )]
    AlreadyInitialized(PathBuf),
    /// A directory or file could not be made.
    #[error("creating {}", path.display())]
    Create {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Setting the directory's permissions failed.
    #[error(transparent)]
    Permissions(std::io::Error),
    /// Making, saving or issuing a certificate or key failed.
    #[error(transparent)]
    Certs(#[from] certs::Error),
    /// The CA could not be loaded.
    #[error("loading the CA from {}", root.display())]
    LoadCa {
        /// The data directory.
        root: PathBuf,
        /// Why.
        #[source]
        source: certs::Error,
    },
    /// The settings could not be written as TOML.
    #[error(transparent)]
    Serialize(#[from] toml::ser::Error),
    /// The store could not be opened.
    #[error("opening the store at {url}")]
    Store {
        /// The database (password hidden when printed).
        url: DatabaseUrl,
        /// Why.
        #[source]
        source: StoreError,
    },
}

impl DataDirError {
    /// Whether an operator must fix the configuration (exit status 64).
    pub fn is_bad_configuration(&self) -> bool {
        matches!(self, DataDirError::Config(_))
    }
}

/// Settings fixed at `init`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Public hostname (DNS name or IP) connectors and clients use.
    pub hostname: String,
    /// SPIFFE trust domain of connector identities.
    pub trust_domain: String,
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    database: Option<DatabaseUrl>,
}

impl DataDir {
    /// A data directory at `root` (not yet checked).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            database: None,
        }
    }

    /// The same data directory with its store in `database` (a shared PostgreSQL database)
    /// rather than the SQLite file inside it; `None` keeps the file.
    pub fn with_database(self, database: Option<DatabaseUrl>) -> Self {
        Self { database, ..self }
    }

    /// Where the store is: `--database-url`, or the SQLite file in the directory.
    pub fn database(&self) -> DatabaseUrl {
        self.database
            .clone()
            .unwrap_or_else(|| DatabaseUrl::Sqlite(self.db_path()))
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn config_path(&self) -> PathBuf {
        self.root.join("runtime.toml")
    }

    /// SQLite store.
    pub fn db_path(&self) -> PathBuf {
        self.root.join("runtime.db")
    }

    /// Admin socket.
    pub fn admin_socket(&self) -> PathBuf {
        self.root.join("admin.sock")
    }

    /// Server certificate chain.
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("server.pem")
    }

    /// Server key.
    pub fn server_key(&self) -> PathBuf {
        self.root.join("server.key")
    }

    /// Access-token signing key.
    pub fn token_key(&self) -> PathBuf {
        self.root.join("token-signing.key")
    }

    /// Key sealing stateless confirmation state.
    pub fn request_state_key(&self) -> PathBuf {
        self.root.join("request-state.key")
    }

    /// The audit log (its head checkpoint is `audit.head` beside it).
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.log")
    }

    /// The SSH tunnel's host key (made at the first `serve --ssh-listen`).
    pub fn ssh_host_key(&self) -> PathBuf {
        self.root.join("ssh-host-ed25519.key")
    }

    /// QUIC stateless-reset secret.
    pub fn reset_key(&self) -> PathBuf {
        self.root.join("quic-reset.key")
    }

    /// Creates the CA, the server certificate and the config. Refuses to overwrite an
    /// existing data directory: a new CA would orphan every enrolled connector.
    pub fn init(
        &self,
        hostname: &str,
        trust_domain: Option<&str>,
    ) -> Result<CertificateAuthority, DataDirError> {
        if self.config_path().exists() {
            return Err(DataDirError::AlreadyInitialized(self.root.clone()));
        }
        validate_hostname(hostname)?;
        let trust_domain = match trust_domain {
            Some(td) => td.to_owned(),
            None if hostname.parse::<std::net::IpAddr>().is_err() => hostname.to_ascii_lowercase(),
            None => "runtime.local".to_owned(),
        };
        if let Err(source) = trust_domain.parse::<TrustDomain>() {
            return Err(ConfigError::TrustDomain {
                value: trust_domain,
                source,
            }
            .into());
        }

        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|source| DataDirError::Create {
                path: self.root.clone(),
                source,
            })?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .map_err(DataDirError::Permissions)?;

        let (ca, ca_key) = CertificateAuthority::create(&trust_domain)?;
        ca.save(&self.root, &ca_key)?;
        let mut names = vec![hostname.to_owned()];
        if hostname == "localhost" {
            names.extend(["127.0.0.1".to_owned(), "::1".to_owned()]);
        }
        let (server, server_key) = ca.issue_server(&names)?;
        certs::files::write_secret(&self.server_key(), server_key.as_bytes())?;
        certs::files::write_public(&self.server_cert(), server.chain_pem.as_bytes())?;
        let reset: [u8; 32] = rand::random();
        certs::files::write_secret(&self.reset_key(), &reset)?;
        let config = RuntimeConfig {
            hostname: hostname.to_owned(),
            trust_domain,
        };
        // Written last: its presence means "initialized".
        certs::files::write_public(&self.config_path(), toml::to_string(&config)?.as_bytes())?;
        Ok(ca)
    }

    /// Reads the config.
    pub fn config(&self) -> Result<RuntimeConfig, ConfigError> {
        let path = self.config_path();
        let text = fs::read_to_string(&path).map_err(|source| ConfigError::NotInitialized {
            root: self.root.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Unparseable { path, source })
    }

    /// Loads the CA.
    pub fn ca(&self, config: &RuntimeConfig) -> Result<CertificateAuthority, DataDirError> {
        CertificateAuthority::load(&self.root, &config.trust_domain).map_err(|source| {
            DataDirError::LoadCa {
                root: self.root.clone(),
                source,
            }
        })
    }

    /// The fingerprint of the CA certificate connectors pin: from `ca.pem` alone, which
    /// every replica has (the CA's key may be sealed in the store instead).
    pub fn ca_fingerprint(&self) -> Result<certs::Fingerprint, DataDirError> {
        certs::files::read_to_string(&self.root.join("ca.pem"))
            .and_then(|pem| certs::inspect::CertInfo::from_pem(&pem))
            .map(|c| c.fingerprint)
            .map_err(|source| DataDirError::LoadCa {
                root: self.root.clone(),
                source,
            })
    }

    /// Opens the store.
    pub async fn store(&self) -> Result<Store, DataDirError> {
        let url = self.database();
        Store::connect(&url)
            .await
            .map_err(|source| DataDirError::Store { url, source })
    }
}

fn validate_hostname(h: &str) -> Result<(), ConfigError> {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Hostname(h.to_owned()))
    }
}
