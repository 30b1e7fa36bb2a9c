//! `edge-connector status`: what the running service last wrote about its tunnel.
//!
//! It reads the status file the service keeps in the state directory (no socket, no port),
//! prints a plain summary or the JSON, and exits with the LSB `status` codes: 0 connected
//! and answering, 1 running without a working tunnel, 3 not running (no status file, or
//! one older than 30 s), 4 unknown (the configuration cannot be read).

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use edge_connector::health::status_file::Report;

/// Exit code when the state directory is unknown (LSB: "program or service status is unknown").
const UNKNOWN: u8 = 4;

/// Prints the status of the service whose state directory is `state_dir`.
pub fn run(state_dir: anyhow::Result<&Path>, json: bool) -> ExitCode {
    let state_dir = match state_dir {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(UNKNOWN);
        }
    };
    let now = SystemTime::now();
    let report = Report::read(state_dir, now);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(UNKNOWN);
            }
        }
    } else {
        print!("{}", report.render(now));
    }
    ExitCode::from(report.verdict.exit_code())
}
