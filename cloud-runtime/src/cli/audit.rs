//! `cloud-runtime audit verify | tail`.

use std::collections::HashMap;

use anyhow::{Result, bail};
use clap::Subcommand;
use cloud_runtime::audit::chain::Head;
use cloud_runtime::audit::log::verify_file;
use cloud_runtime::audit::record::AuditRecord;
use cloud_runtime::audit::{chain, receipts};
use cloud_runtime::data_dir::DataDir;
use cloud_runtime::store::{Engine, Store};

use super::DataDirArg;

/// `audit` subcommands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain: exits non-zero, naming the record, if any record
    /// was changed, removed or reordered.
    Verify {
        /// Also check every connector receipt against the audit keys its connector
        /// announced: a receipt that does not verify is a record the connector did not vouch for.
        #[arg(long)]
        receipts: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Print the last records.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Print the records as JSON lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// One audit chain: the data directory's file (one process), or a replica's chain in the
/// database (replicas on PostgreSQL).
struct Chain {
    /// How messages name it.
    label: String,
    /// Its lines.
    text: Vec<u8>,
    /// The file, checked against its head checkpoint too.
    file: Option<std::path::PathBuf>,
    /// A stored chain's head checkpoint.
    head: Option<Head>,
}

/// The audit chains of the runtime at `data`.
async fn chains(data: &DataDir) -> Result<Vec<Chain>> {
    let store = data.store().await?;
    if store.engine() == Engine::Postgres {
        let mut out = Vec::new();
        for replica in store.audit_chain_replicas().await? {
            out.push(Chain {
                label: format!("audit chain of replica {replica}"),
                text: store.audit_chain_text(&replica).await?,
                file: None,
                head: store
                    .audit_chain_head(&replica)
                    .await?
                    .map(|(seq, hash)| Head { seq, hash }),
            });
        }
        return Ok(out);
    }
    let path = data.audit_log();
    Ok(vec![Chain {
        label: path.display().to_string(),
        text: std::fs::read(&path)?,
        file: Some(path),
        head: None,
    }])
}

/// Checks the receipts in `chain` against the connectors' audit keys; true if every one
/// verifies.
async fn verify_receipts(store: &Store, chain: &Chain) -> Result<bool> {
    let records: Vec<(u64, AuditRecord)> = chain
        .text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        // Read whether or not the line still matches its hash: a runtime that forged a
        // receipt could have rewritten the chain too.
        .filter_map(|l| serde_json::from_slice::<chain::Parsed>(l).ok())
        .map(|p| (p.seq, p.record))
        .collect();
    let mut keys = HashMap::new();
    for connector in records.iter().filter_map(|(_, r)| r.connector.clone()) {
        if let std::collections::hash_map::Entry::Vacant(e) = keys.entry(connector) {
            let announced = store.audit_keys(e.key()).await?;
            e.insert(announced);
        }
    }
    let checked = receipts::check(&records, &keys);
    for p in &checked.problems {
        eprintln!("{}: {p}", chain.label);
    }
    println!(
        "{}: {} receipts verify, {} do not",
        chain.label,
        checked.valid,
        checked.problems.len()
    );
    Ok(checked.problems.is_empty())
}

/// Verifies `chain`'s hashes, and that it still reaches its head checkpoint.
fn verify_chain(chain: &Chain) -> Result<Result<Head, Vec<chain::Problem>>> {
    Ok(match &chain.file {
        Some(path) => verify_file(path)?,
        None => chain::verify_against(&chain.text, chain.head.as_ref()),
    })
}

/// Runs an `audit` subcommand.
pub async fn run(command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Verify { receipts, dir } => {
            let data = dir.data_dir()?;
            let store = data.store().await?;
            let mut failures = Vec::new();
            for chain in chains(&data).await? {
                // Receipts are checked whatever the chain says: both are reported.
                if receipts && !verify_receipts(&store, &chain).await? {
                    failures.push(format!(
                        "{}: some records carry receipts their connector did not sign",
                        chain.label
                    ));
                }
                match verify_chain(&chain)? {
                    Ok(head) => println!(
                        "{}: {} records, chain intact (last hash {})",
                        chain.label, head.seq, head.hash
                    ),
                    Err(problems) => {
                        for p in &problems {
                            eprintln!("{}: {p}", chain.label);
                        }
                        failures.push(format!(
                            "the audit log was tampered with: {} problem(s), the first at {}",
                            problems.len(),
                            problems
                                .first()
                                .map(ToString::to_string)
                                .unwrap_or_default()
                        ));
                    }
                }
            }
            if let Some(first) = failures.first() {
                bail!("{first}");
            }
        }
        AuditCommand::Tail { lines, json, dir } => {
            let data = dir.data_dir()?;
            let chains = chains(&data).await?;
            let several = chains.len() > 1;
            for chain in chains {
                if several && !json {
                    println!("== {}", chain.label);
                }
                tail(&chain.text, lines, json)?;
            }
        }
    }
    Ok(())
}

/// Prints the last `lines` records of `text`.
fn tail(text: &[u8], lines: usize, json: bool) -> Result<()> {
    let all: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    for line in all.iter().skip(all.len().saturating_sub(lines)) {
        if json {
            println!("{}", String::from_utf8_lossy(line));
            continue;
        }
        match chain::parse_line(line) {
            Ok(p) => {
                let r = p.record;
                let what = match (&r.decision, &r.upstream, &r.outcome) {
                    (Some(d), _, _) => format!(
                        "{d:?}{}",
                        r.layer.map(|l| format!(" by {l}")).unwrap_or_default()
                    )
                    .to_lowercase(),
                    (_, Some(u), _) => format!("{} {} -> {}", u.method, u.route, u.status),
                    (_, _, Some(o)) => format!(
                        "{o}{}",
                        r.duration_ms
                            .map(|d| format!(" in {d:.1} ms"))
                            .unwrap_or_default()
                    ),
                    _ => String::new(),
                };
                println!(
                    "{:>6} {} {:<10} {}/{} via {} {} {} {}",
                    p.seq,
                    r.time,
                    format!("{:?}", r.kind).to_lowercase(),
                    r.tenant,
                    r.user,
                    r.agent,
                    r.tool,
                    match (&r.instance, &r.target) {
                        (Some(i), Some(t)) => format!("{i}:{t}"),
                        (Some(i), None) => i.clone(),
                        (None, Some(t)) => t.clone(),
                        (None, None) => "-".to_owned(),
                    },
                    what
                );
            }
            Err(e) => println!("?????? unreadable record: {e}"),
        }
    }
    Ok(())
}
