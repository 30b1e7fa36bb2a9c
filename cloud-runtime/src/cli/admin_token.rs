//! `cloud-runtime admin-token create | list | revoke`: tokens of the tenant admin API, made
//! on the runtime's host by a platform operator.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use cloud_runtime::admin_api::tokens;
use shared::identity::TenantId;

use super::DataDirArg;

/// `admin-token` subcommands.
#[derive(Subcommand)]
pub enum AdminTokenCommand {
    /// Make a token for a tenant's admin API; it is shown once.
    Create {
        /// The tenant it administers.
        #[arg(long)]
        tenant: String,
        /// Who or what it is for: the admin's name in the audit trail.
        #[arg(long)]
        name: String,
        /// What it may do, comma-separated: connectors:read, connectors:write, policy:read,
        /// policy:write, users:read, agents:read, gateways:read.
        #[arg(long)]
        scopes: String,
        /// How long it works (1m to 366d).
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        ttl: Duration,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// List a tenant's tokens (never their secrets).
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Revoke a token: refused from its next request.
    Revoke {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The token's id (`adm-...`).
        id: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// Runs an `admin-token` subcommand.
pub async fn run(command: AdminTokenCommand) -> Result<()> {
    match command {
        AdminTokenCommand::Create {
            tenant,
            name,
            scopes,
            ttl,
            dir,
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let scopes = tokens::parse_scopes(&scopes)?;
            let issued = tokens::issue(&dir.store().await?, &tenant, &name, &scopes, ttl).await?;
            println!(
                "admin token {} for tenant {tenant} ({})",
                issued.row.id, issued.row.scopes
            );
            println!("token (shown once): {}", issued.token);
        }
        AdminTokenCommand::List { tenant, json, dir } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let rows = dir.store().await?.admin_tokens(tenant.as_str()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<22} {:<20} {:<34} STATE", "ID", "NAME", "SCOPES");
                for r in rows {
                    let state = if r.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active until expiry"
                    };
                    println!("{:<22} {:<20} {:<34} {state}", r.id, r.name, r.scopes);
                }
            }
        }
        AdminTokenCommand::Revoke { tenant, id, dir } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            if tokens::revoke(&dir.store().await?, &tenant, &id).await? {
                println!("revoked {id}");
            } else {
                println!("{id} was already revoked");
            }
        }
    }
    Ok(())
}
