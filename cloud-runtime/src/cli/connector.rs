//! `cloud-runtime connector token create | list | revoke | ping | call`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use cloud_runtime::admin::{self, AdminRequest, AdminResponse};
use cloud_runtime::join_token;
use shared::identity::{ConnectorId, TenantId};

use super::DataDirArg;

/// `connector` subcommands.
#[derive(Subcommand)]
pub enum ConnectorCommand {
    /// Join tokens for enrolling new connectors.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List connectors with their status.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Revoke a connector: refused from now on, live tunnels dropped within a second.
    Revoke {
        /// Connector id.
        id: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Ping a connector through its tunnel (needs a running `serve`).
    Ping {
        /// Connector id.
        id: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Call a diagnostic tool (diag.*) on a connector of a tenant (needs a running `serve`).
    Call {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// A specific connector (default: any online one of the tenant).
        #[arg(long)]
        connector: Option<String>,
        /// Tool name, e.g. diag.echo.
        #[arg(long)]
        tool: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Time budget.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// `connector token` subcommands.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a one-time join token; prints it and the CA fingerprint to pin.
    Create {
        /// Tenant the connector will belong to.
        #[arg(long)]
        tenant: String,
        /// How long the token stays valid.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// Runs a `connector` subcommand.
pub async fn run(command: ConnectorCommand) -> Result<()> {
    match command {
        ConnectorCommand::Token {
            command:
                TokenCommand::Create {
                    tenant,
                    ttl,
                    json,
                    dir,
                },
        } => create_token(tenant, ttl, json, dir).await?,
        ConnectorCommand::List { json, dir } => {
            let rows = dir.store().await?.connectors().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<16} {:<16} {:<8} {:<10} {:<6} {:<20} CERT EXPIRES",
                    "ID", "TENANT", "STATUS", "VERSION", "VIA", "LAST SEEN"
                );
                for r in rows {
                    println!(
                        "{:<16} {:<16} {:<8} {:<10} {:<6} {:<20} {}",
                        r.id,
                        r.tenant,
                        serde_json::to_value(r.status)?.as_str().unwrap_or("?"),
                        r.version.as_deref().unwrap_or("-"),
                        r.transport.as_deref().unwrap_or("-"),
                        r.last_seen
                            .map(super::format_ms)
                            .unwrap_or_else(|| "never".into()),
                        super::format_ms(r.cert_not_after)
                    );
                    for w in &r.warnings {
                        println!("  WARNING: {w}");
                    }
                }
            }
        }
        ConnectorCommand::Revoke { id, dir } => {
            let id: ConnectorId = id.parse().context("connector id")?;
            if dir.store().await?.revoke(&id).await? {
                println!("revoked {id}");
            } else {
                println!("{id} was already revoked");
            }
        }
        ConnectorCommand::Ping { id, dir } => {
            let data = dir.data_dir()?;
            let resp =
                admin::request(&data.admin_socket(), &AdminRequest::Ping { connector: id }).await?;
            print_admin(resp)?;
        }
        ConnectorCommand::Call {
            tenant,
            connector,
            tool,
            args,
            timeout,
            dir,
        } => {
            let arguments: serde_json::Value =
                serde_json::from_str(&args).context("--args is not JSON")?;
            let data = dir.data_dir()?;
            let req = AdminRequest::Call {
                tenant,
                connector,
                tool,
                arguments,
                timeout_ms: Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
            };
            print_admin(admin::request(&data.admin_socket(), &req).await?)?;
        }
    }
    Ok(())
}

/// `connector token create`.
async fn create_token(tenant: String, ttl: Duration, json: bool, dir: DataDirArg) -> Result<()> {
    let tenant: TenantId = tenant.parse().context("--tenant")?;
    join_token::check_ttl(ttl)?;
    let data = dir.data_dir()?;
    let config = data.config()?;
    let fingerprint = data.ca_fingerprint()?;
    let store = data.store().await?;
    let issued = join_token::issue(&store, &tenant, ttl).await?;
    let (token, connector_id) = (&issued.token.text, &issued.connector);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "token": token,
                "connector_id": connector_id.to_string(),
                "tenant": tenant.to_string(),
                "ca_fingerprint": fingerprint.to_string(),
                "expires_at": issued.expires_at,
            })
        );
    } else {
        println!("token:          {token}");
        println!("connector id:   {connector_id}");
        println!("ca fingerprint: {fingerprint}");
        println!("expires in:     {}", humantime::format_duration(ttl));
        println!();
        println!(
            "enroll with: edge-connector enroll --runtime {}:8443 --token {token} --ca-fingerprint {} --state-dir /var/lib/edge-connector",
            config.hostname, fingerprint
        );
    }
    Ok(())
}

fn print_admin(resp: AdminResponse) -> Result<()> {
    println!("{}", serde_json::to_string(&resp)?);
    if resp.ok {
        Ok(())
    } else {
        bail!("{}", resp.error.unwrap_or_else(|| "failed".into()))
    }
}
