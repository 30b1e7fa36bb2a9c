//! `edge-connector vault init | set | list | rm | rotate-key`. Secrets come from standard
//! input or a file, never from the command line (where `ps` and shell history would see
//! them), and are never printed.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use edge_connector::config::Config;
use edge_connector::vault::{EntryName, Vault};
use secrecy::SecretString;
use zeroize::Zeroizing;

/// `vault` subcommands.
#[derive(Subcommand)]
pub enum VaultCommand {
    /// Create the vault's key if there is none; prints its public key.
    Init,
    /// Store a secret under NAME, read from standard input (or --file).
    Set {
        /// Entry name, e.g. provider/ghes/client_secret or user/ghes/alice.
        name: String,
        /// Read the secret from this file instead of standard input.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// List entries: names and metadata only.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an entry.
    Rm {
        /// Entry name.
        name: String,
    },
    /// Replace the vault's key with a new one and re-encrypt the vault to it.
    RotateKey,
}

fn read_secret(file: Option<PathBuf>) -> Result<SecretString> {
    let mut text = Zeroizing::new(String::new());
    match file {
        Some(path) => {
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .with_context(|| format!("reading {}", path.display()))?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!(
                    "type the secret, then Enter and Ctrl-D (it is not echoed back afterwards)"
                );
            }
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the secret from standard input")?;
        }
    }
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        bail!("the secret is empty");
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

fn format_ms(ms: Option<i64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

/// Runs a `vault` subcommand.
pub fn run(command: VaultCommand, config: &Config) -> Result<()> {
    match command {
        VaultCommand::Init => {
            let (vault, created) = Vault::init(config)?;
            println!(
                "{} {}",
                if created {
                    "created key"
                } else {
                    "key exists at"
                },
                vault.key_source().path().display()
            );
            println!("public key: {}", vault.public_key());
            println!("vault file: {}", vault.path().display());
        }
        VaultCommand::Set { name, file } => {
            let name = EntryName::parse(&name)?;
            let secret = read_secret(file)?;
            let (vault, _) = Vault::init(config)?;
            vault.set(&name, secret)?;
            println!("stored {name}");
        }
        VaultCommand::List { json } => {
            let entries = Vault::open(config)?.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                println!(
                    "{:<48} {:<11} {:<21} {:<21} ACCOUNT",
                    "NAME", "KIND", "UPDATED", "EXPIRES"
                );
                for e in entries {
                    println!(
                        "{:<48} {:<11} {:<21} {:<21} {}",
                        e.name,
                        serde_json::to_value(e.kind)?.as_str().unwrap_or("?"),
                        format_ms(Some(e.updated_at)),
                        format_ms(e.expires_at),
                        e.account.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        VaultCommand::Rm { name } => {
            let name = EntryName::parse(&name)?;
            if Vault::open(config)?.remove(&name)? {
                println!("removed {name}");
            } else {
                bail!("the vault has no entry {name}");
            }
        }
        VaultCommand::RotateKey => {
            let public = Vault::open(config)?.rotate_key()?;
            println!("rotated; new public key: {public}");
            // A running connector holds the old key (under systemd, a credential snapshot
            // taken at start) and can no longer read the vault until it restarts.
            println!(
                "restart the connector now (systemctl restart edge-connector) so that it reads the vault with the new key"
            );
        }
    }
    Ok(())
}
