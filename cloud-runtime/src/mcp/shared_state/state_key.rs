//! The key sealing stateless confirmations (`requestState`): an HMAC key in the data
//! directory, so a retry may land on any replica that shares it.

use std::path::{Path, PathBuf};

/// Why the key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateKeyError {
    /// The key file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file does not hold a 32-byte key.
    #[error("{} is not a 32-byte key", .0.display())]
    NotAKey(PathBuf),
    /// A new key could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: certs::Error,
    },
}

/// The key sealing `requestState`.
#[derive(Clone)]
pub struct StateKey(aws_lc_rs::hmac::Key);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    /// Loads the key from `path`, creating it (0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, StateKeyError> {
        let bytes = match std::fs::read(path) {
            Ok(b) if b.len() == 32 => b,
            Ok(_) => return Err(StateKeyError::NotAKey(path.to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let b: [u8; 32] = rand::random();
                certs::files::write_secret(path, &b).map_err(|source| StateKeyError::Write {
                    path: path.to_owned(),
                    source,
                })?;
                b.to_vec()
            }
            Err(source) => {
                return Err(StateKeyError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(Self(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            &bytes,
        )))
    }

    /// The key with these 32 bytes; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == 32).then(|| {
            Self(aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                bytes,
            ))
        })
    }

    /// A key for one process (tests, benchmarks).
    pub fn ephemeral() -> Self {
        let b: [u8; 32] = rand::random();
        Self(aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &b))
    }

    /// The HMAC-SHA256 tag of `body`.
    pub fn sign(&self, body: &[u8]) -> aws_lc_rs::hmac::Tag {
        aws_lc_rs::hmac::sign(&self.0, body)
    }

    /// Whether `tag` is the tag of `body` (in constant time).
    pub fn verify(&self, body: &[u8], tag: &[u8]) -> bool {
        aws_lc_rs::hmac::verify(&self.0, body, tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_and_a_short_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.key");
        let made = StateKey::load_or_create(&path).unwrap();
        let again = StateKey::load_or_create(&path).unwrap();
        assert!(again.verify(b"x", made.sign(b"x").as_ref()));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            StateKey::load_or_create(&path),
            Err(StateKeyError::NotAKey(_))
        ));
    }
}
