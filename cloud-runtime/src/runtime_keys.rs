//! Where `serve` takes its own secret keys from: the CA's key (it signs connectors'
//! certificates at enrollment and renewal), the access-token signing key, the key sealing
//! stateless confirmations, the QUIC stateless-reset secret and the SSH host key.
//!
//! A single process reads them from its data directory. Given the operator's
//! key-encryption key, replicas take them from the shared store, sealed
//! ([`crate::sealed_keys`]): the first replica imports the data directory's files (so an
//! existing install keeps its CA, its tokens and its host key) or makes the ones a
//! runtime may make itself, and every replica then uses the same keys. What stays in each
//! replica's data directory is public (the CA certificate) or its own (its HTTPS
//! certificate, signed by the shared CA).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use certs::CertificateAuthority;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{PrivateKey, ssh_key::private::Ed25519Keypair};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::data_dir::{DataDir, RuntimeConfig};
use crate::mcp::shared_state::state_key::{StateKey, StateKeyError};
use crate::oauth::signer::{SignerCell, SignerKeyError, TokenSigner};
use crate::sealed_keys::{self, KeyEncryptionKey, SealedKeyError};
use crate::store::Store;
use crate::tunnel::ssh_listener::{self, HostKeyError};

/// Names of the sealed keys in the store.
mod names {
    pub const CA: &str = "ca-key";
    pub const TOKEN_SIGNING: &str = "token-signing";
    pub const TOKEN_SIGNING_PREVIOUS: &str = "token-signing-previous";
    pub const REQUEST_STATE: &str = "request-state";
    pub const QUIC_RESET: &str = "quic-reset";
    pub const SSH_HOST: &str = "ssh-host-key";
}

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The sealed keys could not be read or stored.
    #[error(transparent)]
    Sealed(#[from] SealedKeyError),
    /// The signing key file is unusable.
    #[error(transparent)]
    Signer(#[from] SignerKeyError),
    /// The request-state key file is unusable.
    #[error(transparent)]
    StateKey(#[from] StateKeyError),
    /// The SSH host key file is unusable.
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
    /// A key file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another rotation replaced the key while this one was being made.
    #[error(
        "the token-signing key changed while it was being rotated (another rotation?); run it again"
    )]
    Raced,
    /// A key the runtime cannot make is neither in the store nor in the data directory.
    #[error(
        "the {what} is neither in the store nor at {}: start the first replica on a data directory made by `cloud-runtime init`",
        path.display()
    )]
    Missing {
        /// Which key.
        what: &'static str,
        /// Where it was looked for.
        path: std::path::PathBuf,
    },
}

impl KeysError {
    /// Whether the operator must fix the configuration.
    pub fn is_bad_configuration(&self) -> bool {
        match self {
            Self::Sealed(e) => e.is_bad_configuration(),
            Self::Missing { .. } => true,
            _ => false,
        }
    }
}

/// The runtime's secret keys.
pub struct RuntimeKeys {
    ca_pem: String,
    ca_key: zeroize::Zeroizing<String>,
    trust_domain: String,
    /// Signs and verifies access tokens.
    pub signer: TokenSigner,
    /// Seals stateless confirmations.
    pub state_key: StateKey,
    /// The QUIC stateless-reset secret.
    pub reset_secret: Vec<u8>,
    /// The SSH host key, when the SSH tunnel is on.
    pub ssh_host_key: Option<PrivateKey>,
    /// The key-encryption key the keys were opened with, when they are in the store (the
    /// token-signing key is then followed there: [`follow_token_signing`]).
    pub sealed_under: Option<KeyEncryptionKey>,
}

impl std::fmt::Debug for RuntimeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeKeys").finish_non_exhaustive()
    }
}

fn unusable(name: &str, reason: impl ToString) -> SealedKeyError {
    SealedKeyError::Unusable {
        name: name.to_owned(),
        reason: reason.to_string(),
    }
}

impl RuntimeKeys {
    /// The CA (one instance per user: enrollment, renewal).
    pub fn ca(&self) -> Result<CertificateAuthority, KeysError> {
        CertificateAuthority::from_pem(&self.ca_pem, &self.ca_key, &self.trust_domain)
            .map_err(|e| unusable(names::CA, e).into())
    }

