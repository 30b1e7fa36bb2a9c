//! The runtime's own secret keys ([`crate::runtime_keys`]: the CA's, access-token signing,
//! request-state sealing, QUIC reset, SSH host) kept in the shared store, so every replica
//! uses the same ones, sealed with a key-encryption key the operator provides
//! (`serve --key-encryption-key-file`) and never stored beside them: a copy of the
//! database opens none of them.
//!
//! Each key is sealed with AES-256-GCM (aws-lc-rs), a random nonce per seal, and its name
//! as associated data, so a sealed key cannot be passed off under another name. The first
//! replica to start takes each key its data directory already holds (so an existing
//! install keeps its CA and its tokens valid) or makes a new one, and stores it unless
//! another replica got there first; everyone then uses the stored one.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;

use crate::store::{Store, StoreError};

/// Why a sealed key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealedKeyError {
    /// The key-encryption key file could not be read.
    #[error("reading the key-encryption key {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold 32 bytes in base64.
    #[error(
        "{} does not hold a key-encryption key: expected 32 random bytes in base64 (e.g. `head -c 32 /dev/urandom | base64 > FILE`)",
        .0.display()
    )]
    NotAKey(PathBuf),
    /// Others than its owner may read the file.
    #[error("{} is readable by group or others (mode {mode:o}): chmod 600 it", path.display())]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A stored key does not open with this key-encryption key.
    #[error(
        "the stored key {0:?} does not open with this key-encryption key (another key sealed it, or the row was altered)"
    )]
    WrongKey(String),
    /// A stored key opened but is not a key of its kind.
    #[error("the stored key {name:?} is unusable: {reason}")]
    Unusable {
        /// Which key.
        name: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key file in the data directory could not be read.
    #[error("reading {}: {source}", path.display())]
    ReadLocal {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl SealedKeyError {
    /// Whether the operator must fix the configuration (the key file, or which key).
    pub fn is_bad_configuration(&self) -> bool {
        matches!(
            self,
            Self::Read { .. } | Self::NotAKey(_) | Self::Exposed { .. } | Self::WrongKey(_)
        )
    }
}

/// The operator's key-encryption key.
pub struct KeyEncryptionKey(RandomizedNonceKey);

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(..)")
    }
}

impl KeyEncryptionKey {
    /// Reads the key from `path`: 32 bytes in base64, in a file only its owner may read.
    pub fn load(path: &Path) -> Result<Self, SealedKeyError> {
        let read = |source| SealedKeyError::Read {
            path: path.to_owned(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(SealedKeyError::Exposed {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SealedKeyError::NotAKey(path.to_owned()))?;
        Self::from_bytes(&bytes).ok_or_else(|| SealedKeyError::NotAKey(path.to_owned()))
    }

    /// A key from its 32 bytes; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 32 {
            return None;
        }
        RandomizedNonceKey::new(&AES_256_GCM, bytes).ok().map(Self)
    }

    /// `plain` sealed under `name`: nonce, then ciphertext and tag.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Vec<u8> {
        let mut body = plain.to_vec();
        match self
            .0
            .seal_in_place_append_tag(Aad::from(name.as_bytes()), &mut body)
        {
            Ok(nonce) => {
                let mut out = nonce.as_ref().to_vec();
                out.extend_from_slice(&body);
                out
            }
            // Sealing fails only for inputs beyond GCM's limit (64 GiB), which keys are not.
            Err(_) => Vec::new(),
        }
    }

    /// The plain key `sealed` holds, if this key sealed it under `name`.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// The key `name` from `store`; if none is stored yet, the one in `local` (the data
/// directory's file, from before keys moved to the store) or else a new one from `make`,
/// stored unless another replica stored one first.
pub async fn load_or_create(
    store: &Store,
    kek: &KeyEncryptionKey,
    name: &str,
    local: &Path,
    make: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, SealedKeyError> {
    if store.sealed_key(name).await?.is_none() {
        let plain = match std::fs::read(local) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => make(),
            Err(source) => {
                return Err(SealedKeyError::ReadLocal {
                    path: local.to_owned(),
                    source,
                });
            }
        };
        store
            .put_sealed_key_if_absent(name, kek.seal(name, &plain))
            .await?;
    }
    let sealed = store
        .sealed_key(name)
        .await?
        .ok_or_else(|| SealedKeyError::WrongKey(name.to_owned()))?;
    kek.open(name, &sealed)
        .ok_or_else(|| SealedKeyError::WrongKey(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> KeyEncryptionKey {
        KeyEncryptionKey::from_bytes(&rand::random::<[u8; 32]>()).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_key_and_name() {
        let k = kek();
        let sealed = k.seal("token-signing", b"secret");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            k.open("token-signing", &sealed).as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(k.open("request-state", &sealed), None, "another name");
        assert_eq!(kek().open("token-signing", &sealed), None, "another key");
        let mut altered = sealed.clone();
        if let Some(b) = altered.last_mut() {
            *b ^= 1;
        }
        assert_eq!(k.open("token-signing", &altered), None, "altered");
        assert_eq!(k.open("token-signing", &sealed[..5]), None, "truncated");
        assert_ne!(
            k.seal("token-signing", b"secret"),
            sealed,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn the_key_file_must_be_32_private_base64_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        let write = |text: &str, mode: u32| {
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let good = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        write(&format!("{good}\n"), 0o600);
        assert!(KeyEncryptionKey::load(&path).is_ok());
        write(&good, 0o644);
        assert!(matches!(
            KeyEncryptionKey::load(&path),
            Err(SealedKeyError::Exposed { .. })
        ));
        write(
            &base64::engine::general_purpose::STANDARD.encode([7u8; 16]),
            0o600,
        );
        assert!(matches!(
            KeyEncryptionKey::load(&path),
            Err(SealedKeyError::NotAKey(_))
        ));
        write("not base64 at all", 0o600);
        assert!(matches!(
            KeyEncryptionKey::load(&path),
            Err(SealedKeyError::NotAKey(_))
        ));
    }

    #[tokio::test]
    async fn replicas_share_one_key_and_an_existing_file_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::test_store(dir.path()).await;
        let k = kek();
        let local = dir.path().join("token-signing.key");
        std::fs::write(&local, b"the install's key").unwrap();
        let first = load_or_create(&store, &k, "token-signing", &local, || b"new".to_vec())
            .await
            .unwrap();
        assert_eq!(first, b"the install's key");
        // Another replica, without the file, gets the same key.
        let elsewhere = dir.path().join("absent.key");
        let second = load_or_create(&store, &k, "token-signing", &elsewhere, || b"new".to_vec())
            .await
            .unwrap();
        assert_eq!(second, first);
        // A key made fresh when there is no file.
        let made = load_or_create(&store, &k, "request-state", &elsewhere, || b"made".to_vec())
            .await
            .unwrap();
        assert_eq!(made, b"made");
        // Another key-encryption key opens nothing.
        assert!(matches!(
            load_or_create(&store, &kek(), "token-signing", &elsewhere, Vec::new).await,
            Err(SealedKeyError::WrongKey(_))
        ));
    }
}
