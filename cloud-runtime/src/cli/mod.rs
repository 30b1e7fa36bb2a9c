//! The subcommands of the `cloud-runtime` binary, one module per command group, and what
//! they share: the `--data-dir` argument, printing to stdout, and the exit status.
//!
//! Exit status: 0 on success; 1 on failure, and when `policy check` finds the call denied;
//! 64 for bad configuration ([`cloud_runtime::config_error`]); 141 when stdout's reader went
//! away; 2 for flags clap refuses.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use cloud_runtime::config_error::ConfigError;
use cloud_runtime::data_dir::{DataDir, DataDirError};
use cloud_runtime::server::StartError;
use cloud_runtime::store::{DatabaseUrlError, Store};

// The commands print through these instead of std's `print!`/`println!`, which panic when
// stdout is a closed pipe (`cloud-runtime connector list --json | grep -q online`): a write
// error returns from the command, and `main` ends quietly on a broken pipe.
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).map_err($crate::cli::StdoutError)?;
    }};
}
macro_rules! println {
    () => {{
        use std::io::Write as _;
        writeln!(std::io::stdout()).map_err($crate::cli::StdoutError)?;
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err($crate::cli::StdoutError)?;
    }};
}

pub mod admin_token;
pub mod agent;
pub mod audit;
pub mod client;
pub mod connection;
pub mod connector;
pub mod gateway;
pub mod idp;
pub mod init;
pub mod keys;
pub mod migrate;
pub mod policy;
pub mod serve;
pub mod tenant;
pub mod user;

/// The `--data-dir` (and `--database-url`) every subcommand takes.
#[derive(Args, Clone)]
pub struct DataDirArg {
    /// The runtime's data directory (made by `init`).
    #[arg(long, env = "CLOUD_RUNTIME_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The store, when it is not the SQLite file in the data directory: a PostgreSQL
    /// database that replicas share (`postgres://USER@HOST:PORT/DATABASE`; give the password
    /// in this variable or in PGPASSWORD rather than on the command line).
    // Parsed here rather than by clap, whose error would quote the URL, password and all.
    #[arg(long, env = "CLOUD_RUNTIME_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl DataDirArg {
    /// The data directory, with the store these flags name.
    pub fn data_dir(self) -> Result<DataDir, DatabaseUrlError> {
        let database = self.database_url.as_deref().map(str::parse).transpose()?;
        Ok(DataDir::new(self.data_dir).with_database(database))
    }

    /// The store of an initialised data directory.
    pub async fn store(self) -> Result<Store> {
        let data = self.data_dir()?;
        data.config()?;
        Ok(data.store().await?)
    }
}

/// Writing to stdout failed.
#[derive(Debug, thiserror::Error)]
#[error("writing to stdout: {0}")]
pub struct StdoutError(pub std::io::Error);

/// `policy check` found the call denied (already printed; exit status 1).
#[derive(Debug, thiserror::Error)]
#[error("denied")]
pub struct Denied;

/// The exit status after stdout was closed by its reader: 128 + SIGPIPE, as a shell shows
/// for `ls | head`.
const BROKEN_PIPE_STATUS: u8 = 141;

/// The exit status for bad configuration: `EX_USAGE` of sysexits.h.
pub const BAD_CONFIGURATION_STATUS: u8 = 64;

/// Flushes stdout and turns a command's result into the process's exit status, printing
/// the error (if any) to stderr.
pub fn finish(result: Result<()>) -> ExitCode {
    // What is still buffered goes out now, where a closed pipe is seen.
    let result = result.and_then(|()| {
        std::io::Write::flush(&mut std::io::stdout()).map_err(|e| StdoutError(e).into())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Denied>() => ExitCode::from(1),
        // The reader went away (`| head`, `| grep -q`): end quietly, with the status a
        // process killed by SIGPIPE has in a shell.
        Err(e) if is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(e) => {
            eprintln!("error: {e:#}");
            if is_bad_configuration(&e) {
                ExitCode::from(BAD_CONFIGURATION_STATUS)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Whether `e` is a write to a stdout nobody reads any more.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<StdoutError>()
        .is_some_and(|StdoutError(io)| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Whether `e` asks the operator to fix the configuration.
fn is_bad_configuration(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ConfigError>().is_some()
        || e.downcast_ref::<DatabaseUrlError>().is_some()
        || e.downcast_ref::<cloud_runtime::cluster::BadNatsUrl>()
            .is_some()
        || e.downcast_ref::<DataDirError>()
            .is_some_and(DataDirError::is_bad_configuration)
        || e.downcast_ref::<StartError>()
            .is_some_and(StartError::is_bad_configuration)
        || e.downcast_ref::<cloud_runtime::sealed_keys::SealedKeyError>()
            .is_some_and(cloud_runtime::sealed_keys::SealedKeyError::is_bad_configuration)
        || e.downcast_ref::<cloud_runtime::runtime_keys::KeysError>()
            .is_some_and(cloud_runtime::runtime_keys::KeysError::is_bad_configuration)
}

/// A Unix-milliseconds time as RFC 3339 (UTC, to the second), or the number if it is out
/// of range.
fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// Checks a user, agent, role or group name with the runtime's one rule.
fn principal_name(s: &str, what: &str) -> Result<String> {
    if cloud_runtime::identity::valid_name(s) {
        Ok(s.to_owned())
    } else {
        bail!("{what} {s:?} must be 1 to 64 letters, digits, '.', '_', '-' or '@'")
    }
}