    /// The keys of the runtime in `dir`: from `store`, sealed under the key-encryption key
    /// at `kek`, if one is given, else from `dir`'s files. `ssh`: the SSH tunnel is on.
    pub async fn load(
        dir: &DataDir,
        config: &RuntimeConfig,
        store: &Store,
        kek: Option<&Path>,
        ssh: bool,
    ) -> Result<Self, KeysError> {
        let Some(path) = kek else {
            let reset_secret =
                std::fs::read(dir.reset_key()).map_err(|source| KeysError::Read {
                    path: dir.reset_key(),
                    source,
                })?;
            let read = |path: std::path::PathBuf| {
                std::fs::read_to_string(&path).map_err(|source| KeysError::Read { path, source })
            };
            return Ok(Self {
                ca_pem: read(dir.root().join("ca.pem"))?,
                ca_key: zeroize::Zeroizing::new(read(dir.root().join("ca.key"))?),
                trust_domain: config.trust_domain.clone(),
                signer: TokenSigner::load_or_create(&dir.token_key())?,
                state_key: StateKey::load_or_create(&dir.request_state_key())?,
                reset_secret,
                ssh_host_key: ssh
                    .then(|| ssh_listener::load_or_create_host_key(&dir.ssh_host_key()))
                    .transpose()?,
                sealed_under: None,
            });
        };
        let kek = KeyEncryptionKey::load(path)?;

        let ca_key = imported(store, &kek, names::CA, &dir.root().join("ca.key"), "CA key").await?;
        let ca_pem = dir.root().join("ca.pem");
        let ca_pem = std::fs::read_to_string(&ca_pem).map_err(|source| KeysError::Read {
            path: ca_pem,
            source,
        })?;
        let ca_key = zeroize::Zeroizing::new(String::from_utf8_lossy(&ca_key).into_owned());

        let fresh = TokenSigner::generate_pem()?;
        sealed_keys::load_or_create(store, &kek, names::TOKEN_SIGNING, &dir.token_key(), || {
            fresh.into_bytes()
        })
        .await?;
        let (_, signer) = token_signer(store, &kek).await?;

        let state = sealed_keys::load_or_create(
            store,
            &kek,
            names::REQUEST_STATE,
            &dir.request_state_key(),
            || rand::random::<[u8; 32]>().to_vec(),
        )
        .await?;
        let state_key = StateKey::from_bytes(&state)
            .ok_or_else(|| unusable(names::REQUEST_STATE, "not a 32-byte key"))?;

        let reset_secret = imported(
            store,
            &kek,
            names::QUIC_RESET,
            &dir.reset_key(),
            "QUIC stateless-reset secret",
        )
        .await?;

        let ssh_host_key = if ssh {
            let made = PrivateKey::from(Ed25519Keypair::from_seed(&rand::random()))
                .to_openssh(LineEnding::LF)
                .map_err(|e| unusable(names::SSH_HOST, e))?;
            let text = sealed_keys::load_or_create(
                store,
                &kek,
                names::SSH_HOST,
                &dir.ssh_host_key(),
                || made.as_bytes().to_vec(),
            )
            .await?;
            Some(PrivateKey::from_openssh(&text).map_err(|e| unusable(names::SSH_HOST, e))?)
        } else {
            None
        };
        info!("the CA, signing, request-state, reset and host keys come from the store, sealed");
        let keys = Self {
            ca_pem,
            ca_key,
            trust_domain: config.trust_domain.clone(),
            signer,
            state_key,
            reset_secret,
            ssh_host_key,
            sealed_under: Some(kek),
        };
        // A stored CA key that is not this CA certificate's is refused here, at start.
        keys.ca()?;
        Ok(keys)
    }
}

/// How often a replica looks for a rotated token-signing key in the store.
pub const TOKEN_KEY_POLL: Duration = Duration::from_millis(500);

/// The token signer of the sealed keys in `store` (the current key, accepting the
/// previous one's tokens), with the current key's sealed bytes, which change only when it
/// rotates.
async fn token_signer(
    store: &Store,
    kek: &KeyEncryptionKey,
) -> Result<(Vec<u8>, TokenSigner), KeysError> {
    let open = |name: &str, sealed: &[u8]| {
        kek.open(name, sealed)
            .map(|plain| String::from_utf8_lossy(&plain).into_owned())
            .ok_or_else(|| SealedKeyError::WrongKey(name.to_owned()))
    };
    let sealed = store
        .sealed_key(names::TOKEN_SIGNING)
        .await
        .map_err(SealedKeyError::from)?
        .ok_or_else(|| SealedKeyError::WrongKey(names::TOKEN_SIGNING.to_owned()))?;
    let mut signer = TokenSigner::from_pem(&open(names::TOKEN_SIGNING, &sealed)?)
        .map_err(|r| unusable(names::TOKEN_SIGNING, r))?;
    if let Some(previous) = store
        .sealed_key(names::TOKEN_SIGNING_PREVIOUS)
        .await
        .map_err(SealedKeyError::from)?
    {
        signer = signer
            .accepting(&open(names::TOKEN_SIGNING_PREVIOUS, &previous)?)
            .map_err(|r| unusable(names::TOKEN_SIGNING_PREVIOUS, r))?;
    }
    Ok((sealed, signer))
}

