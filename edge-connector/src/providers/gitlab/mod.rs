//! GitLab's REST API (`/api/v4`): project paths, pagination, user lookups and the fields of
//! GitLab's objects the tools read. The `gitlab_*` tools themselves are in
//! [`crate::tools::gitlab`].
//!
//! - [`api`]: paths, pagination, user lookups, payloads.

pub mod api;
