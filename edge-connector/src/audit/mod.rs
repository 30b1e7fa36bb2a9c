//! The connector's own audit log: a hash-chained, signed record of every call it receives,
//! every upstream request it makes and every outcome, kept in `STATE/audit/` so that the
//! customer can check the cloud runtime's trail against a record the runtime cannot write.
//!
//! ```text
//! STATE/audit.key              Ed25519 key (PKCS#8 PEM, 0600, like identity.pem and the vault key)
//! STATE/audit/audit-00000001.ndjson
//! STATE/audit/audit-00000002.ndjson   the chain continues across files
//! ```
//! - [`record`]: one NDJSON line: `seq`, `ts`, `prev` (the previous line's hash), `kind`
//!   and its fields, then `hash`, the SHA-256 of the line's exact bytes before it.
//! - [`key`]: the signing key, made at enroll (or at the first start of an older enrollment).
//! - [`files`]: the files' names, reading them, a consistent view of a live log.
//! - [`writer`]: group commit: the records queued while the last write was in flight are
//!   written together with a `seal` (an Ed25519 signature over the head's hash and sequence)
//!   and fsynced once; rotation by size, a bound on the total, recovery after kill -9.
//! - [`verify`]: names the first record that was edited, removed, reordered, truncated or
//!   signed with another key.
//! - [`export`]: `tail` and `export` (a time range, NDJSON).
//! - [`ocsf`]: the same records as OCSF API Activity events, for a SIEM.
//! - [`syslog`] and [`forward`]: each record, once written, sent to the customer's syslog
//!   collector (RFC 5424 over TLS) from a bounded queue that never holds up a call.
//!
//! The tool-set layers that write a call's record before its tool runs ("no record, no
//! request") and its outcome after are [`crate::audit_gate`]; this module knows no calls.

pub mod export;
pub mod files;
pub mod forward;
pub mod key;
pub mod ocsf;
pub mod reconcile;
pub mod record;
pub mod syslog;
pub mod verify;
pub mod writer;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use key::{AuditKey, PublicKey};
pub use writer::AuditLog;

/// The folder of the log inside the state directory.
pub const DIR_NAME: &str = "audit";
/// The signing key's file inside the state directory.
pub const KEY_FILE: &str = "audit.key";

/// Where the log of the state directory `state_dir` lives.
pub fn log_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(DIR_NAME)
}

/// Where the signing key of the state directory `state_dir` lives.
pub fn key_path(state_dir: &Path) -> PathBuf {
    state_dir.join(KEY_FILE)
}

/// What happens when the log reaches `max_total_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFull {
    /// Refuse calls rather than run them unrecorded.
    #[default]
    Refuse,
    /// Remove the oldest file (a `pruned` record says which, so verification still holds).
    Rotate,
}

/// The `[audit]` section of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// A new file is started once the current one is this large.
    pub max_file_bytes: u64,
    /// All files together stay under this; a warning is logged at 90%.
    pub max_total_bytes: u64,
    /// What happens at `max_total_bytes`.
    pub on_full: OnFull,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 64 * 1024 * 1024,
            max_total_bytes: 1024 * 1024 * 1024,
            on_full: OnFull::Refuse,
        }
    }
}

impl AuditConfig {
    /// The section, or why its numbers cannot work together.
    pub fn checked(self) -> Result<Self, String> {
        if self.max_file_bytes < 64 * 1024 {
            return Err("audit.max_file_bytes must be at least 65536".to_owned());
        }
        if self.max_total_bytes < self.max_file_bytes.saturating_mul(2) {
            return Err(
                "audit.max_total_bytes must be at least twice audit.max_file_bytes".to_owned(),
            );
        }
        Ok(self)
    }
}

/// Why the audit log cannot be used. Messages name files and causes, never a key.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A log file or the folder cannot be read or written (a full disk, an I/O error).
    #[error("audit log {path}: {reason}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The log reached `max_total_bytes` and `on_full = "refuse"`.
    #[error(
        "audit log {dir} is full ({used} of {max} bytes): archive and remove old files, raise [audit] max_total_bytes, or set on_full = \"rotate\""
    )]
    Full {
        /// The folder.
        dir: PathBuf,
        /// Bytes in use.
        used: u64,
        /// The bound.
        max: u64,
    },
    /// The last record on disk does not check out: the log was changed while stopped.
    #[error(
        "audit log {path}: the last record does not verify ({reason}); run `edge-connector audit verify`, then move the audit folder aside to start a new chain"
    )]
    Tail {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The signing key is missing or unusable.
    #[error("audit key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The writer stopped (it had failed before): nothing more can be recorded.
    #[error("the audit log writer has stopped")]
    Stopped,
}

impl AuditError {
    /// An input/output failure on `path`.
    pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }
}
