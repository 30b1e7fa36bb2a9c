//! The MCP server of one gateway. tools/list shows the tools the tenant's online connectors
//! offer that the gateway exposes; tools/call sends the call through the tunnel on behalf of
//! the request's principal, relaying progress, logs and questions, and stops the call on the
//! connector when the client cancels it.

#![allow(deprecated)] // logging is deprecated by SEP-2577 but current clients use it

use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, LoggingLevel,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, SetLevelRequestParams,
    SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use shared::policy::{AllowRule, RuleSet, instances_of};
use shared::wire;

use super::call::{self, Gateway};
use super::convert;
use super::refusal::{Refusal, answer};
use super::shared_state::Shared;
use crate::identity::{GatewayName, Principal};
use crate::policy::decide::{Layers, Subject, visible};
use crate::store::GatewayRow;

/// Tools per tools/list page.
pub const PAGE_SIZE: usize = 50;

/// The MCP server of one gateway (one instance per session).
#[derive(Debug, Clone)]
pub struct GatewayServer {
    shared: Arc<Shared>,
    gateway: Arc<GatewayRow>,
    /// The gateway's name, checked when its row was read.
    name: Arc<GatewayName>,
    rules: Arc<RuleSet>,
    log_level: Arc<Mutex<LoggingLevel>>,
}

impl GatewayServer {
    /// A server for `gateway`, named `name`.
    pub fn new(shared: Arc<Shared>, gateway: Arc<GatewayRow>, name: Arc<GatewayName>) -> Self {
        // Patterns were checked when the gateway was stored; one that no longer parses
        // exposes nothing rather than everything.
        let rules = gateway
            .tools
            .iter()
            .filter_map(|t| AllowRule::parse(std::slice::from_ref(t), None, None).ok())
            .collect();
        Self {
            shared,
            gateway,
            name,
            rules: Arc::new(RuleSet(rules)),
            log_level: Arc::new(Mutex::new(LoggingLevel::Info)),
        }
    }

    fn principal(&self, ctx: &RequestContext<RoleServer>) -> Result<Principal, Refusal> {
        let principal = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Principal>())
            .cloned()
            .ok_or(Refusal::Unauthenticated)?;
        if principal.tenant.as_str() != self.gateway.tenant {
            return Err(Refusal::OtherTenant);
        }
        Ok(principal)
    }

    /// The tools this principal could call through this gateway, sorted by name: those an
    /// online connector offers that pass every layer of the intersection for some
    /// repository.
    fn visible(&self, principal: &Principal) -> Vec<Arc<wire::ToolSpec>> {
        let applied = self.shared.policies.get(principal.tenant.as_str());
        let subject = Subject::from(principal);
        self.shared
            .registry
            .tools(&principal.tenant)
            .into_iter()
            .filter(|t| {
                let scope = self
                    .shared
                    .registry
                    .connector_scope(&principal.tenant, &t.name);
                let layers = Layers {
                    policy: applied.as_deref().map(|a| &a.policy),
                    gateway: (&self.name, &self.rules),
                    connector: &scope,
                };
                visible(
                    layers,
                    subject,
                    &t.name,
                    !t.target_args.is_empty(),
                    &instances_of(t),
                )
            })
            .collect()
    }

    /// Sends `notifications/tools/list_changed` to `peer` whenever this gateway's tenant's
    /// tools may have changed, until the session ends.
    async fn forward_changes<F, Fut>(
        &self,
        mut send: F,
        done: impl std::future::Future<Output = ()>,
    ) where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut changes = self.shared.tools_changed.subscribe();
        tokio::pin!(done);
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(t) if t.as_str() != self.gateway.tenant => continue,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if !send().await {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                () = &mut done => return,
            }
        }
    }
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

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        // A session of 2025-06-18 or 2025-11-25: push list changes on its stream.
        let this = self.clone();
        tokio::spawn(async move {
            let peer = ctx.peer.clone();
            let closed = async {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    if ctx.peer.is_transport_closed() {
                        return;
                    }
                }
            };
            this.forward_changes(
                || {
                    let peer = peer.clone();
                    async move { peer.notify_tool_list_changed().await.is_ok() }
                },
                closed,
            )
            .await;
        });
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        (requested.tools_list_changed == Some(true))
            .then(|| SubscriptionFilter::builder().tools_list_changed().build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        // The stateless revision (2026-07-28) subscribes with subscriptions/listen.
        let sink = context.sink().clone();
        self.forward_changes(
            || {
                let sink = sink.clone();
                async move { sink.notify_tool_list_changed().await.is_ok() }
            },
            context.cancelled(),
        )
        .await;
        Ok(())
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
        let principal = self.principal(&ctx).map_err(Refusal::into_error)?;
        let all = self.visible(&principal);
        let start = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|s| *s <= all.len())
                .ok_or_else(|| Refusal::InvalidCursor.into_error())?,
        };
        let page: Vec<_> = all
            .iter()
            .skip(start)
            .take(PAGE_SIZE)
            .filter_map(|t| convert::tool(t))
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
        let principal = match self.principal(&ctx) {
            Ok(p) => p,
            Err(refusal) => return answer(refusal),
        };
        call::handle(
            &self.shared,
            Gateway {
                name: &self.name,
                rules: &self.rules,
            },
            &principal,
            request,
            &ctx,
            self.log_level.clone(),
        )
        .await
    }
}
