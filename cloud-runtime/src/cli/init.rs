//! `cloud-runtime init`.

use anyhow::Result;
use clap::Args;

use super::DataDirArg;

/// `init` flags.
#[derive(Args)]
pub struct InitArgs {
    #[command(flatten)]
    dir: DataDirArg,
    /// Public hostname (DNS name or IP) connectors and clients reach the runtime at.
    #[arg(long)]
    hostname: String,
    /// SPIFFE trust domain for connector identities (default: the hostname).
    #[arg(long)]
    trust_domain: Option<String>,
}

/// Creates the data directory: CA, server certificate, store.
pub async fn run(args: InitArgs) -> Result<()> {
    let data = args.dir.data_dir()?;
    let ca = data.init(&args.hostname, args.trust_domain.as_deref())?;
    data.store().await?;
    println!("initialized {}", data.root().display());
    println!("trust domain:   {}", ca.trust_domain());
    println!("ca fingerprint: {}", ca.fingerprint());
    Ok(())
}
