//! What the tunnel serves: a set of tools, each call run or previewed by name. The local
//! policy wraps one ([`crate::local_policy::Enforced`]); the connector's own is
//! [`crate::tools::Toolbox`]; test connectors serve fixtures.

use std::future::Future;
use std::pin::Pin;

use shared::call::{Call, CallFailure, CallOutcome, PreviewOutcome};
use shared::wire::{self, ErrorCode};

use crate::call_context::CallContext;

/// A boxed future, for the object-safe [`ToolSet`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A set of tools the tunnel can serve.
pub trait ToolSet: Send + Sync + 'static {
    /// The tools, for the hello.
    fn specs(&self) -> Vec<wire::ToolSpec>;
    /// Runs one call.
    fn call<'a>(&'a self, call: &'a Call, ctx: &'a CallContext) -> BoxFuture<'a, CallOutcome>;
    /// Says what `call` would do, writing nothing, for the user to confirm; the default is
    /// an empty effect (nothing more to show than the tool's name).
    fn preview<'a>(
        &'a self,
        call: &'a Call,
        ctx: &'a CallContext,
    ) -> BoxFuture<'a, PreviewOutcome> {
        let _ = (call, ctx);
        Box::pin(async { Ok(wire::Effect::default()) })
    }
    /// Finishes a user's authorization at an upstream (the code from its consent page).
    fn authorize<'a>(&'a self, cb: &'a wire::AuthorizeCallback) -> BoxFuture<'a, CallOutcome> {
        let _ = cb;
        Box::pin(async {
            Err(CallFailure::new(
                ErrorCode::UnknownTool,
                "this connector acts on no upstream on behalf of users",
            ))
        })
    }
    /// Lists the users' upstream connections (their tokens in the vault, never the tokens),
    /// or revokes one, for a tenant administrator; the default holds none.
    fn connections<'a>(&'a self, req: &'a wire::ConnectionsRequest) -> BoxFuture<'a, CallOutcome> {
        let _ = req;
        Box::pin(async {
            Err(CallFailure::new(
                ErrorCode::UnknownTool,
                "this connector holds no users' upstream connections",
            ))
        })
    }
}

/// The error for a tool this connector does not have.
pub fn unknown_tool(name: &str) -> CallFailure {
    CallFailure::new(
        ErrorCode::UnknownTool,
        format!("this connector has no tool named {name}"),
    )
}
