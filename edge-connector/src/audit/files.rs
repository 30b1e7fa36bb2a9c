//! The log's files: their names (`audit-NNNNNNNN.ndjson`, numbered from 1, oldest first),
//! reading them without following links, and a consistent view of them while the
//! connector writes (the writer holds [`LOCK_FILE`] exclusively while it changes them).

use std::io::{Read, Seek, SeekFrom};
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

/// The end of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Where its last complete line ends (what follows is a torn write).
    pub whole: u64,
    /// That line, without its newline.
    pub last_line: Option<Vec<u8>>,
}

/// Reads the end of a log file (never through a link) from its end, a window that doubles
/// until it holds the last complete line: a file may be many megabytes, and finding where
/// the chain stops (at start, and for each file removed at the bound) needs a few
/// kilobytes of it.
pub fn read_tail(path: &Path) -> Result<Tail, AuditError> {
    let io = |e: std::io::Error| AuditError::io(path, e);
    let mut file = shared::fs::open_read(path).map_err(|e| AuditError::io(path, e))?;
    let len = file.metadata().map_err(io)?.len();
    let mut window: u64 = 8 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut buf = Vec::new();
        (&mut file)
            .take(len - start)
            .read_to_end(&mut buf)
            .map_err(io)?;
        let from_start = start == 0;
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
            if from_start {
                return Ok(Tail {
                    whole: 0,
                    last_line: None,
                });
            }
            window = window.saturating_mul(2);
            continue;
        };
        let body = buf.get(..end).unwrap_or_default();
        let line = match body.iter().rposition(|b| *b == b'\n') {
            Some(i) => body.get(i + 1..).unwrap_or_default(),
            None if from_start => body,
            None => {
                window = window.saturating_mul(2);
                continue;
            }
        };
        return Ok(Tail {
            whole: start + end as u64 + 1,
            last_line: Some(line.to_vec()),
        });
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_found_from_the_end_whatever_the_line_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(1));
        let long = "x".repeat(20_000);
        for (content, whole, last) in [
            (String::new(), 0, None),
            ("torn".to_owned(), 0, None),
            ("one\n".to_owned(), 4, Some("one")),
            ("one\ntwo\ntor".to_owned(), 8, Some("two")),
            (format!("a\n{long}\n"), 20_003, Some(long.as_str())),
            (format!("{long}\nb\n{long}"), 20_003, Some("b")),
            (format!("{long}\n{long}\nc\n"), 40_004, Some("c")),
        ] {
            std::fs::write(&path, &content).unwrap();
            let tail = read_tail(&path).unwrap();
            assert_eq!(tail.whole, whole, "{:.20?}", content);
            assert_eq!(
                tail.last_line.as_deref(),
                last.map(str::as_bytes),
                "{:.20?}",
                content
            );
        }
    }
}
