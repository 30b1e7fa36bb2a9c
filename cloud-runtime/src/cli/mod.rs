//! Subcommands of the `cloud-runtime` binary that grew past a few lines.

pub mod audit;
pub mod policy;
