//! `edge-connector audit key | verify | tail | export | reconcile`: the connector's own
//! signed log, read without the running service (files only, no network).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use edge_connector::audit::{self, AuditKey, export, key::PublicKey, reconcile, verify};
use edge_connector::config::Config;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `audit` subcommands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print the public half of the audit signing key and its fingerprint.
    Key,
    /// Check every record's hash and link and every seal's signature; name the first
    /// broken record. Exit code 1 when the log does not verify.
    Verify {
        /// Check against this public key (`ed25519:<base64>`, as `audit key` printed it
        /// earlier) instead of the key file's.
        #[arg(long, value_name = "KEY")]
        key: Option<PublicKey>,
    },
    /// Print the last records (NDJSON).
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
    /// Print the records written in [--from, --to): NDJSON byte for byte as stored, or
    /// OCSF API Activity events (one JSON object a line).
    Export {
        /// Start (RFC 3339, inclusive).
        #[arg(long, value_parser = rfc3339)]
        from: OffsetDateTime,
        /// End (RFC 3339, exclusive).
        #[arg(long, value_parser = rfc3339)]
        to: OffsetDateTime,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Ndjson)]
        format: Format,
    },
    /// Hold the runtime's audit records of a time range (`cloud-runtime audit tail --json`,
    /// NDJSON) against this connector's log: name every call the runtime says ran here that
    /// this log does not hold, every call that ran here that the runtime did not record, and
    /// every call whose records differ or whose receipt this connector did not sign. Exit
    /// code 1 when there is any.
    Reconcile {
        /// The runtime's export.
        #[arg(long, value_name = "FILE")]
        from: std::path::PathBuf,
    },
}

/// What `audit export` writes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The stored lines, byte for byte (each still checks against its hash).
    Ndjson,
    /// OCSF 1.6.0 API Activity (class 6003) events.
    Ocsf,
}

fn rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time (2026-12-06T00:00:00Z): {e}"))
}

fn public_key(config: &Config) -> Result<PublicKey> {
    let key = AuditKey::load(&audit::key_path(&config.state_dir))?;
    Ok(key.public())
}

fn print_lines(lines: &[Vec<u8>]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for l in lines {
        out.write_all(l)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Runs one `audit` subcommand.
pub fn run(command: AuditCommand, config: &Config) -> Result<ExitCode> {
    let dir = audit::log_dir(&config.state_dir);
    match command {
        AuditCommand::Key => {
            let public = public_key(config)?;
            println!("{public}");
            println!("fingerprint {}", public.fingerprint());
        }
        AuditCommand::Verify { key } => {
            let key = match key {
                Some(k) => k,
                None => public_key(config)?,
            };
            match verify::verify(&dir, &key) {
                Ok(r) => println!(
                    "audit log verified: {} records ({} to {}) in {} files, {} seals by {}",
                    r.records,
                    r.first_seq,
                    r.last_seq,
                    r.files,
                    r.seals,
                    key.fingerprint()
                ),
                Err(verify::VerifyError::Broken(b)) => {
                    println!("audit log does NOT verify: {b}");
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(e).context("reading the audit log"),
            }
        }
        AuditCommand::Tail { lines } => print_lines(&export::tail(&dir, lines)?)?,
        AuditCommand::Reconcile { from } => {
            let text = std::fs::read_to_string(&from)
                .with_context(|| format!("reading {}", from.display()))?;
            let state = edge_connector::state::StateDir::new(&config.state_dir);
            let connector = state.identity()?.identity.connector;
            let outcomes = reconcile::runtime_outcomes(&text, connector.as_str())?;
            let records: Vec<_> = export::tail(&dir, usize::MAX)?
                .iter()
                .filter_map(|l| audit::record::decode(l).ok())
                .collect();
            let found = reconcile::reconcile(&outcomes, &records, &public_key(config)?);
            for f in &found {
                println!("{f}");
            }
            println!(
                "{} calls in the runtime's export for connector {connector}, {} discrepancies",
                outcomes.len(),
                found.len()
            );
            if !found.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        AuditCommand::Export { from, to, format } => {
            let lines = export::range(&dir, from, to)?;
            match format {
                Format::Ndjson => print_lines(&lines)?,
                Format::Ocsf => {
                    let records: Vec<_> = lines
                        .iter()
                        .filter_map(|l| audit::record::decode(l).ok())
                        .collect();
                    let events = audit::ocsf::events(&records, edge_connector::VERSION)
                        .iter()
                        .map(|e| serde_json::to_vec(e).map_err(anyhow::Error::from))
                        .collect::<Result<Vec<_>>>()?;
                    print_lines(&events)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
