//! `cloud-runtime client list | revoke`: the OAuth clients that act in a tenant.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use cloud_runtime::admin_api::clients::view;
use shared::identity::TenantId;

use super::DataDirArg;

/// `client` subcommands.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// List the OAuth clients that got tokens in a tenant, last used first.
    List {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Revoke a client in a tenant: it gets no token there from now on, and its refresh
    /// tokens there are spent, and an access token it holds is refused within a second.
    Revoke {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Client id.
        client_id: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

fn when(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
    )
    .to_string()
}

/// Runs a `client` subcommand.
pub async fn run(command: ClientCommand) -> Result<()> {
    match command {
        ClientCommand::List { tenant, json, dir } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let clients = dir.store().await?.client_grants(tenant.as_str()).await?;
            if json {
                let views: Vec<_> = clients.iter().map(view).collect();
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                println!(
                    "{:<38} {:<20} {:<21} {:<21} {:<12} REDIRECT HOSTS",
                    "CLIENT", "NAME", "FIRST USE", "LAST USE", "AGENT"
                );
                for c in clients {
                    println!(
                        "{:<38} {:<20} {:<21} {:<21} {:<12} {}{}",
                        c.client_id,
                        c.client_name.as_deref().unwrap_or("-"),
                        when(c.first_used_at),
                        when(c.last_used_at),
                        c.agent.as_deref().unwrap_or("-"),
                        c.redirect_hosts().join(","),
                        if c.revoked_at.is_some() {
                            " (revoked)"
                        } else {
                            ""
                        },
                    );
                }
            }
        }
        ClientCommand::Revoke {
            tenant,
            client_id,
            dir,
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let store = dir.store().await?;
            match store
                .revoke_client_grant(tenant.as_str(), &client_id)
                .await?
            {
                None => bail!("no OAuth client {client_id} acts in tenant {tenant}"),
                Some(true) => println!(
                    "revoked OAuth client {client_id} in tenant {tenant}; its refresh tokens there are spent"
                ),
                Some(false) => {
                    println!("OAuth client {client_id} was already revoked in tenant {tenant}")
                }
            }
        }
    }
    Ok(())
}
