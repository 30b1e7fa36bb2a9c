//! A benchmark connector: the real edge-connector library (enrollment state, QUIC tunnel,
//! session, local policy) serving the connector's own diagnostic tools, with its audit log
//! (`--audit`, as `edge-connector run` always has it) or without, so that one run of the
//! tunnel benchmark measures what the connector's own record costs per call.
//!
//! Usage: `bench_connector --state-dir DIR [--audit]` (enroll with `edge-connector enroll`
//! first).

use std::sync::Arc;

use anyhow::{Context, bail};
use edge_connector::audit::AuditConfig;
use edge_connector::config::Transport;
use edge_connector::state::StateDir;
use edge_connector::tools::{ToolContext, Toolbox};

const USAGE: &str = "usage: bench_connector --state-dir DIR [--audit]";

fn main() -> anyhow::Result<()> {
    let mut state_dir = None;
    let mut audit = false;
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--state-dir" => state_dir = argv.next(),
            "--audit" => audit = true,
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    let state_dir = state_dir.context(USAGE)?;
    let identity = StateDir::new(&state_dir).identity()?.identity;
    let toolbox = Toolbox::new(
        ToolContext {
            identity,
            version: edge_connector::VERSION,
        },
        Arc::default(),
    );
    e2e::library_connector::run(
        &state_dir,
        "bench-connector",
        Arc::new(toolbox),
        audit.then(AuditConfig::default),
        Transport::Quic,
    )
}
