//! `cloud-runtime user add | rm | list`.

use anyhow::{Context, Result};
use clap::Subcommand;
use cloud_runtime::tenancy;
use shared::identity::TenantId;

use super::{DataDirArg, principal_name};

/// `user` subcommands.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a local user; prints their sign-in secret once.
    Add {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// User name.
        name: String,
        /// Groups (the user's grants), comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Make the user an administrator of the tenant's web console (adds the tenant's
        /// admin group, `tenant-admins` unless `idp set --admin-group` named another).
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// List a tenant's users with their ids and groups (never their secrets).
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
    /// Remove a user: their refresh tokens and browser sessions end now, their access
    /// tokens within minutes.
    Rm {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// User name.
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// Runs a `user` subcommand.
pub async fn run(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add {
            tenant,
            name,
            mut groups,
            admin,
            dir,
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let name = principal_name(&name, "user name")?;
            for g in &groups {
                principal_name(g, "group")?;
            }
            let store = dir.store().await?;
            if admin {
                let group = store.admin_group(tenant.as_str()).await?;
                if !groups.contains(&group) {
                    groups.push(group);
                }
            }
            let added = tenancy::add_user(&store, &tenant, &name, &groups).await?;
            println!(
                "added user {name} ({}) to tenant {tenant} (groups: {})",
                added.id,
                groups.join(",")
            );
            println!("sign-in secret (shown once): {}", added.secret);
        }
        UserCommand::List { tenant, json, dir } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let users = tenancy::users(&dir.store().await?, &tenant).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!("{:<24} {:<36} GROUPS", "NAME", "ID");
                for u in users {
                    println!("{:<24} {:<36} {}", u.name, u.id, u.groups.join(","));
                }
            }
        }
        UserCommand::Rm { tenant, name, dir } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let store = dir.store().await?;
            tenancy::remove_user(&store, &tenant, &name).await?;
            println!(
                "removed user {name} of tenant {tenant}; their sessions and refresh tokens are revoked"
            );
        }
    }
    Ok(())
}
