//! Who may do what. A call is allowed only where the gateway, the agent's role, the user's
//! grants and a connector's local policy all allow it (DESIGN invariant 3); hooks then may
//! still ask the user or refuse, and may redact the output.
//!
//! - [`file`](mod@file): the tenant policy file (TOML, versioned) and its validation.
//! - [`decide`]: the four-layer intersection and tools/list visibility; pure functions.
//! - [`hooks`]: pre- and post-call hooks (confirm destructive tools, redact secrets).
//! - [`apply`] and [`check`]: `policy apply` and `policy check`.
//! - [`live`]: the policies in force, reloaded when `policy apply` stores a new revision.
//! - [`preview`]: a proposed file's diff and the decisions it would turn (a dry run).

pub mod apply;
pub mod check;
pub mod decide;
pub mod file;
pub mod hooks;
pub mod live;
pub mod preview;

pub use decide::{Decision, Layer, Layers, Subject};
pub use live::Policies;
