//! Whether a state directory may be used: it must belong to root, to the user running the
//! command or to the service user, and no other user may write it. Otherwise someone else
//! could plant links or files there for the next admin command run as root to act on.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use shared::fs::Owner;

/// The service user of the packages.
pub const DEFAULT_SERVICE_USER: &str = "edge-connector";

/// Why a state directory is refused. Each message names the directory and the command that
/// repairs it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateDirError {
    /// The directory cannot be examined.
    #[error("state directory {dir}: {source}")]
    Unreadable {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The path is not a directory.
    #[error("state directory {dir} is not a directory")]
    NotADirectory {
        /// The path.
        dir: PathBuf,
    },
    /// Owned by a user who is neither root, the caller nor the service user.
    #[error(
        "state directory {dir} is owned by uid {uid}, which is neither root, the user running this command nor the service user {service_user}: refusing to use it; fix it with `chown -R {service_user}: {dir}`"
    )]
    ForeignOwner {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        uid: u32,
        /// The configured service user.
        service_user: String,
    },
    /// Group or other users may write it.
    #[error(
        "state directory {dir} is writable by other users (mode {mode:04o}): refusing to use it; fix it with `chmod 0700 {dir}`"
    )]
    WritableByOthers {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl StateDirError {
    /// The command that repairs the directory, for `doctor`.
    pub fn fix(&self) -> String {
        match self {
            Self::Unreadable { dir, .. } | Self::NotADirectory { dir } => format!(
                "Create it for the service user: `install -d -m 0700 -o {DEFAULT_SERVICE_USER} -g {DEFAULT_SERVICE_USER} {}`.",
                dir.display()
            ),
            Self::ForeignOwner {
                dir, service_user, ..
            } => format!("`chown -R {service_user}: {}`", dir.display()),
            Self::WritableByOthers { dir, .. } => format!("`chmod 0700 {}`", dir.display()),
        }
    }
}

/// The uid of `service_user`: a number, or a name looked up in the user database (`None`
/// when no such user exists, as on a machine without the packages).
fn service_uid(service_user: &str) -> Option<u32> {
    if let Ok(uid) = service_user.parse::<u32>() {
        return Some(uid);
    }
    nix::unistd::User::from_name(service_user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// Checks `dir` and returns who should own the files this process creates there: the
/// directory's owner when root writes in a directory it does not own (so that the service
/// can still read them), otherwise nobody in particular.
pub fn check(dir: &Path, service_user: &str) -> Result<Option<Owner>, StateDirError> {
    let meta = std::fs::metadata(dir).map_err(|source| StateDirError::Unreadable {
        dir: dir.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(StateDirError::NotADirectory {
            dir: dir.to_owned(),
        });
    }
    let me = nix::unistd::geteuid().as_raw();
    let uid = meta.uid();
    if uid != 0 && uid != me && service_uid(service_user) != Some(uid) {
        return Err(StateDirError::ForeignOwner {
            dir: dir.to_owned(),
            uid,
            service_user: service_user.to_owned(),
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(StateDirError::WritableByOthers {
            dir: dir.to_owned(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok((me == 0 && uid != 0).then_some(Owner {
        uid,
        gid: meta.gid(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn running_as_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn a_directory_others_may_write_is_refused_with_the_chmod_that_fixes_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check(dir.path(), DEFAULT_SERVICE_USER).is_ok());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check(dir.path(), DEFAULT_SERVICE_USER).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("chmod 0700 {}", dir.path().display())),
            "{err}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(matches!(
            check(dir.path(), DEFAULT_SERVICE_USER),
            Err(StateDirError::WritableByOthers { mode: 0o770, .. })
        ));
    }

    #[test]
    fn root_accepts_only_the_service_users_directory_and_hands_it_new_files() {
        if !running_as_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(4242), Some(4243)).unwrap();
        let err = check(dir.path(), "65534").unwrap_err();
        assert!(matches!(err, StateDirError::ForeignOwner { uid: 4242, .. }));
        assert!(
            err.to_string()
                .contains(&format!("chown -R 65534: {}", dir.path().display())),
            "{err}"
        );
        assert_eq!(
            check(dir.path(), "4242").unwrap(),
            Some(Owner {
                uid: 4242,
                gid: 4243
            })
        );
    }
}
