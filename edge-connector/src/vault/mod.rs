//! The vault: every credential the connector holds (OAuth client secrets, users' access and
//! refresh tokens, admin-provided tokens), in one age-encrypted file in the state directory.
//! Secrets never leave the connector (DESIGN invariant 2): nothing here is sent on the
//! tunnel, logged, or put in an error message.
//!
//! - The key is an age X25519 identity ([`identity`]): a systemd credential or a 0600 file.
//! - Every change is a read-modify-write under an exclusive lock on `vault.lock`, written
//!   through [`shared::fs::write_atomic`] (random `O_EXCL|O_NOFOLLOW` temporary file,
//!   fsync, rename over `vault.age`, directory fsync), so a crash (kill -9 included) at any
//!   moment leaves the old vault or the new one.
//! - The state directory is checked first ([`crate::state_guard`]), and no file in it is
//!   opened through a symbolic link: the service user, who owns the directory, cannot turn
//!   `vault set` run as root against a file of root's. Files root creates there are handed
//!   to the directory's owner through their descriptor.
//! - Reads decrypt only when the file changed since the last read (same inode, size and
//!   modification time), so the running connector sees `vault set` at once.
//! - `rotate-key` re-encrypts to the old and the new key before it replaces the key file,
//!   and to the new key alone after, so every crash point leaves a vault its key opens.

pub mod entry;
pub mod identity;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use age::x25519::Identity;
use serde::{Deserialize, Serialize};
use shared::clock::now_ms;
use shared::fs::{FsError, Owner, WriteOptions};
use zeroize::Zeroizing;

use entry::StoredEntry;
pub use entry::{Entry, EntryInfo, EntryKind, EntryName};
use identity::KeySource;

use crate::config::Config;
use crate::state_guard::{self, StateDirError};

/// Largest vault file read.
const MAX_VAULT_BYTES: u64 = 64 * 1024 * 1024;
/// The plaintext format.
const FORMAT_VERSION: u32 = 1;

/// Why the vault cannot be used. Messages name files and causes, never secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// No key is configured.
    #[error("no vault key configured (set vault.identity_file, or pass a systemd credential)")]
    NoKey,
    /// The key file does not exist.
    #[error("vault key {0} does not exist; create it with `edge-connector vault init`")]
    KeyMissing(PathBuf),
    /// The key cannot be used.
    #[error("vault key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The vault file cannot be read or written.
    #[error("vault {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The vault does not decrypt with this key, or its content is damaged.
    #[error("vault {path} cannot be opened: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is a systemd credential: the connector cannot replace it.
    #[error(
        "the vault key comes from the systemd credential {0}; rotate it with systemd-creds and `edge-connector vault rotate-key` run without that credential"
    )]
    ReadOnlyKey(PathBuf),
    /// A secret was too large.
    #[error("secrets are at most {} bytes", entry::MAX_SECRET)]
    TooLarge,
    /// The state directory may be written by someone else than root and the service user.
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    /// A link or a non-regular file stands where a vault file should be.
    #[error(transparent)]
    File(FsError),
}

