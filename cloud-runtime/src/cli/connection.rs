//! `cloud-runtime connection list | revoke`: the users' upstream connections. They live in
//! the connectors' vaults, reached only over the live tunnels, so these ask the running
//! `serve` on its admin socket (as the calling Unix user), as the admin API does.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use cloud_runtime::admin::{self, AdminRequest, RevokeConnection};

use super::DataDirArg;

/// `connection` subcommands.
#[derive(Subcommand)]
pub enum ConnectionCommand {
    /// List who connected which provider, through which connector (never a token).
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
    /// Have a connector forget a user's tokens at a provider: their next call asks them to
    /// connect again.
    Revoke {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// The connector that holds the connection.
        #[arg(long)]
        connector: String,
        /// The provider instance.
        #[arg(long)]
        provider: String,
        /// The user, as `connection list` shows them.
        #[arg(long)]
        user: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// Runs a `connection` subcommand.
pub async fn run(command: ConnectionCommand) -> Result<()> {
    let (dir, request, json) = match command {
        ConnectionCommand::List { tenant, json, dir } => (
            dir,
            AdminRequest::Connections {
                tenant,
                revoke: None,
            },
            json,
        ),
        ConnectionCommand::Revoke {
            tenant,
            connector,
            provider,
            user,
            dir,
        } => (
            dir,
            AdminRequest::Connections {
                tenant,
                revoke: Some(RevokeConnection {
                    connector,
                    provider,
                    user,
                }),
            },
            true,
        ),
    };
    let answer = admin::request(&dir.data_dir()?.admin_socket(), &request).await?;
    if !answer.ok {
        bail!("{}", answer.error.unwrap_or_else(|| "failed".into()));
    }
    let result = answer.result.context("the runtime answered nothing")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<16} {:<36} {:<24} {:<8} ACCOUNT",
        "CONNECTOR", "PROVIDER", "USER", "NAME", "SOURCE"
    );
    let text = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    let empty = Vec::new();
    for c in result
        .get("connections")
        .and_then(serde_json::Value::as_array)
        .unwrap_or(&empty)
    {
        println!(
            "{:<24} {:<16} {:<36} {:<24} {:<8} {}",
            text(c, "connector"),
            text(c, "provider"),
            text(c, "user"),
            text(c, "user_name"),
            text(c, "source"),
            text(c, "account")
        );
    }
    for u in result
        .get("unreachable")
        .and_then(serde_json::Value::as_array)
        .unwrap_or(&empty)
    {
        eprintln!(
            "connector {} did not answer: {}",
            text(u, "connector"),
            text(u, "message")
        );
    }
    Ok(())
}
