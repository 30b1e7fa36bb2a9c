//! `cloud-runtime agent create | rm | list | bind-client`.

use anyhow::{Context, Result};
use clap::Subcommand;
use cloud_runtime::tenancy;
use shared::identity::TenantId;

use super::{DataDirArg, principal_name};

/// `agent` subcommands.
#[derive(Subcommand)]
pub enum AgentCommand {
    /// Register an agent; prints its key once (send it as X-MCP-Agent-Key).
    Create {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Agent name.
        name: String,
        /// Role: names the tools the agent may call in the tenant's policy.
        #[arg(long)]
        role: String,
        /// Bind an OAuth client id to this agent, for clients that cannot send the key.
        #[arg(long)]
        oauth_client_id: Option<String>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// List a tenant's agents with their roles and OAuth client bindings.
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
    /// Bind an agent to an OAuth client that has already registered (a client that cannot
    /// send an agent key then acts as this agent).
    BindClient {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Agent name.
        name: String,
        /// The OAuth client's id.
        #[arg(long)]
        client_id: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Give an agent a new key (printed once); the old one is refused from the next
    /// request on.
    RotateKey {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Agent name.
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Remove an agent: its key is refused from the next request on.
    Rm {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Agent name.
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// Runs an `agent` subcommand.
pub async fn run(command: AgentCommand) -> Result<()> {
    match command {
        AgentCommand::Create {
            tenant,
            name,
            role,
            oauth_client_id,
            dir,
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let name = principal_name(&name, "agent name")?;
            let role = principal_name(&role, "role")?;
            let store = dir.store().await?;
            let key = tenancy::create_agent(&store, &tenant, &name, &role, oauth_client_id).await?;
            println!("created agent {name} (role {role}) of tenant {tenant}");
            println!("agent key (shown once; send as X-MCP-Agent-Key): {}", key.0);
        }
        AgentCommand::List { tenant, json, dir } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let agents = dir.store().await?.agents(tenant.as_str()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&agents)?);
            } else {
                println!("{:<24} {:<16} OAUTH CLIENT", "NAME", "ROLE");
                for a in agents {
                    println!(
                        "{:<24} {:<16} {}",
                        a.name,
                        a.role,
                        a.oauth_client_id.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        AgentCommand::BindClient {
            tenant,
            name,
            client_id,
            dir,
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            tenancy::bind_agent_client(&dir.store().await?, &tenant, &name, &client_id).await?;
            println!("agent {name} of tenant {tenant} is bound to OAuth client {client_id}");
        }
        AgentCommand::RotateKey { tenant, name, dir } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let key = tenancy::rotate_agent_key(&dir.store().await?, &tenant, &name).await?;
            println!(
                "agent {name} of tenant {tenant} has a new key; the old one is no longer accepted"
            );
            println!("agent key (shown once; send as X-MCP-Agent-Key): {}", key.0);
        }
        AgentCommand::Rm { tenant, name, dir } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let store = dir.store().await?;
            tenancy::remove_agent(&store, &tenant, &name).await?;
            println!("removed agent {name} of tenant {tenant}; its key is no longer accepted");
        }
    }
    Ok(())
}
