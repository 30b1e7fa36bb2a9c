//! The MCP server of one gateway. tools/list shows the tools the tenant's online connectors
//! offer that the gateway exposes; tools/call sends the call through the tunnel on behalf of
//! the request's principal, relaying progress, logs and questions, and stops the call on the
//! connector when the client cancels it.

#![allow(deprecated)] // logging is deprecated by SEP-2577 but current clients use it

use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, LoggingLevel,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, SetLevelRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use shared::wire::{self, ErrorCode};

use super::principal::Principal;
use super::relay::Relay;
use super::{McpOptions, convert};
use crate::store::GatewayRow;
use crate::tunnel::Registry;
use crate::tunnel::registry::CallSpec;

/// Tools per tools/list page.
pub const PAGE_SIZE: usize = 50;

/// What every gateway server shares.
#[derive(Debug)]
pub struct Shared {
    /// Online connectors.
    pub registry: Arc<Registry>,
    /// Endpoint options.
    pub options: McpOptions,
}

/// The MCP server of one gateway (one instance per session).
#[derive(Debug, Clone)]
pub struct GatewayServer {
    shared: Arc<Shared>,
    gateway: Arc<GatewayRow>,
    log_level: Arc<Mutex<LoggingLevel>>,
}

impl GatewayServer {
    /// A server for `gateway`.
    pub fn new(shared: Arc<Shared>, gateway: Arc<GatewayRow>) -> Self {
        Self {
            shared,
            gateway,
            log_level: Arc::new(Mutex::new(LoggingLevel::Info)),
        }
    }

    fn principal(&self, ctx: &RequestContext<RoleServer>) -> Result<Principal, McpError> {
        let principal = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Principal>())
            .cloned()
            .ok_or_else(|| {
                McpError::internal_error("request reached the MCP server unauthenticated", None)
            })?;
        if principal.tenant.as_str() != self.gateway.tenant {
            return Err(McpError::invalid_request(
                "credentials are for another tenant",
                None,
            ));
        }
        Ok(principal)
    }

    /// The tools this gateway shows, sorted by name.
    fn visible(&self, principal: &Principal) -> Vec<wire::ToolSpec> {
        self.shared
            .registry
            .tools(&principal.tenant)
            .into_iter()
            .filter(|t| self.gateway.exposes(&t.name))
            .collect()
    }
}

fn no_connector(principal: &Principal) -> shared::call::CallFailure {
    let mut f = shared::call::CallFailure::new(
        ErrorCode::Unavailable,
        format!("no connector of tenant {} is online", principal.tenant),
    );
    f.retry_after = Some(std::time::Duration::from_secs(5));
    f
}

impl ServerHandler for GatewayServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_logging()
            .build();
        let info = ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("mcp-edge", env!("CARGO_PKG_VERSION")));
        match &self.gateway.instructions {
            Some(text) => info.with_instructions(text.clone()),
            None => info,
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        *self.log_level.lock().unwrap_or_else(|p| p.into_inner()) = request.level;
        Ok(())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let principal = self.principal(&ctx)?;
        let all = self.visible(&principal);
        let start = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|s| *s <= all.len())
                .ok_or_else(|| McpError::invalid_params("invalid cursor", None))?,
        };
        let page: Vec<_> = all
            .iter()
            .skip(start)
            .take(PAGE_SIZE)
            .filter_map(convert::tool)
            .collect();
        let next = start + PAGE_SIZE;
        Ok(ListToolsResult {
            next_cursor: (next < all.len()).then(|| next.to_string()),
            ..ListToolsResult::with_all_items(page)
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let principal = self.principal(&ctx)?;
        let name = request.name.to_string();
        // Checked without building the tool list: this is on every call's path.
        if !self.gateway.exposes(&name) || !self.shared.registry.offers(&principal.tenant, &name) {
            if !self.shared.registry.has_online(&principal.tenant) {
                // Tools come from connectors: with none online, the tool may well exist.
                return Ok(convert::failure(&no_connector(&principal)).into());
            }
            return Err(McpError::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        }
        let arguments = serde_json::Value::Object(request.arguments.unwrap_or_default());
        let traceparent = ctx
            .meta
            .get("traceparent")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let spec = CallSpec {
            tool: name.clone(),
            arguments_json: arguments.to_string().into_bytes(),
            timeout: self.shared.options.call_timeout,
            caller: wire::Caller {
                tenant: principal.tenant.to_string(),
                user: principal.user.clone(),
                agent: principal.agent.clone(),
            },
            traceparent,
        };
        let relay = Relay::new(&ctx, self.log_level.clone());
        let outcome = tokio::select! {
            out = self.shared.registry.call(&principal.tenant, None, spec, &relay) => out,
            // Dropping the call resets its stream, which cancels the tool on the connector.
            () = ctx.ct.cancelled() => return Err(McpError::internal_error("cancelled by the client", None)),
        };
        Ok(match outcome {
            Ok(out) => convert::result(out),
            Err(f) if f.code == ErrorCode::UnknownTool => {
                return Err(McpError::invalid_params(
                    format!("unknown tool: {name}"),
                    None,
                ));
            }
            Err(f) => convert::failure(&f),
        }
        .into())
    }
}
