//! The atomic write: a crash (kill -9 included) leaves the old file or the new one, never
//! half of either, and nobody who can write the directory can redirect the write.
//!
//! The temporary file gets a random name and is created with `O_CREAT|O_EXCL|O_NOFOLLOW`
//! and its final mode, so a link or file planted at a guessable name is never opened, and
//! the content is never readable by more than `mode` allows, not even for a moment.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{FsError, Owner, open::give};

/// How many random names are tried before giving up (each collision is a file someone else
/// made at that name).
const NAME_ATTEMPTS: usize = 16;

/// Mode and owner of a file written by [`write_atomic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Permission bits given at creation (the process umask may narrow them).
    pub mode: u32,
    /// Who gets the file, through its descriptor, before anything is written to it; `None`
    /// keeps the writer as owner.
    pub owner: Option<Owner>,
}

impl WriteOptions {
    /// A file with `mode`, owned by the writer.
    pub fn mode(mode: u32) -> Self {
        Self { mode, owner: None }
    }

    /// The same, given to `owner` (when set).
    #[must_use]
    pub fn owned_by(self, owner: Option<Owner>) -> Self {
        Self { owner, ..self }
    }
}

/// The prefix of the temporary files made for `path`: `.NAME.tmp-`.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp-")
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8], options: &WriteOptions) -> Result<(), FsError> {
    write_atomic_with(path, options, |f| f.write_all(bytes))
}

/// Replaces `path` atomically with what `fill` writes into a new temporary file in the same
/// directory: random name, `O_EXCL|O_NOFOLLOW`, `options.mode` from creation on, ownership
/// through the descriptor; then fsync, rename over `path` (a symbolic link at `path` is
/// replaced, never followed) and fsync of the directory. On any failure the temporary file
/// is removed and `path` keeps its old content.
pub fn write_atomic_with(
    path: &Path,
    options: &WriteOptions,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), FsError> {
    let prefix = temp_prefix(path);
    let names = std::iter::repeat_with(|| format!("{prefix}{:016x}", rand::random::<u64>()));
    write_via(path, options, names, fill)
}

/// [`write_atomic_with`] with the temporary names drawn from `names` (tests plant files at
/// the names they will hand out).
fn write_via(
    path: &Path,
    options: &WriteOptions,
    names: impl Iterator<Item = String>,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), FsError> {
    let dir = parent(path);
    let (tmp, mut file) = create_temp(dir, options.mode, names)?;
    let result = (|| {
        if let Some(owner) = options.owner {
            give(&file, owner).map_err(|e| FsError::io(&tmp, e))?;
        }
        fill(&mut file).map_err(|e| FsError::io(&tmp, e))?;
        file.sync_all().map_err(|e| FsError::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| FsError::io(path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| FsError::io(dir, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates a new file in `dir` under the first of `names` nobody holds yet.
fn create_temp(
    dir: &Path,
    mode: u32,
    names: impl Iterator<Item = String>,
) -> Result<(PathBuf, File), FsError> {
    let mut last = None;
    for name in names.take(NAME_ATTEMPTS) {
        let tmp = dir.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some((tmp, e)),
            Err(e) => return Err(FsError::io(&tmp, e)),
        }
    }
    Err(match last {
        Some((tmp, e)) => FsError::io(&tmp, e),
        None => FsError::NotRegular {
            path: dir.to_owned(),
        },
    })
}

/// Deletes the temporary files that writers of `path` killed mid-write left behind. Call it
/// only while holding the lock every writer of `path` takes, so that none is in use. A link
/// among them is removed itself; its target is never touched.
pub fn remove_stale_temporaries(path: &Path) {
    let prefix = temp_prefix(path);
    let Ok(entries) = std::fs::read_dir(parent(path)) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        write_atomic(&p, b"one", &WriteOptions::mode(0o600)).unwrap();
        write_atomic(&p, b"two", &WriteOptions::mode(0o600)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(mode_of(&p), 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_symlink_planted_at_a_guessable_temporary_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let p = dir.path().join("ca.key");
        // What the old helper would have used, and what this one is told to try first.
        let guessed = format!(".ca.key.tmp-{}", std::process::id());
        symlink(&victim, dir.path().join(&guessed)).unwrap();
        let dangling = ".ca.key.tmp-dangling".to_owned();
        symlink(dir.path().join("nowhere"), dir.path().join(&dangling)).unwrap();
        let names = [
            guessed.clone(),
            dangling.clone(),
            ".ca.key.tmp-free".to_owned(),
        ];
        write_via(&p, &WriteOptions::mode(0o600), names.into_iter(), |f| {
            f.write_all(b"new key")
        })
        .unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(
            !dir.path().join("nowhere").exists(),
            "a dangling link was followed"
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"new key");
        assert!(
            std::fs::symlink_metadata(dir.path().join(guessed))
                .unwrap()
                .is_symlink()
        );
        // And with every name taken, it fails rather than follow one.
        let taken = std::iter::repeat(dangling);
        let err = write_via(&p, &WriteOptions::mode(0o600), taken, |f| f.write_all(b"x"));
        assert!(err.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"new key");
    }

    #[test]
    fn a_symlink_at_the_target_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let p = dir.path().join("vault.age");
        symlink(&victim, &p).unwrap();
        write_atomic(&p, b"vault", &WriteOptions::mode(0o600)).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&p).unwrap().is_symlink());
        assert_eq!(std::fs::read(&p).unwrap(), b"vault");
    }

    #[test]
    fn the_mode_is_applied_at_creation_before_any_byte_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.key");
        let mut seen = None;
        write_atomic_with(&p, &WriteOptions::mode(0o600), |f| {
            let meta = f.metadata()?;
            seen = Some((meta.len(), meta.mode() & 0o777));
            f.write_all(b"key")
        })
        .unwrap();
        assert_eq!(seen, Some((0, 0o600)));
        assert_eq!(mode_of(&p), 0o600);
    }

    #[test]
    fn the_old_content_survives_a_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vault.age");
        write_atomic(&p, b"old", &WriteOptions::mode(0o600)).unwrap();
        let err = write_atomic_with(&p, &WriteOptions::mode(0o600), |f| {
            f.write_all(b"half of the n")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the temporary file is removed"
        );
    }

    #[test]
    fn stale_temporaries_go_and_a_link_among_them_is_removed_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let p = dir.path().join("vault.age");
        std::fs::write(dir.path().join(".vault.age.tmp-1"), b"half").unwrap();
        symlink(&victim, dir.path().join(".vault.age.tmp-2")).unwrap();
        remove_stale_temporaries(&p);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("victim")]);
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }
}
