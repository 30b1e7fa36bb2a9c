//! Opening state files without following links: reads refuse symbolic links and anything but
//! a regular file; a lock file is made exclusively and handed over through its descriptor.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::{FsError, Owner};

/// Flags for opening an existing file: no symbolic link, and no blocking on a FIFO planted
/// in its place (it is refused after the open instead).
const READ_FLAGS: i32 = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK;

/// Opens an existing regular file for reading. A symbolic link at `path` is an error
/// ([`FsError::Symlink`]), so is a directory, FIFO, socket or device ([`FsError::NotRegular`]).
pub fn open_read(path: &Path) -> Result<File, FsError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(READ_FLAGS)
        .open(path)
        .map_err(|e| FsError::io(path, e))?;
    let meta = file.metadata().map_err(|e| FsError::io(path, e))?;
    if !meta.is_file() {
        return Err(FsError::NotRegular {
            path: path.to_owned(),
        });
    }
    Ok(file)
}

/// Reads a whole regular file of at most `max` bytes, refusing links as [`open_read`] does.
pub fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, FsError> {
    let file = open_read(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FsError::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(FsError::TooLarge {
            path: path.to_owned(),
            max,
        });
    }
    Ok(bytes)
}

/// Opens the lock file at `path`, creating it (`O_CREAT|O_EXCL|O_NOFOLLOW`, `mode`) if
/// there is none. Only a file this call created is given to `owner`, through its
/// descriptor: an existing file is opened read-only (enough for `flock`) and never
/// changed, so a link or a hard link planted at `path` gives nothing away.
pub fn open_lock(path: &Path, mode: u32, owner: Option<Owner>) -> Result<File, FsError> {
    // A lock file removed between the two opens is simply made on the next round.
    let mut last = None;
    for _ in 0..3 {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(file) => {
                if let Some(owner) = owner {
                    give(&file, owner).map_err(|e| FsError::io(path, e))?;
                }
                return Ok(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match open_read(path) {
                Err(e) if e.is_not_found() => last = Some(e),
                other => return other,
            },
            Err(e) => return Err(FsError::io(path, e)),
        }
    }
    Err(last.unwrap_or_else(|| FsError::NotRegular {
        path: path.to_owned(),
    }))
}

/// Gives the file open as `file` to `owner` if it is not already theirs.
pub(crate) fn give(file: &File, owner: Owner) -> std::io::Result<()> {
    let meta = file.metadata()?;
    if meta.uid() != owner.uid || meta.gid() != owner.gid {
        std::os::unix::fs::fchown(file, Some(owner.uid), Some(owner.gid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn running_as_root() -> bool {
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }

    #[test]
    fn reads_refuse_a_symlink_and_a_fifo_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"not yours").unwrap();
        let link = dir.path().join("state.toml");
        symlink(&target, &link).unwrap();
        assert!(matches!(open_read(&link), Err(FsError::Symlink { .. })));
        assert!(matches!(
            read_file(&link, 100),
            Err(FsError::Symlink { .. })
        ));
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(open_read(&fifo), Err(FsError::NotRegular { .. })));
        assert!(matches!(
            read_file(&target, 3),
            Err(FsError::TooLarge { max: 3, .. })
        ));
        assert_eq!(read_file(&target, 9).unwrap(), b"not yours");
    }

    #[test]
    fn a_planted_lock_link_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("root-only");
        std::fs::write(&target, b"secret").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = std::fs::metadata(&target).unwrap();
        let lock = dir.path().join("vault.lock");
        symlink(&target, &lock).unwrap();
        let owner = Owner {
            uid: 65534,
            gid: 65534,
        };
        let err = open_lock(&lock, 0o600, Some(owner)).unwrap_err();
        assert!(matches!(err, FsError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("vault.lock"), "{err}");
        let after = std::fs::metadata(&target).unwrap();
        assert_eq!(
            (after.uid(), after.gid(), after.mode()),
            (before.uid(), before.gid(), before.mode())
        );
    }

    #[test]
    fn only_a_lock_file_made_here_is_given_away() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("vault.lock");
        let me = std::fs::metadata(dir.path()).unwrap();
        let owner = Owner {
            uid: if running_as_root() { 65534 } else { me.uid() },
            gid: if running_as_root() { 65534 } else { me.gid() },
        };
        let f = open_lock(&lock, 0o600, Some(owner)).unwrap();
        let meta = f.metadata().unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (owner.uid, 0o600));
        drop(f);
        // A hard link to someone else's file at the lock's name is opened, never changed.
        std::fs::remove_file(&lock).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, b"x").unwrap();
        std::fs::hard_link(&other, &lock).unwrap();
        let before = std::fs::metadata(&other).unwrap();
        open_lock(&lock, 0o600, Some(owner)).unwrap();
        let after = std::fs::metadata(&other).unwrap();
        assert_eq!((after.uid(), after.mode()), (before.uid(), before.mode()));
    }
}
