//! `cloud-runtime tenant create | list`.

use anyhow::{Context, Result};
use clap::Subcommand;
use shared::identity::TenantId;

use super::DataDirArg;

/// `tenant` subcommands.
#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant name: lowercase letters, digits and '-'.
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// Runs a `tenant` subcommand.
pub async fn run(command: TenantCommand) -> Result<()> {
    match command {
        TenantCommand::Create { name, dir } => {
            let tenant: TenantId = name.parse().context("tenant name")?;
            dir.store().await?.create_tenant(&tenant).await?;
            println!("created tenant {tenant}");
        }
        TenantCommand::List { dir } => {
            for t in dir.store().await?.tenants().await? {
                println!("{t}");
            }
        }
    }
    Ok(())
}
