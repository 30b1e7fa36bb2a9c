//! Key and certificate files, written through the workspace's one atomic-write helper
//! ([`shared::fs::write_atomic`]): a crash leaves the old file or the new one, never half of
//! either, and a link planted in a shared output directory is never followed.

use std::fs;
use std::path::Path;

use shared::fs::WriteOptions;

use crate::Error;

/// Writes `bytes` to `path` with `mode` atomically: random `O_EXCL|O_NOFOLLOW` temporary
/// file created with `mode`, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    Ok(shared::fs::write_atomic(
        path,
        bytes,
        &WriteOptions::mode(mode),
    )?)
}

/// Writes a private key (or any secret): owner read/write only.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_atomic(path, bytes, 0o600)
}

/// Writes a public file (certificate, CA bundle).
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_atomic(path, bytes, 0o644)
}

/// Reads a file to a string, naming the file on error.
pub fn read_to_string(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn secrets_are_owner_only_and_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        write_secret(&p, b"one").unwrap();
        write_secret(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn a_key_written_into_a_shared_directory_ignores_the_old_predictable_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"someone else's").unwrap();
        // The name the previous helper always used: `.ca.key.tmp-PID`.
        let guessed = dir
            .path()
            .join(format!(".ca.key.tmp-{}", std::process::id()));
        symlink(&victim, &guessed).unwrap();
        write_secret(&dir.path().join("ca.key"), b"key").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"someone else's");
        assert_eq!(fs::read(dir.path().join("ca.key")).unwrap(), b"key");
        assert!(fs::symlink_metadata(&guessed).unwrap().is_symlink());
    }
}
