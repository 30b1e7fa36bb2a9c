//! The audit signing key: Ed25519 (aws-lc-rs), separate from the connector's TLS identity so
//! that renewing the certificate never changes who signs the log. It is made at `enroll`
//! (or at the first start of a connector enrolled before the log existed) and kept as the
//! vault key and `identity.pem` are: a 0600 file in the state directory, written
//! atomically, never read through a link, refused when others may read it.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use shared::fs::{Owner, WriteOptions};
use zeroize::Zeroizing;

use super::AuditError;
use super::record::{seal_message, sha256_hex};

/// Largest key file read (a PEM of 80-odd bytes of PKCS#8).
const MAX_KEY_BYTES: u64 = 16 * 1024;

/// The key the connector signs its log with.
pub struct AuditKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("public", &self.public().to_string())
            .finish_non_exhaustive()
    }
}

/// The public half, which verifies seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(Vec<u8>);

impl PublicKey {
    /// `sha256:<hex>` of the raw key: what each seal names.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", sha256_hex(&self.0))
    }

    /// Whether `sig` (base64) is this key's signature of the head `head_seq`/`head`.
    pub fn verifies(&self, head_seq: u64, head: &str, sig: &str) -> bool {
        let Ok(sig) = STANDARD.decode(sig) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&seal_message(head_seq, head), &sig)
            .is_ok()
    }
}

impl PublicKey {
    /// Whether `sig` (base64) is this key's signature of `message` (a receipt).
    pub fn verifies_message(&self, message: &[u8], sig: &str) -> bool {
        let Ok(sig) = STANDARD.decode(sig) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, &sig)
            .is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    /// `ed25519:<base64>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ed25519:{}", STANDARD.encode(&self.0))
    }
}

/// Why a public key given on the command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an audit public key is ed25519:<base64 of 32 bytes> (as `edge-connector audit key` prints)"
)]
pub struct BadPublicKey;

impl std::str::FromStr for PublicKey {
    type Err = BadPublicKey;
    fn from_str(s: &str) -> Result<Self, BadPublicKey> {
        let raw = s
            .strip_prefix("ed25519:")
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|k| k.len() == 32)
            .ok_or(BadPublicKey)?;
        Ok(Self(raw))
    }
}

impl AuditKey {
    /// A new random key.
    pub fn generate() -> Result<Self, AuditError> {
        let pair = Ed25519KeyPair::generate().map_err(|_| AuditError::Key {
            path: PathBuf::new(),
            reason: "the random generator failed".into(),
        })?;
        Ok(Self { pair })
    }

    /// Another handle on the same key.
    pub fn try_clone(&self) -> Result<Self, AuditError> {
        let unusable = || AuditError::Key {
            path: PathBuf::new(),
            reason: "cannot copy the key".into(),
        };
        let der = self.pair.to_pkcs8().map_err(|_| unusable())?;
        let pair = Ed25519KeyPair::from_pkcs8(der.as_ref()).map_err(|_| unusable())?;
        Ok(Self { pair })
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.pair.public_key().as_ref().to_vec())
    }

    /// Signs the chain head `head_seq`/`head`, base64.
    pub fn seal(&self, head_seq: u64, head: &str) -> String {
        STANDARD.encode(self.pair.sign(&seal_message(head_seq, head)).as_ref())
    }

    /// Signs a call's receipt ([`shared::receipt::message`]), base64.
    pub fn sign_receipt(&self, message: &[u8]) -> String {
        STANDARD.encode(self.pair.sign(message).as_ref())
    }

    /// Reads the key at `path`, never through a link.
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let key_err = |reason: String| AuditError::Key {
            path: path.to_owned(),
            reason,
        };
        let file = shared::fs::open_read(path).map_err(|e| {
            if e.is_not_found() {
                key_err("missing (it is made by `edge-connector enroll` or the first `run`)".into())
            } else {
                key_err(e.to_string())
            }
        })?;
        let meta = file.metadata().map_err(|e| key_err(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(key_err(format!(
                "mode {:o} lets others read the audit key; run chmod 600 on it",
                meta.permissions().mode() & 0o777
            )));
        }
        let mut pem = Zeroizing::new(Vec::new());
        file.take(MAX_KEY_BYTES)
            .read_to_end(&mut pem)
            .map_err(|e| key_err(e.to_string()))?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(&pem)
            .map_err(|_| key_err("not a PKCS#8 PEM private key".into()))?;
        let pair = Ed25519KeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|_| key_err("not an Ed25519 key".into()))?;
        Ok(Self { pair })
    }

    /// Writes the key to `path` (0600, atomically, given to `owner` when root writes it for
    /// the service user).
    pub fn save(&self, path: &Path, owner: Option<Owner>) -> Result<(), AuditError> {
        let key_err = |reason: String| AuditError::Key {
            path: path.to_owned(),
            reason,
        };
        let der = self
            .pair
            .to_pkcs8()
            .map_err(|_| key_err("cannot encode the key".into()))?;
        let body = Zeroizing::new(STANDARD.encode(der.as_ref()));
        let mut pem = Zeroizing::new(String::from("-----BEGIN PRIVATE KEY-----\n"));
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        let options = WriteOptions::mode(0o600).owned_by(owner);
        shared::fs::write_atomic(path, pem.as_bytes(), &options).map_err(|e| key_err(e.to_string()))
    }

    /// The key at `path`, made and saved first when there is none. Returns it and whether
    /// it was made.
    pub fn load_or_create(path: &Path, owner: Option<Owner>) -> Result<(Self, bool), AuditError> {
        match shared::fs::open_read(path) {
            Err(e) if e.is_not_found() => {
                let key = Self::generate()?;
                key.save(path, owner)?;
                Ok((key, true))
            }
            _ => Ok((Self::load(path)?, false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_key_loads_back_and_its_seals_verify_only_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let (key, made) = AuditKey::load_or_create(&path, None).unwrap();
        assert!(made);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, made) = AuditKey::load_or_create(&path, None).unwrap();
        assert!(!made);
        assert_eq!(again.public(), key.public());
        let sig = key.seal(5, "ab");
        assert!(key.public().verifies(5, "ab", &sig));
        assert!(!key.public().verifies(6, "ab", &sig));
        let other = AuditKey::generate().unwrap();
        assert!(!other.public().verifies(5, "ab", &sig));
        let printed = key.public().to_string();
        assert_eq!(printed.parse::<PublicKey>().unwrap(), key.public());
        assert!("ed25519:AAAA".parse::<PublicKey>().is_err());
    }

    #[test]
    fn a_key_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        AuditKey::load_or_create(&path, None).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = AuditKey::load(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
}
