//! Files that must not be turned against their writer (feature `fs`).
//!
//! State directories (the connector's vault and identity, the runtime's data directory, a
//! CA's output folder) may be writable by a less privileged user than the one running a
//! command: an operator runs `edge-connector vault set` as root in a directory the service
//! user owns. Every path here is therefore treated as possibly planted:
//! - [`open`]: opening an existing file never follows a symbolic link (`O_NOFOLLOW`) and
//!   refuses anything but a regular file; a lock file is created exclusively (`O_EXCL`) and
//!   handed to its owner through the open descriptor (`fchown`), never by path.
//! - [`atomic`]: the one atomic-write helper of the workspace: a random temporary name
//!   created with `O_EXCL|O_NOFOLLOW` and its final mode, written, fsynced, renamed over
//!   the target, and the directory fsynced; any failure removes the temporary file.

pub mod atomic;
pub mod open;

use std::path::{Path, PathBuf};

pub use atomic::{WriteOptions, remove_stale_temporaries, write_atomic, write_atomic_with};
pub use open::{open_lock, open_read, read_file};

/// The owner to give a newly created file: a numeric user and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Why a file could not be opened or written. Messages name the file and the cause only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// A symbolic link stands where a file was expected; it is never followed.
    #[error(
        "{path} is a symbolic link: refusing to follow it (someone who can write its directory may have planted it; remove it with `rm {path}`)"
    )]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// Something other than a regular file (a directory, a FIFO, a device).
    #[error("{path} is not a regular file: refusing to use it")]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than the caller accepts.
    #[error("{path} is larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// Any other input/output error.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl FsError {
    /// Wraps `source` for `path`; `ELOOP` from an `O_NOFOLLOW` open becomes [`FsError::Symlink`].
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(nix::libc::ELOOP) {
            Self::Symlink {
                path: path.to_owned(),
            }
        } else {
            Self::Io {
                path: path.to_owned(),
                source,
            }
        }
    }

    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}
