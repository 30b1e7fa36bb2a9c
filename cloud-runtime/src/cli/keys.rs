//! `cloud-runtime keys rotate-token-signing`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use cloud_runtime::runtime_keys;
use cloud_runtime::sealed_keys::KeyEncryptionKey;

use super::DataDirArg;

/// `keys` subcommands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Replace the access-token signing key in the store with a new one. Every running
    /// replica signs with it within half a second; tokens of the replaced key stay good
    /// until they expire (ten minutes), those of the key before it no longer. Needs the
    /// keys in the store (`serve --key-encryption-key-file`).
    RotateTokenSigning {
        /// The key-encryption key the replicas run with.
        #[arg(long, env = "CLOUD_RUNTIME_KEY_ENCRYPTION_KEY_FILE")]
        key_encryption_key_file: PathBuf,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// Runs a `keys` subcommand.
pub async fn run(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::RotateTokenSigning {
            key_encryption_key_file,
            dir,
        } => {
            let kek = KeyEncryptionKey::load(&key_encryption_key_file)?;
            let store = dir.store().await?;
            let (old, new) = runtime_keys::rotate_token_signing(&store, &kek).await?;
            println!(
                "token-signing key rotated: new key {new}; tokens of {old} stay good until they expire"
            );
        }
    }
    Ok(())
}
