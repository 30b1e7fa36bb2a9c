//! `cloud-runtime gateway create | list | rm`.

use anyhow::{Context, Result};
use clap::Subcommand;
use cloud_runtime::identity::GatewayName;
use cloud_runtime::store::GatewayRow;
use cloud_runtime::tenancy;
use shared::identity::TenantId;

use super::DataDirArg;

/// `gateway` subcommands.
#[derive(Subcommand)]
pub enum GatewayCommand {
    /// Create a gateway, served at /t/<tenant>/g/<name>/mcp.
    Create {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Gateway name: lowercase letters, digits and '-'.
        name: String,
        /// Text returned to MCP clients at initialize.
        #[arg(long)]
        instructions: Option<String>,
        /// Tool-name patterns the gateway exposes, comma-separated; `*` matches any suffix.
        #[arg(long, default_value = "*", value_delimiter = ',')]
        tools: Vec<String>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Remove a gateway: its URL answers 404 once the replicas reread it (within five
    /// seconds).
    Rm {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Gateway name.
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// List gateways with their URLs.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// Runs a `gateway` subcommand.
pub async fn run(command: GatewayCommand) -> Result<()> {
    match command {
        GatewayCommand::Create {
            tenant,
            name,
            instructions,
            tools,
            dir,
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let name = GatewayName::parse(&name).context("gateway name")?;
            let tools = tenancy::tool_patterns(tools)?;
            let data = dir.data_dir()?;
            let config = data.config()?;
            data.store()
                .await?
                .create_gateway(&GatewayRow {
                    tenant: tenant.to_string(),
                    name: name.to_string(),
                    instructions,
                    tools,
                })
                .await?;
            println!("created gateway {name} of tenant {tenant}");
            println!(
                "MCP URL: https://{}:<https port>/t/{tenant}/g/{name}/mcp (the port serve listens on, 8443 by default)",
                config.hostname
            );
        }
        GatewayCommand::Rm { tenant, name, dir } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            if !dir
                .store()
                .await?
                .remove_gateway(tenant.as_str(), &name)
                .await?
            {
                anyhow::bail!("tenant {tenant} has no gateway named {name:?}");
            }
            println!("removed gateway {name} of tenant {tenant}");
        }
        GatewayCommand::List { tenant, json, dir } => {
            let rows = dir.store().await?.gateways(tenant.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<16} {:<16} {:<32} INSTRUCTIONS",
                    "TENANT", "GATEWAY", "TOOLS"
                );
                for g in rows {
                    println!(
                        "{:<16} {:<16} {:<32} {}",
                        g.tenant,
                        g.name,
                        g.tools.join(","),
                        g.instructions.as_deref().unwrap_or("-")
                    );
                }
            }
        }
    }
    Ok(())
}
