//! GitHub Enterprise Server's REST API (`/api/v3`): paths, pagination and the fields of
//! GitHub's objects the tools read. The `github_*` tools themselves are in
//! [`crate::tools::github`].
//!
//! - [`api`]: paths, pagination, payloads.

pub mod api;
