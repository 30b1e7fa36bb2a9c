//! `cloud-runtime audit verify | tail`.

use std::collections::HashMap;

use anyhow::{Result, bail};
use clap::Subcommand;
use cloud_runtime::audit::log::verify_file;
use cloud_runtime::audit::record::AuditRecord;
use cloud_runtime::audit::{chain, receipts};
use cloud_runtime::data_dir::DataDir;

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

/// Checks the receipts in the audit log at `path` against the connectors' audit keys;
/// true if every one verifies.
async fn verify_receipts(data: &DataDir, path: &std::path::Path) -> Result<bool> {
    let text = std::fs::read(path)?;
    let records: Vec<(u64, AuditRecord)> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        // Read whether or not the line still matches its hash: a runtime that forged a
        // receipt could have rewritten the chain too.
        .filter_map(|l| serde_json::from_slice::<chain::Parsed>(l).ok())
        .map(|p| (p.seq, p.record))
        .collect();
    let store = data.store().await?;
    let mut keys = HashMap::new();
    for connector in records.iter().filter_map(|(_, r)| r.connector.clone()) {
        if let std::collections::hash_map::Entry::Vacant(e) = keys.entry(connector) {
            let announced = store.audit_keys(e.key()).await?;
            e.insert(announced);
        }
    }
    let checked = receipts::check(&records, &keys);
    for p in &checked.problems {
        eprintln!("{}: {p}", path.display());
    }
    println!(
        "{}: {} receipts verify, {} do not",
        path.display(),
        checked.valid,
        checked.problems.len()
    );
    Ok(checked.problems.is_empty())
}

/// Runs an `audit` subcommand.
pub async fn run(command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Verify { receipts, dir } => {
            let data = dir.data_dir()?;
            let path = data.audit_log();
            // Receipts are checked whatever the chain says: both are reported.
            if receipts && !verify_receipts(&data, &path).await? {
                if let Err(problems) = verify_file(&path)? {
                    for p in &problems {
                        eprintln!("{}: {p}", path.display());
                    }
                }
                bail!("some records carry receipts their connector did not sign");
            }
            match verify_file(&path)? {
                Ok(head) => println!(
                    "{}: {} records, chain intact (last hash {})",
                    path.display(),
                    head.seq,
                    head.hash
                ),
                Err(problems) => {
                    for p in &problems {
                        eprintln!("{}: {p}", path.display());
                    }
                    bail!(
                        "the audit log was tampered with: {} problem(s), the first at {}",
                        problems.len(),
                        problems
                            .first()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    );
                }
            }
        }
        AuditCommand::Tail { lines, json, dir } => {
            let data = dir.data_dir()?;
            let text = std::fs::read(data.audit_log())?;
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
        }
    }
    Ok(())
}
