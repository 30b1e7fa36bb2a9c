//! The vault's key: an age X25519 identity, from a systemd credential
//! (`$CREDENTIALS_DIRECTORY/<name>`, set up by `LoadCredential=` or `LoadCredentialEncrypted=`)
//! or from a file that only its owner may read.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use age::x25519::Identity;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::VaultError;
use crate::config::VaultConfig;

/// Largest key file read (an identity is one line; comments make it a few hundred bytes).
const MAX_KEY_BYTES: u64 = 64 * 1024;

/// Where the key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A systemd credential (read-only: rotate it with systemd-creds).
    Credential(PathBuf),
    /// A file the connector may replace.
    File(PathBuf),
}

impl KeySource {
    /// The path.
    pub fn path(&self) -> &Path {
        match self {
            KeySource::Credential(p) | KeySource::File(p) => p,
        }
    }
}

/// Where the key is, without reading it: the credential if systemd passed one, else the
/// configured file.
pub fn locate(config: &VaultConfig) -> Result<KeySource, VaultError> {
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let p = Path::new(&dir).join(&config.identity_credential);
        if p.exists() {
            return Ok(KeySource::Credential(p));
        }
    }
    config
        .identity_file
        .clone()
        .map(KeySource::File)
        .ok_or(VaultError::NoKey)
}

/// Reads the key at `source`, never through a symbolic link.
pub fn load(source: &KeySource) -> Result<Identity, VaultError> {
    let path = source.path();
    let io = |e: std::io::Error| VaultError::Key {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let file = shared::fs::open_read(path).map_err(|e| match e {
        e if e.is_not_found() => VaultError::KeyMissing(path.to_owned()),
        shared::fs::FsError::Io { source, .. } => io(source),
        other => VaultError::File(other),
    })?;
    let meta = file.metadata().map_err(io)?;
    if matches!(source, KeySource::File(_)) && meta.permissions().mode() & 0o077 != 0 {
        return Err(VaultError::Key {
            path: path.to_owned(),
            reason: format!(
                "mode {:o} lets others read the vault key; run chmod 600 on it",
                meta.permissions().mode() & 0o777
            ),
        });
    }
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_KEY_BYTES)
        .read_to_string(&mut text)
        .map_err(io)?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .ok_or_else(|| VaultError::Key {
            path: path.to_owned(),
            reason: "no AGE-SECRET-KEY-1 line: not an age identity file".into(),
        })?;
    line.parse::<Identity>().map_err(|_| VaultError::Key {
        path: path.to_owned(),
        reason: "the AGE-SECRET-KEY-1 line does not parse".into(),
    })
}

/// The text of an identity file for `identity`.
pub fn file_text(identity: &Identity) -> Zeroizing<String> {
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Zeroizing::new(format!(
        "# edge-connector vault key, created {created}\n# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    ))
}

/// Writes a new key to `path` (0600, atomically) and returns it.
pub fn create(path: &Path) -> Result<Identity, VaultError> {
    let identity = Identity::generate();
    write(path, &identity)?;
    Ok(identity)
}

/// Replaces the key file at `path` with `identity`.
pub fn write(path: &Path, identity: &Identity) -> Result<(), VaultError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| VaultError::Key {
            path: dir.to_owned(),
            reason: e.to_string(),
        })?;
    }
    let options = shared::fs::WriteOptions::mode(0o600);
    shared::fs::write_atomic(path, file_text(identity).as_bytes(), &options).map_err(|e| match e {
        shared::fs::FsError::Io { source, .. } => VaultError::Key {
            path: path.to_owned(),
            reason: source.to_string(),
        },
        other => VaultError::File(other),
    })
}
