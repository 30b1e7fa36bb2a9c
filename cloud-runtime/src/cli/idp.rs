//! `cloud-runtime idp set | show`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use cloud_runtime::server;
use cloud_runtime::tenancy::{self, IdpSettings};
use shared::identity::TenantId;

use super::DataDirArg;

/// `idp` subcommands.
#[derive(Subcommand)]
pub enum IdpCommand {
    /// Users of the tenant sign in at this provider from now on; their group claim becomes
    /// their grants. Prints the redirect URI to register there
    /// (https://HOSTNAME:PORT/oauth/idp/callback).
    Set {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Issuer URL (https; http only on a loopback host).
        #[arg(long)]
        issuer: String,
        /// Client id registered at the provider.
        #[arg(long)]
        client_id: String,
        /// File holding the client secret (never on the command line).
        #[arg(long)]
        client_secret_file: PathBuf,
        /// Name of the ID-token claim listing the user's groups.
        #[arg(long, default_value = "groups")]
        groups_claim: String,
        /// How often a user's groups and status are asked of the provider again, at a
        /// refresh of their token (with the refresh token the provider gave the runtime;
        /// without one, the user signs in again after this time). `0s`: at every refresh.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        recheck_groups: Duration,
        /// The group (in the groups claim) whose members administer the tenant in its web
        /// console (default `tenant-admins`).
        #[arg(long)]
        admin_group: Option<String>,
        /// The port MCP clients and browsers reach the runtime's HTTPS endpoint on (that of
        /// `serve --https-listen`, or the load balancer's).
        #[arg(long, default_value_t = 8443)]
        https_port: u16,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Show the tenant's identity provider (not its secret) and the redirect URI to
    /// register there.
    Show {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// The port MCP clients and browsers reach the runtime's HTTPS endpoint on.
        #[arg(long, default_value_t = 8443)]
        https_port: u16,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// Runs an `idp` subcommand.
pub async fn run(command: IdpCommand) -> Result<()> {
    match command {
        IdpCommand::Set {
            tenant,
            issuer,
            client_id,
            client_secret_file,
            groups_claim,
            recheck_groups,
            admin_group,
            https_port,
            dir,
        } => {
            let hostname = dir.clone().data_dir()?.config()?.hostname;
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let settings = IdpSettings::new(
                issuer.clone(),
                client_id,
                &client_secret_file,
                groups_claim,
                recheck_groups,
            )?;
            let store = dir.store().await?;
            tenancy::set_idp(&store, &tenant, settings).await?;
            println!("tenant {tenant} now signs users in at {issuer}");
            if let Some(group) = admin_group {
                let group = super::principal_name(&group, "admin group")?;
                store.set_admin_group(tenant.as_str(), &group).await?;
                println!("members of group {group} administer tenant {tenant} in its console");
            }
            println!(
                "register this redirect URI at the provider: {}",
                server::idp_redirect_uri(&hostname, https_port)
            );
        }
        IdpCommand::Show {
            tenant,
            https_port,
            dir,
        } => {
            let hostname = dir.clone().data_dir()?.config()?.hostname;
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let store = dir.store().await?;
            match tenancy::idp(&store, &tenant).await? {
                Some(idp) => {
                    println!("issuer:       {}", idp.issuer);
                    println!("client id:    {}", idp.client_id);
                    println!("groups claim: {}", idp.groups_claim);
                    println!(
                        "admin group:  {}",
                        store.admin_group(tenant.as_str()).await?
                    );
                    println!(
                        "recheck:      groups and status asked again at refresh, every {}",
                        humantime::format_duration(Duration::from_secs(
                            u64::try_from(idp.recheck_secs).unwrap_or(0)
                        ))
                    );
                }
                None => println!("tenant {tenant} has no identity provider (local users only)"),
            }
            println!(
                "redirect URI: {}",
                server::idp_redirect_uri(&hostname, https_port)
            );
        }
    }
    Ok(())
}
