//! `cloud-runtime migrate`: brings the store's schema up to this binary's, and says where
//! it stands (`serve` does the same at start).

use anyhow::{Context, Result};
use clap::Args;
use cloud_runtime::store::Store;

use super::DataDirArg;

/// `migrate` arguments.
#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    dir: DataDirArg,
}

/// Runs `migrate`.
pub async fn run(args: MigrateArgs) -> Result<()> {
    let url = args.dir.data_dir()?.database();
    let versions = Store::migrate(&url)
        .await
        .with_context(|| format!("migrating the store at {url}"))?;
    let latest = versions.last().copied().unwrap_or(0);
    println!(
        "{url}: schema at migration {latest} ({} migrations applied)",
        versions.len()
    );
    Ok(())
}
