//! The tools a connector serves, dispatched by name: the diagnostic tools here, and the
//! source-control tools of each configured provider ([`crate::providers`]).
//!
//! Each tool declares its [`wire::ToolSpec`] (sent to the runtime at hello, so tools/list
//! reflects exactly what this connector can do) and an async handler that takes validated
//! JSON arguments and returns a structured result with a short text rendering. A [`ToolSet`]
//! is what the tunnel serves; [`Toolbox`] is the connector's own.
//!
//! - [`tool`]: the typed tool trait, schemas from types, field selection.
//! - [`github`] and [`gitlab`]: each provider's tools, one file per group.
//! - [`diagnostic`]: `diag.ping`, `diag.echo`.

pub mod diagnostic;
pub mod github;
pub mod gitlab;
pub mod tool;

// Kept at their old paths for the crates that serve fixture tools (the e2e suites).
pub use crate::call_context::CallContext;
pub use crate::toolset::{BoxFuture, ToolSet, unknown_tool};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::de::DeserializeOwned;
use shared::call::{Call, CallFailure, CallOutcome, PreviewOutcome};
use shared::identity::ConnectorIdentity;
use shared::wire::{self, ErrorCode};

use crate::config::ProviderKind;
use crate::providers::Providers;
use tool::{DynTool, ToolCall};

/// What tools may know about the connector they run in.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// Our identity.
    pub identity: ConnectorIdentity,
    /// Our build version.
    pub version: &'static str,
}

/// The registered tools.
pub struct Toolbox {
    ctx: ToolContext,
    providers: Arc<Providers>,
    tools: HashMap<&'static str, Box<dyn DynTool>>,
    /// The instances each upstream tool can act on (its kind's `[[provider]]` names).
    instances: HashMap<&'static str, Vec<String>>,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolbox")
            .field("tools", &self.tools.len())
            .finish_non_exhaustive()
    }
}

impl Toolbox {
    /// The toolbox of a connector: the diagnostic tools, and the tools of each kind of
    /// provider configured.
    pub fn new(ctx: ToolContext, providers: Arc<Providers>) -> Self {
        let mut tools: Vec<Box<dyn DynTool>> = Vec::new();
        let mut instances = HashMap::new();
        for (kind, of_kind) in [
            (
                ProviderKind::Github,
                github::tools as fn() -> Vec<Box<dyn DynTool>>,
            ),
            (ProviderKind::Gitlab, gitlab::tools),
        ] {
            let names = providers.names(kind);
            if names.is_empty() {
                continue;
            }
            for t in of_kind() {
                instances.insert(t.name(), names.clone());
                tools.push(t);
            }
        }
        Self {
            ctx,
            providers,
            tools: tools.into_iter().map(|t| (t.name(), t)).collect(),
            instances,
        }
    }

    /// Previews a call: what it would do, read from the upstream, nothing written.
    pub async fn dispatch_preview(&self, call: &Call, ctx: &CallContext) -> PreviewOutcome {
        match self.tools.get(call.tool.as_str()) {
            Some(tool) => {
                let cx = ToolCall {
                    call,
                    ctx,
                    providers: &self.providers,
                    deadline: Instant::now() + call.timeout,
                };
                tool.preview(&cx).await
            }
            None if matches!(call.tool.as_str(), diagnostic::PING | diagnostic::ECHO) => {
                Ok(wire::Effect::default())
            }
            None => Err(unknown_tool(call.tool.as_str())),
        }
    }

    /// Runs a call.
    pub async fn dispatch(&self, call: &Call, ctx: &CallContext) -> CallOutcome {
        match call.tool.as_str() {
            diagnostic::PING => diagnostic::ping(&self.ctx, call, args(call)?).await,
            diagnostic::ECHO => diagnostic::echo(&self.ctx, args(call)?).await,
            other => {
                let tool = self.tools.get(other).ok_or_else(|| unknown_tool(other))?;
                let cx = ToolCall {
                    call,
                    ctx,
                    providers: &self.providers,
                    deadline: Instant::now() + call.timeout,
                };
                tool.call(&cx).await
            }
        }
    }
}

/// Names the instances a tool can act on in its spec, and as the choices of its `instance`
/// argument, so that tools/list shows them and both sides' policies can read a call's
/// instance.
fn with_instances(spec: &mut wire::ToolSpec, names: &[String]) {
    spec.instances = names.to_vec();
    let Ok(mut schema) = serde_json::from_str::<serde_json::Value>(&spec.input_schema_json) else {
        return;
    };
    if let Some(prop) = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut(shared::policy::INSTANCE_ARG))
        .and_then(|p| p.as_object_mut())
    {
        // The argument is optional (`Option<String>`, so the schema allows null) when there
        // is one instance; null stays allowed.
        let mut choices: Vec<serde_json::Value> = names.iter().map(|n| n.as_str().into()).collect();
        choices.push(serde_json::Value::Null);
        prop.insert("enum".into(), choices.into());
        spec.input_schema_json = schema.to_string();
    }
}

impl ToolSet for Toolbox {
    fn specs(&self) -> Vec<wire::ToolSpec> {
        let mut specs = diagnostic::specs();
        specs.extend(self.tools.values().map(|t| {
            let mut spec = t.spec();
            if let Some(names) = self.instances.get(t.name()) {
                with_instances(&mut spec, names);
            }
            spec
        }));
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs
    }

    fn call<'a>(&'a self, call: &'a Call, ctx: &'a CallContext) -> BoxFuture<'a, CallOutcome> {
        Box::pin(self.dispatch(call, ctx))
    }

    fn preview<'a>(
        &'a self,
        call: &'a Call,
        ctx: &'a CallContext,
    ) -> BoxFuture<'a, PreviewOutcome> {
        Box::pin(self.dispatch_preview(call, ctx))
    }

    fn authorize<'a>(&'a self, cb: &'a wire::AuthorizeCallback) -> BoxFuture<'a, CallOutcome> {
        Box::pin(async move {
            let text = self.providers.authorize(cb).await?;
            output(&serde_json::json!({ "connected": true }), text)
        })
    }

    fn connections<'a>(&'a self, req: &'a wire::ConnectionsRequest) -> BoxFuture<'a, CallOutcome> {
        Box::pin(async move {
            if req.revoke_provider.is_empty() {
                let connections = self.providers.connections()?;
                let text = format!("{} upstream connections", connections.len());
                return output(&serde_json::json!({ "connections": connections }), text);
            }
            let revoked = self
                .providers
                .revoke_connection(&req.revoke_provider, &req.revoke_user)?;
            let text = if revoked {
                "the connection is revoked: its tokens left the vault".to_owned()
            } else {
                "no such connection".to_owned()
            };
            output(&serde_json::json!({ "revoked": revoked }), text)
        })
    }
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