impl VaultError {
    /// A file error: input/output failures keep their [`VaultError::Io`] form.
    fn file(e: FsError) -> Self {
        match e {
            FsError::Io { path, source } => Self::Io {
                path,
                reason: source.to_string(),
            },
            other => Self::File(other),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Contents {
    version: u32,
    entries: BTreeMap<EntryName, StoredEntry>,
}

/// Which version of the file the cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

type Entries = Arc<BTreeMap<EntryName, StoredEntry>>;

/// An open vault.
pub struct Vault {
    path: PathBuf,
    lock_path: PathBuf,
    source: KeySource,
    /// Who gets the files this process creates (root writing for the service user).
    owner: Option<Owner>,
    identity: Mutex<Identity>,
    cache: Mutex<Option<(Stamp, Entries)>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .field("key", &self.source)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Opens the vault of `config` with its existing key.
    pub fn open(config: &Config) -> Result<Self, VaultError> {
        let owner = state_guard::check(&config.state_dir, &config.service_user)?;
        let source = identity::locate(&config.vault)?;
        let key = identity::load(&source)?;
        Ok(Self::with_key(config.vault_path(), source, key, owner))
    }

    /// Opens the vault of `config`, creating its key file first if there is none. Returns
    /// the vault and whether a key was made.
    pub fn init(config: &Config) -> Result<(Self, bool), VaultError> {
        let owner = state_guard::check(&config.state_dir, &config.service_user)?;
        let source = identity::locate(&config.vault)?;
        match identity::load(&source) {
            Ok(key) => Ok((
                Self::with_key(config.vault_path(), source, key, owner),
                false,
            )),
            Err(VaultError::KeyMissing(path)) if matches!(source, KeySource::File(_)) => {
                let key = identity::create(&path)?;
                Ok((
                    Self::with_key(config.vault_path(), source, key, owner),
                    true,
                ))
            }
            Err(e) => Err(e),
        }
    }

    fn with_key(path: PathBuf, source: KeySource, key: Identity, owner: Option<Owner>) -> Self {
        Self {
            lock_path: path.with_extension("lock"),
            path,
            source,
            owner,
            identity: Mutex::new(key),
            cache: Mutex::new(None),
        }
    }

    /// The vault file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the key came from.
    pub fn key_source(&self) -> &KeySource {
        &self.source
    }

    /// The public half of the key (`age1...`).
    pub fn public_key(&self) -> String {
        self.identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .to_public()
            .to_string()
    }

    fn io(&self, e: impl std::fmt::Display) -> VaultError {
        VaultError::Io {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// The vault file, never through a link; `None` when there is none yet.
    fn open_file(&self) -> Result<Option<File>, VaultError> {
        match shared::fs::open_read(&self.path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(VaultError::file(e)),
        }
    }

    /// The entries now on disk.
    fn current(&self) -> Result<Entries, VaultError> {
        let Some(file) = self.open_file()? else {
            return Ok(Arc::new(BTreeMap::new()));
        };
        let stamp = Stamp::of(&file.metadata().map_err(|e| self.io(e))?);
        if let Some((s, entries)) = &*self.cache.lock().unwrap_or_else(|p| p.into_inner())
            && *s == stamp
        {
            return Ok(entries.clone());
        }
        let entries = Arc::new(self.decrypt(file)?);
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((stamp, entries.clone()));
        Ok(entries)
    }

    fn read(&self) -> Result<BTreeMap<EntryName, StoredEntry>, VaultError> {
        match self.open_file()? {
            Some(file) => self.decrypt(file),
            None => Ok(BTreeMap::new()),
        }
    }

    fn decrypt(&self, mut file: File) -> Result<BTreeMap<EntryName, StoredEntry>, VaultError> {
        let mut cipher = Vec::new();
        Read::by_ref(&mut file)
            .take(MAX_VAULT_BYTES + 1)
            .read_to_end(&mut cipher)
            .map_err(|e| self.io(e))?;
        if cipher.len() as u64 > MAX_VAULT_BYTES {
            return Err(self.io(format!("larger than {MAX_VAULT_BYTES} bytes")));
        }
        let unreadable = |reason: String| VaultError::Unreadable {
            path: self.path.clone(),
            reason,
        };
        let key = self.identity.lock().unwrap_or_else(|p| p.into_inner());
        let plain = age::decrypt(&*key, &cipher)
            .map(Zeroizing::new)
            .map_err(|e| unreadable(format!("{e} (is this the vault's key?)")))?;
        let contents: Contents = serde_json::from_slice(&plain)
            .map_err(|e| unreadable(format!("damaged content: {e}")))?;
        if contents.version != FORMAT_VERSION {
            return Err(unreadable(format!(
                "format {} is not supported (this connector reads {FORMAT_VERSION})",
                contents.version
            )));
        }
        Ok(contents.entries)
    }

    /// Encrypts `entries` to `recipients` and replaces the vault file atomically.
    fn write(
        &self,
        entries: BTreeMap<EntryName, StoredEntry>,
        recipients: &[age::x25519::Recipient],
    ) -> Result<(), VaultError> {
        let contents = Contents {
            version: FORMAT_VERSION,
            entries,
        };
        let plain = Zeroizing::new(serde_json::to_vec(&contents).map_err(|e| self.io(e))?);
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| self.io(e))?;
        let mut cipher = Vec::with_capacity(plain.len() + 256);
        let mut w = encryptor.wrap_output(&mut cipher).map_err(|e| self.io(e))?;
        w.write_all(&plain).map_err(|e| self.io(e))?;
        w.finish().map_err(|e| self.io(e))?;
        let options = WriteOptions::mode(0o600).owned_by(self.owner);
        shared::fs::write_atomic(&self.path, &cipher, &options).map_err(VaultError::file)?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// Takes the writers' lock. Made by root (an operator's `vault set`), the lock file is
    /// given to the directory's owner through its descriptor so that the service can still
    /// open it; an existing one is never changed, whatever it is.
    fn lock(&self) -> Result<File, VaultError> {
        let f =
            shared::fs::open_lock(&self.lock_path, 0o600, self.owner).map_err(VaultError::file)?;
        f.lock().map_err(|e| self.io(e))?;
        Ok(f)
    }

    /// One entry.
    pub fn get(&self, name: &EntryName) -> Result<Option<Entry>, VaultError> {
        Ok(self.current()?.get(name).map(Entry::from))
    }

    /// Every entry's metadata, by name.
    pub fn list(&self) -> Result<Vec<EntryInfo>, VaultError> {
        Ok(self
            .current()?
            .iter()
            .map(|(n, e)| Entry::from(e).info(n))
            .collect())
    }

    /// Changes one entry under the lock: `change` gets the current entry and returns the
    /// new one (`None` removes it). Returns what `change` returned.
    pub fn update(
        &self,
        name: &EntryName,
        change: impl FnOnce(Option<Entry>) -> Option<Entry>,
    ) -> Result<Option<Entry>, VaultError> {
        let _lock = self.lock()?;
        // Only writers holding the lock make temporaries, so none left now is in use.
        shared::fs::remove_stale_temporaries(&self.path);
        let mut entries = self.read()?;
        let next = change(entries.get(name).map(Entry::from));
        if let Some(e) = &next {
            let too_big = e.secret.expose_len() > entry::MAX_SECRET
                || e.refresh
                    .as_ref()
                    .is_some_and(|r| r.expose_len() > entry::MAX_SECRET);
            if too_big {
                return Err(VaultError::TooLarge);
            }
        }
        match &next {
            Some(e) => {
                entries.insert(name.clone(), StoredEntry::from(e));
            }
            None => {
                entries.remove(name);
            }
        }
        let recipient = self
            .identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .to_public();
        self.write(entries, &[recipient])?;
        Ok(next)
    }

    /// Stores a secret set by an operator (keeping its creation time when it existed).
    pub fn set(&self, name: &EntryName, secret: secrecy::SecretString) -> Result<(), VaultError> {
        let now = now_ms();
        self.update(name, |old| {
            let mut e = Entry::generic(secret, now);
            if let Some(old) = old {
                e.created_at = old.created_at;
            }
            Some(e)
        })?;
        Ok(())
    }

    /// Removes an entry; false if there was none.
    pub fn remove(&self, name: &EntryName) -> Result<bool, VaultError> {
        let mut existed = false;
        self.update(name, |old| {
            existed = old.is_some();
            None
        })?;
        Ok(existed)
    }

    /// Replaces the key with a new one and re-encrypts the vault to it. Returns the new
    /// public key.
    pub fn rotate_key(&self) -> Result<String, VaultError> {
        let key_path = match &self.source {
            KeySource::File(p) => p.clone(),
            KeySource::Credential(p) => return Err(VaultError::ReadOnlyKey(p.clone())),
        };
        let _lock = self.lock()?;
        let entries = self.read()?;
        let new = Identity::generate();
        let old_public = self
            .identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .to_public();
        let new_public = new.to_public();
        // 1. Both keys open the vault; 2. the key file changes; 3. only the new key does.
        self.write(clone_entries(&entries), &[old_public, new_public.clone()])?;
        identity::write(&key_path, &new)?;
        *self.identity.lock().unwrap_or_else(|p| p.into_inner()) = new;
        self.write(entries, std::slice::from_ref(&new_public))?;
        Ok(new_public.to_string())
    }
}

trait ExposeLen {
    fn expose_len(&self) -> usize;
}

impl ExposeLen for secrecy::SecretString {
    fn expose_len(&self) -> usize {
        use secrecy::ExposeSecret;
        self.expose_secret().len()
    }
}

fn clone_entries(e: &BTreeMap<EntryName, StoredEntry>) -> BTreeMap<EntryName, StoredEntry> {
    e.iter()
        .map(|(n, s)| (n.clone(), StoredEntry::from(&Entry::from(s))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};

    fn config(dir: &Path) -> Config {
        let mut c = Config::bare(dir.join("state"));
        c.vault.identity_file = Some(dir.join("vault.key"));
        c.vault.identity_credential = "no-such-credential".into();
        std::fs::create_dir_all(&c.state_dir).unwrap();
        c
    }

    fn name(s: &str) -> EntryName {
        EntryName::parse(s).unwrap()
    }

    #[test]
    fn set_get_list_remove_and_no_plaintext_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        assert!(matches!(Vault::open(&c), Err(VaultError::KeyMissing(_))));
        let (v, created) = Vault::init(&c).unwrap();
        assert!(created);
        v.set(
            &name("provider/ghes/client_secret"),
            SecretString::from("s3cr3t-value"),
        )
        .unwrap();
        let e = v
            .get(&name("provider/ghes/client_secret"))
            .unwrap()
            .unwrap();
        assert_eq!(e.secret.expose_secret(), "s3cr3t-value");
        let raw = std::fs::read(c.vault_path()).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("s3cr3t"));
        let list = v.list().unwrap();
        assert_eq!(list.len(), 1);
        assert!(!format!("{list:?}").contains("s3cr3t"));
        // A second handle (another process) sees the change.
        let other = Vault::open(&c).unwrap();
        assert!(
            other
                .get(&name("provider/ghes/client_secret"))
                .unwrap()
                .is_some()
        );
        assert!(v.remove(&name("provider/ghes/client_secret")).unwrap());
        assert!(
            other
                .get(&name("provider/ghes/client_secret"))
                .unwrap()
                .is_none()
        );
        assert!(!v.remove(&name("provider/ghes/client_secret")).unwrap());
    }

    #[test]
    fn rotation_keeps_the_entries_and_retires_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let (v, _) = Vault::init(&c).unwrap();
        v.set(&name("a"), SecretString::from("one")).unwrap();
        let old_key = std::fs::read_to_string(c.vault.identity_file.as_ref().unwrap()).unwrap();
        let new_public = v.rotate_key().unwrap();
        assert_eq!(v.public_key(), new_public);
        let reopened = Vault::open(&c).unwrap();
        assert_eq!(
            reopened
                .get(&name("a"))
                .unwrap()
                .unwrap()
                .secret
                .expose_secret(),
            "one"
        );
        // The old key no longer opens it.
        std::fs::write(c.vault.identity_file.as_ref().unwrap(), old_key).unwrap();
        assert!(matches!(
            Vault::open(&c).unwrap().get(&name("a")),
            Err(VaultError::Unreadable { .. })
        ));
    }

    #[test]
    fn a_readable_key_file_or_a_wrong_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let (v, _) = Vault::init(&c).unwrap();
        v.set(&name("a"), SecretString::from("one")).unwrap();
        let key = c.vault.identity_file.clone().unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        assert!(matches!(Vault::open(&c), Err(VaultError::Key { .. })));
        std::fs::remove_file(&key).unwrap();
        Vault::init(&c).unwrap();
        let err = Vault::open(&c).unwrap().get(&name("a")).unwrap_err();
        assert!(err.to_string().contains("is this the vault's key"), "{err}");
        std::fs::write(c.vault_path(), b"garbage").unwrap();
        assert!(Vault::open(&c).unwrap().get(&name("a")).is_err());
    }

    fn running_as_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// A root-only file, and what must not change about it.
    fn root_only_file(dir: &Path) -> (PathBuf, (u32, u32, Vec<u8>)) {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("root-only");
        std::fs::write(&p, b"root's secret").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let seen = seen(&p);
        (p, seen)
    }

    fn seen(p: &Path) -> (u32, u32, Vec<u8>) {
        let m = std::fs::metadata(p).unwrap();
        (m.uid(), m.mode(), std::fs::read(p).unwrap())
    }

    #[test]
    fn a_service_user_cannot_turn_vault_commands_run_as_root_against_a_root_file() {
        if !running_as_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        // The state directory belongs to the (compromised) service user.
        std::os::unix::fs::chown(&c.state_dir, Some(65534), Some(65534)).unwrap();
        c.service_user = "65534".into();
        let (v, _) = Vault::init(&c).unwrap();
        v.set(&name("a"), SecretString::from("one")).unwrap();
        // What root made there went to the service user, through the descriptors.
        for f in ["vault.age", "vault.lock"] {
            let m = std::fs::metadata(c.state_dir.join(f)).unwrap();
            assert_eq!((m.uid(), m.mode() & 0o777), (65534, 0o600), "{f}");
        }
        let (target, before) = root_only_file(dir.path());
        for planted in ["vault.lock", "vault.age"] {
            let link = c.state_dir.join(planted);
            let saved = c.state_dir.join("saved");
            std::fs::rename(&link, &saved).unwrap();
            std::os::unix::fs::symlink(&target, &link).unwrap();
            let errors = [
                v.set(&name("b"), SecretString::from("two")).unwrap_err(),
                v.remove(&name("a")).unwrap_err(),
                v.rotate_key().unwrap_err(),
            ];
            for err in errors {
                assert!(
                    matches!(&err, VaultError::File(FsError::Symlink { path }) if path == &link),
                    "{planted}: {err}"
                );
                assert!(err.to_string().contains("symbolic link"), "{err}");
                assert_eq!(seen(&target), before, "{planted}: the root file changed");
            }
            std::fs::rename(&saved, &link).unwrap();
        }
        assert_eq!(
            v.get(&name("a")).unwrap().unwrap().secret.expose_secret(),
            "one"
        );
    }

    #[test]
    fn a_state_directory_owned_by_another_user_is_refused_with_the_fix() {
        if !running_as_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        std::os::unix::fs::chown(&c.state_dir, Some(4242), Some(4242)).unwrap();
        let err = Vault::init(&c).unwrap_err();
        assert!(
            matches!(
                &err,
                VaultError::StateDir(StateDirError::ForeignOwner { uid: 4242, .. })
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("chown -R edge-connector:"),
            "{err}"
        );
        assert!(!c.vault.identity_file.as_ref().unwrap().exists());
    }
}
