//! The log's files: their names (`audit-NNNNNNNN.ndjson`, numbered from 1, oldest first),
//! reading them without following links, and a consistent view of them while the
//! connector writes (the writer holds [`LOCK_FILE`] exclusively while it changes them).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::AuditError;

/// The files of a log folder, oldest first: `audit-NNNNNNNN.ndjson`.
pub fn list_files(dir: &Path) -> Result<Vec<(u32, PathBuf)>, AuditError> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(AuditError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io(dir, e))?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix("audit-"))
            .and_then(|n| n.strip_suffix(".ndjson"))
            .filter(|n| n.len() == 8)
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(n) = number {
            files.push((n, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// The name of file number `n`.
pub fn file_name(n: u32) -> String {
    format!("audit-{n:08}.ndjson")
}

/// The lock file: the writer holds it exclusively while it changes the files, readers
/// share it while they note the files' lengths.
pub const LOCK_FILE: &str = "lock";

/// Reads a whole log file, never through a link.
pub fn read_file(path: &Path) -> Result<Vec<u8>, AuditError> {
    read_prefix(path, u64::MAX)
}

/// Reads the first `len` bytes of a log file, never through a link.
fn read_prefix(path: &Path, len: u64) -> Result<Vec<u8>, AuditError> {
    let mut bytes = Vec::new();
    shared::fs::open_read(path)
        .map_err(|e| AuditError::io(path, e))?
        .take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| AuditError::io(path, e))?;
    Ok(bytes)
}

/// The log's files and their contents as of a moment between two segments, oldest first,
/// so that a log read while the connector writes it ends on a seal.
pub fn snapshot(dir: &Path) -> Result<Vec<(u32, PathBuf, Vec<u8>)>, AuditError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let lock_path = dir.join(LOCK_FILE);
    let lock = shared::fs::open_lock(&lock_path, 0o600, None)
        .map_err(|e| AuditError::io(&lock_path, e))?;
    lock.lock_shared()
        .map_err(|e| AuditError::io(&lock_path, e))?;
    let mut lengths = Vec::new();
    for (number, path) in list_files(dir)? {
        let len = std::fs::symlink_metadata(&path)
            .map_err(|e| AuditError::io(&path, e))?
            .len();
        lengths.push((number, path, len));
    }
    drop(lock);
    lengths
        .into_iter()
        .map(|(n, path, len)| read_prefix(&path, len).map(|bytes| (n, path, bytes)))
        .collect()
}
