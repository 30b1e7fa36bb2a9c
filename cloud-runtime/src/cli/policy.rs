//! `cloud-runtime policy apply | show | check`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use cloud_runtime::policy::apply::apply;
use cloud_runtime::policy::check::{Question, check};
use shared::identity::TenantId;

use super::DataDirArg;

/// `policy` subcommands.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file and put it in force for a tenant (running runtimes pick it
    /// up within a second and tell live MCP sessions their tools changed).
    Apply {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// The policy file (TOML).
        file: PathBuf,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Print the policy in force (or an earlier revision).
    Show {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// A revision number (default: the one in force).
        #[arg(long)]
        revision: Option<i64>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// List every revision of a tenant's policy, newest first.
    History {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Put an earlier revision back in force, as the next revision.
    Rollback {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// The revision to put back.
        #[arg(long)]
        revision: i64,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Would this call be allowed? Prints allow or deny and the deciding layer, per gateway.
    /// Exits 0 when allowed (on the gateway, or on any gateway when none is given), 1 when
    /// denied.
    Check {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Agent name.
        #[arg(long)]
        agent: String,
        /// User name.
        #[arg(long)]
        user: String,
        /// Tool name.
        #[arg(long)]
        tool: String,
        /// Repository (GitHub owner/repo) or project (GitLab group/project) of the call.
        #[arg(long)]
        repo: Option<String>,
        /// The upstream instance of the call (the connector's `[[provider]]` name); without
        /// it, only rules that name no instance apply.
        #[arg(long)]
        instance: Option<String>,
        /// Only this gateway.
        #[arg(long)]
        gateway: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// Runs a `policy` subcommand; `Ok(false)` means "denied" for `check`.
pub async fn run(command: PolicyCommand) -> Result<bool> {
    match command {
        PolicyCommand::Apply { tenant, file, dir } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let data = dir.data_dir()?;
            data.config()?;
            let store = data.store().await?;
            let applied = apply(&store, &tenant, &file).await?;
            let (roles, groups, gateways) = applied.counts;
            println!(
                "applied {} to tenant {tenant} as revision {} ({roles} roles, {groups} groups, {gateways} gateways; sha256 {})",
                file.display(),
                applied.revision,
                applied.sha256
            );
        }
        PolicyCommand::History { tenant, json, dir } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let rows = dir.store().await?.policy_history(tenant.as_str()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<9} {:<24} {:<20} SHA-256", "REVISION", "FILE", "APPLIED");
                for r in rows {
                    println!(
                        "{:<9} {:<24} {:<20} {}",
                        r.revision,
                        r.file_name,
                        super::format_ms(r.applied_at),
                        r.sha256
                    );
                }
            }
        }
        PolicyCommand::Rollback {
            tenant,
            revision,
            dir,
        } => {
            let tenant: TenantId = tenant.parse().context("--tenant")?;
            let applied =
                cloud_runtime::policy::apply::roll_back(&dir.store().await?, &tenant, revision)
                    .await?;
            println!(
                "revision {revision} of tenant {tenant} is in force again as revision {} (sha256 {})",
                applied.revision, applied.sha256
            );
        }
        PolicyCommand::Show {
            tenant,
            revision,
            dir,
        } => {
            let data = dir.data_dir()?;
            data.config()?;
            let store = data.store().await?;
            let row = match revision {
                Some(r) => store.policy_revision(&tenant, r).await?,
                None => store.policy(&tenant).await?,
            };
            let Some(row) = row else {
                bail!(
                    "tenant {tenant} has no policy{}",
                    revision
                        .map(|r| format!(" revision {r}"))
                        .unwrap_or_default()
                );
            };
            println!(
                "# tenant {} revision {} from {} (sha256 {})",
                row.tenant, row.revision, row.file_name, row.sha256
            );
            print!("{}", row.source);
            if !row.source.ends_with('\n') {
                println!();
            }
        }
        PolicyCommand::Check {
            tenant,
            agent,
            user,
            tool,
            repo,
            instance,
            gateway,
            json,
            dir,
        } => {
            let data = dir.data_dir()?;
            data.config()?;
            let store = data.store().await?;
            let answers = check(
                &store,
                &Question {
                    tenant: &tenant,
                    agent: &agent,
                    user: &user,
                    tool: &tool,
                    repo: repo.as_deref(),
                    instance: instance.as_deref(),
                    gateway: gateway.as_deref(),
                },
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answers)?);
            } else {
                for a in &answers {
                    println!("{}: {} ({}): {}", a.gateway, a.decision, a.layer, a.reason);
                }
            }
            return Ok(answers.iter().any(|a| a.decision == "allow"));
        }
    }
    Ok(true)
}
