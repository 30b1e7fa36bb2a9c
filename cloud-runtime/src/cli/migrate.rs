//! `cloud-runtime migrate`: brings the store's schema up to this binary's, and says where
//! it stands (`serve` does the same at start); `migrate-store`: moves a store to another
//! database (a single-process install to PostgreSQL).

use anyhow::{Context, Result, bail};
use clap::Args;
use cloud_runtime::audit::chain;
use cloud_runtime::replica::ReplicaId;
use cloud_runtime::store::{DatabaseUrl, Store};

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

/// `migrate-store` arguments.
#[derive(Args)]
pub struct MigrateStoreArgs {
    /// The store to copy: `sqlite:DIR` (a data directory) or `sqlite:FILE`.
    #[arg(long)]
    from: String,
    /// The empty database to copy it into (`postgres://USER@HOST:PORT/DATABASE`).
    #[arg(long, env = "CLOUD_RUNTIME_DATABASE_URL")]
    to: String,
    /// The replica whose audit chain the data directory's audit log becomes (the
    /// `--replica-id` its `serve` will have; default: the host name).
    #[arg(long, env = "CLOUD_RUNTIME_REPLICA_ID")]
    replica_id: Option<ReplicaId>,
}

/// Runs `migrate-store`.
pub async fn run_store(args: MigrateStoreArgs) -> Result<()> {
    let mut from: DatabaseUrl = args.from.parse()?;
    let to: DatabaseUrl = args.to.parse()?;
    // Held while copying, so no `serve` of that data directory starts writing meanwhile.
    let mut _serve_lock = None;
    let mut audit_log = None;
    if let DatabaseUrl::Sqlite(path) = &mut from {
        if path.is_dir() {
            audit_log = Some(path.join("audit.log")).filter(|p| p.is_file());
            let lock = std::fs::File::create(path.join("serve.lock"))
                .with_context(|| format!("opening {}", path.join("serve.lock").display()))?;
            if lock.try_lock().is_err() {
                bail!(
                    "a cloud-runtime serve is running on {}: stop it (and every other command using it) first",
                    path.display()
                );
            }
            _serve_lock = Some(lock);
            *path = path.join("runtime.db");
        }
        if !path.is_file() {
            bail!(
                "{} does not exist: there is no store to copy",
                path.display()
            );
        }
    }
    let source = Store::connect(&from)
        .await
        .with_context(|| format!("opening {from}"))?;
    let target = Store::connect(&to)
        .await
        .with_context(|| format!("opening {to}"))?;
    let copied = source
        .copy_into(&target)
        .await
        .with_context(|| format!("copying {from} into {to}"))?;
    for c in &copied {
        println!("{:>8} {}", c.rows, c.table);
    }
    let rows: u64 = copied.iter().map(|c| c.rows).sum();
    println!(
        "copied {rows} rows of {} tables from {from} into {to}",
        copied.len()
    );
    if let Some(path) = audit_log {
        let replica = args.replica_id.unwrap_or_else(ReplicaId::of_this_host);
        let n = import_audit_log(&path, &target, replica.as_str()).await?;
        println!(
            "{}: {n} audit records now the chain of replica {replica}",
            path.display()
        );
    }
    println!("run serve with --database-url");
    Ok(())
}

/// Copies the audit log at `path`, after checking its chain, into the store as `replica`'s
/// chain; returns how many records.
async fn import_audit_log(path: &std::path::Path, target: &Store, replica: &str) -> Result<u64> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if let Err(problems) = chain::verify(&text) {
        bail!(
            "{} does not verify ({} problem(s), the first: {}); not copied",
            path.display(),
            problems.len(),
            problems
                .first()
                .map(ToString::to_string)
                .unwrap_or_default()
        );
    }
    let mut rows = Vec::new();
    let mut heads = Vec::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let p = chain::parse_line(line).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        rows.push((p.seq, line.to_vec()));
        heads.push(p.hash);
    }
    for (part, hashes) in rows.chunks(1000).zip(heads.chunks(1000)) {
        let (Some((seq, _)), Some(hash)) = (part.last(), hashes.last()) else {
            continue;
        };
        target
            .append_audit_lines(replica, part, (*seq, hash))
            .await
            .with_context(|| format!("storing the audit chain of replica {replica}"))?;
    }
    Ok(rows.len() as u64)
}
