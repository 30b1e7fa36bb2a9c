//! The tools a connector serves, one module per tool family, dispatched by name.
//!
//! Each tool declares its [`wire::ToolSpec`] (sent to the runtime at hello, so tools/list
//! reflects exactly what this connector can do) and an async handler that takes validated
//! JSON arguments and returns a structured result with a short text rendering. A [`ToolSet`]
//! is what the tunnel serves; [`Toolbox`] is the connector's own.

pub mod context;
pub mod diagnostic;

use std::future::Future;
use std::pin::Pin;

pub use context::CallContext;

/// A boxed future, for the object-safe [`ToolSet`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A set of tools the tunnel can serve.
pub trait ToolSet: Send + Sync + 'static {
    /// The tools, for the hello.
    fn specs(&self) -> Vec<wire::ToolSpec>;
    /// Runs one call.
    fn call<'a>(&'a self, call: &'a Call, ctx: &'a CallContext) -> BoxFuture<'a, CallOutcome>;
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
}

use serde::de::DeserializeOwned;
use shared::call::{Call, CallFailure, CallOutcome};
use shared::identity::ConnectorIdentity;
use shared::wire::{self, ErrorCode};

/// What tools may know about the connector they run in.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// Our identity.
    pub identity: ConnectorIdentity,
    /// Our build version.
    pub version: &'static str,
}

/// The registered tools.
#[derive(Debug, Clone)]
pub struct Toolbox {
    ctx: ToolContext,
}

impl Toolbox {
    /// The toolbox for a connector.
    pub fn new(ctx: ToolContext) -> Self {
        Self { ctx }
    }

    /// Runs a call.
    pub async fn dispatch(&self, call: &Call, _ctx: &CallContext) -> CallOutcome {
        match call.tool.as_str() {
            diagnostic::PING => diagnostic::ping(&self.ctx, call, args(call)?).await,
            diagnostic::ECHO => diagnostic::echo(&self.ctx, args(call)?).await,
            other => Err(unknown_tool(other)),
        }
    }
}

impl ToolSet for Toolbox {
    fn specs(&self) -> Vec<wire::ToolSpec> {
        diagnostic::specs()
    }

    fn call<'a>(&'a self, call: &'a Call, ctx: &'a CallContext) -> BoxFuture<'a, CallOutcome> {
        Box::pin(self.dispatch(call, ctx))
    }
}

/// The error for a tool this connector does not have.
pub fn unknown_tool(name: &str) -> CallFailure {
    CallFailure::new(
        ErrorCode::UnknownTool,
        format!("this connector has no tool named {name}"),
    )
}

/// Parses a call's arguments into the tool's argument type.
pub fn args<T: DeserializeOwned>(call: &Call) -> Result<T, CallFailure> {
    let bytes = if call.arguments_json.is_empty() {
        b"{}".as_slice()
    } else {
        &call.arguments_json
    };
    serde_json::from_slice(bytes).map_err(|e| {
        CallFailure::new(
            ErrorCode::InvalidArguments,
            format!("invalid arguments for {}: {e}", call.tool.as_str()),
        )
    })
}

/// A successful result: structured content plus its text rendering.
pub fn output(structured: &serde_json::Value, text: String) -> CallOutcome {
    Ok(wire::ToolOutput {
        structured_json: serde_json::to_vec(structured).unwrap_or_default(),
        text,
        is_error: false,
        content_json: Vec::new(),
    })
}
