//! `cloud-runtime audit verify | search | tail`.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use cloud_runtime::audit::record::AuditRecord;
use cloud_runtime::audit::verify::{self, ChainText};
use cloud_runtime::audit::{chain, index, receipts, search};
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
    /// Search one tenant's records, newest first, a page at a time (the admin API's
    /// search): every filter given must match exactly.
    Search(Box<SearchArgs>),
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

/// `audit search`'s flags.
#[derive(Args)]
pub struct SearchArgs {
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// From (RFC 3339; default: a day before --to).
    #[arg(long)]
    from: Option<String>,
    /// To (RFC 3339; default: now).
    #[arg(long)]
    to: Option<String>,
    /// Only this user's records.
    #[arg(long)]
    user: Option<String>,
    /// Only this agent's.
    #[arg(long)]
    agent: Option<String>,
    /// Only this tool's.
    #[arg(long)]
    tool: Option<String>,
    /// Only this connector's.
    #[arg(long)]
    connector: Option<String>,
    /// Only records of this kind (decision, upstream, outcome, authorization,
    /// certificate, admin).
    #[arg(long)]
    kind: Option<String>,
    /// Only decisions that were this (allow, deny).
    #[arg(long)]
    decision: Option<String>,
    /// Only denials by this layer (gateway, agent, user, connector, hook).
    #[arg(long)]
    layer: Option<String>,
    /// Only outcomes that were this (ok, tool_error, denied, unavailable, ...).
    #[arg(long)]
    outcome: Option<String>,
    /// Only this trace's records.
    #[arg(long)]
    trace_id: Option<String>,
    /// Records per page (1 to 500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue after a previous page (its printed next cursor).
    #[arg(long)]
    cursor: Option<String>,
    /// Print the records' lines as chained (NDJSON), every page to the end of the range.
    #[arg(long)]
    ndjson: bool,
    #[command(flatten)]
    dir: DataDirArg,
}

/// The audit chains of the runtime at `data`.
async fn chains(data: &DataDir) -> Result<Vec<ChainText>> {
    let store = data.store().await?;
    Ok(verify::chains(&store, &data.audit_log()).await?)
}

/// Checks the receipts in `chain` against the connectors' audit keys; true if every one
/// verifies.
async fn verify_receipts(store: &Store, chain: &ChainText) -> Result<bool> {
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
                match verify::verify(&chain)? {
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
        AuditCommand::Search(args) => {
            let SearchArgs {
                tenant,
                from,
                to,
                user,
                agent,
                tool,
                connector,
                kind,
                decision,
                layer,
                outcome,
                trace_id,
                limit,
                cursor,
                ndjson,
                dir,
            } = *args;
            let params: BTreeMap<String, String> = [
                ("from", from),
                ("to", to),
                ("user", user),
                ("agent", agent),
                ("tool", tool),
                ("connector", connector),
                ("kind", kind),
                ("decision", decision),
                ("layer", layer),
                ("outcome", outcome),
                ("trace_id", trace_id),
                ("limit", Some(limit.to_string())),
                ("cursor", cursor),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
            let data = dir.data_dir()?;
            data.config()?;
            let store = data.store().await?;
            let chains = match store.engine() {
                Engine::Postgres => index::Chains::Store,
                Engine::Sqlite => index::Chains::File(data.audit_log()),
            };
            // No runtime may be following the chains: bring the index up to them first.
            index::catch_up(store.clone(), chains).await?;
            let mut filter = search::parse(&tenant, &params, store.now_ms())?;
            loop {
                let page = search::search(&store, &filter).await?;
                for r in &page.records {
                    if ndjson {
                        println!("{}", r.line);
                    } else {
                        print_line(r.line.as_bytes(), Some(&r.chain))?;
                    }
                }
                match page.next_cursor {
                    Some(next) if ndjson => {
                        filter.after = Some(search::decode_cursor(&next)?);
                    }
                    Some(next) => {
                        println!("next page: --cursor {next}");
                        break;
                    }
                    None => break,
                }
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
        print_line(line, None)?;
    }
    Ok(())
}

/// Prints one record line for people: sequence number (with its chain, when several are
/// searched), time, kind, who, what, and how it went.
fn print_line(line: &[u8], chain_name: Option<&str>) -> Result<()> {
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
            let seq = match chain_name {
                Some(c) if c != index::LOCAL_CHAIN => format!("{c}#{}", p.seq),
                _ => p.seq.to_string(),
            };
            println!(
                "{:>6} {} {:<10} {}/{} via {} {} {} {}",
                seq,
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
    Ok(())
}