/// Replaces the token-signing key in `store` with a new one, keeping the replaced key to
/// accept the tokens it signed until they expire (ten minutes; the one before it is
/// dropped). Every replica takes the new key within [`TOKEN_KEY_POLL`]. Returns the old and
/// the new key's ids.
pub async fn rotate_token_signing(
    store: &Store,
    kek: &KeyEncryptionKey,
) -> Result<(String, String), KeysError> {
    let (sealed, current) = token_signer(store, kek).await?;
    let plain = kek
        .open(names::TOKEN_SIGNING, &sealed)
        .ok_or_else(|| SealedKeyError::WrongKey(names::TOKEN_SIGNING.to_owned()))?;
    let fresh = TokenSigner::generate_pem()?;
    let next = TokenSigner::from_pem(&fresh).map_err(|r| unusable(names::TOKEN_SIGNING, r))?;
    let swapped = store
        .rotate_sealed_key(
            names::TOKEN_SIGNING,
            &sealed,
            kek.seal(names::TOKEN_SIGNING, fresh.as_bytes()),
            names::TOKEN_SIGNING_PREVIOUS,
            kek.seal(names::TOKEN_SIGNING_PREVIOUS, &plain),
        )
        .await
        .map_err(SealedKeyError::from)?;
    if !swapped {
        return Err(KeysError::Raced);
    }
    Ok((current.kid().to_owned(), next.kid().to_owned()))
}

/// Keeps `cell` on the token-signing key in `store` until `shutdown`: a rotation at any
/// replica reaches this one within [`TOKEN_KEY_POLL`].
pub async fn follow_token_signing(
    store: Store,
    kek: KeyEncryptionKey,
    cell: Arc<SignerCell>,
    shutdown: CancellationToken,
) {
    let mut seen = match store.sealed_key(names::TOKEN_SIGNING).await {
        Ok(sealed) => sealed,
        Err(e) => {
            warn!(error = %e, "reading the token-signing key");
            None
        }
    };
    let mut tick = tokio::time::interval(TOKEN_KEY_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let now = match store.sealed_key(names::TOKEN_SIGNING).await {
            Ok(now) => now,
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    warn!(error = %e, "cannot read the token-signing key; keeping the current one");
                }
                continue;
            }
        };
        if now == seen {
            failing = false;
            continue;
        }
        match token_signer(&store, &kek).await {
            Ok((sealed, signer)) => {
                info!(
                    kid = signer.kid(),
                    "token-signing key rotated; tokens of the previous key stay good until they expire"
                );
                cell.replace(signer);
                seen = Some(sealed);
                failing = false;
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    warn!(error = %e, "the rotated token-signing key is unusable; keeping the current one");
                }
            }
        }
    }
}

/// A key only `init` makes: from the store, or imported from `local`.
async fn imported(
    store: &Store,
    kek: &KeyEncryptionKey,
    name: &str,
    local: &Path,
    what: &'static str,
) -> Result<Vec<u8>, KeysError> {
    if store
        .sealed_key(name)
        .await
        .map_err(SealedKeyError::from)?
        .is_none()
        && !local.exists()
    {
        return Err(KeysError::Missing {
            what,
            path: local.to_owned(),
        });
    }
    // The file exists (or the key is stored), so `make` is never called.
    Ok(sealed_keys::load_or_create(store, kek, name, local, Vec::new).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn a_replica_without_key_files_gets_the_first_replica_s_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let store = crate::store::test_store(tmp.path()).await;
        let kek = tmp.path().join("kek");
        std::fs::write(
            &kek,
            base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
        )
        .unwrap();
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();

        let first = DataDir::new(tmp.path().join("one"));
        first.init("localhost", None).unwrap();
        let config = first.config().unwrap();
        let one = RuntimeKeys::load(&first, &config, &store, Some(&kek), true)
            .await
            .unwrap();

        // The second replica's data directory holds the CA certificate and nothing secret.
        let second = DataDir::new(tmp.path().join("two"));
        std::fs::create_dir_all(second.root()).unwrap();
        std::fs::copy(first.root().join("ca.pem"), second.root().join("ca.pem")).unwrap();
        let two = RuntimeKeys::load(&second, &config, &store, Some(&kek), true)
            .await
            .unwrap();
        assert_eq!(
            one.ca().unwrap().fingerprint(),
            two.ca().unwrap().fingerprint()
        );
        assert_eq!(one.reset_secret, two.reset_secret);
        assert_eq!(
            one.ssh_host_key.map(|k| k.public_key().clone()),
            two.ssh_host_key.map(|k| k.public_key().clone())
        );
        assert!(!second.root().join("ca.key").exists());

        // Another CA certificate beside the sealed key is refused at start.
        let third = DataDir::new(tmp.path().join("three"));
        third.init("localhost", None).unwrap();
        std::fs::remove_file(third.root().join("ca.key")).unwrap();
        assert!(
            RuntimeKeys::load(&third, &config, &store, Some(&kek), false)
                .await
                .is_err()
        );
    }
}
