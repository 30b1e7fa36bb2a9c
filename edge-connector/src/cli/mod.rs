//! Subcommands of the `edge-connector` binary that grew past a few lines.

pub mod audit;
pub mod status;
pub mod vault;
