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
use super::confirm::StateKey;
use super::principal::Principal;
use super::{McpOptions, convert};
use crate::audit::AuditLog;
use crate::audit::digest::DigestKeys;
use crate::metrics::Metrics;
use crate::policy::decide::visible;
use crate::policy::{Layers, Policies, Subject};
use crate::store::GatewayRow;
use crate::telemetry::Telemetry;
use crate::tools_changed::ToolsChanged;
use crate::tunnel::Registry;

/// Tools per tools/list page.
pub const PAGE_SIZE: usize = 50;

/// What every gateway server shares.
#[derive(Debug)]
pub struct Shared {
    /// Online connectors.
    pub registry: Arc<Registry>,
    /// Endpoint options.
    pub options: McpOptions,
    /// The policies in force.
    pub policies: Arc<Policies>,
    /// The audit trail.
    pub audit: AuditLog,
    /// The tenants' keys for argument digests in audit records.
    pub digest_keys: Arc<DigestKeys>,
    /// Spans and log export.
    pub telemetry: Arc<Telemetry>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Seals stateless confirmations.
    pub state_key: StateKey,
    /// Tells live sessions their tools changed.
    pub tools_changed: ToolsChanged,
    /// The store (connect requests).
    pub store: crate::store::Store,
    /// Sessions waiting for users to finish connecting upstream accounts.
    pub elicitations: Arc<super::authorization::Elicitations>,
}

/// The MCP server of one gateway (one instance per session).
#[derive(Debug, Clone)]
pub struct GatewayServer {
    shared: Arc<Shared>,
    gateway: Arc<GatewayRow>,
    rules: Arc<RuleSet>,
    log_level: Arc<Mutex<LoggingLevel>>,
}

impl GatewayServer {
    /// A server for `gateway`.
    pub fn new(shared: Arc<Shared>, gateway: Arc<GatewayRow>) -> Self {
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
            rules: Arc::new(RuleSet(rules)),
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

    /// The tools this principal could call through this gateway, sorted by name: those an
    /// online connector offers that pass every layer of the intersection for some
    /// repository.
    fn visible(&self, principal: &Principal) -> Vec<Arc<wire::ToolSpec>> {
        let applied = self.shared.policies.get(principal.tenant.as_str());
        let subject = Subject {
            agent: &principal.agent,
            role: &principal.role,
            user: &principal.user,
            groups: &principal.groups,
        };
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
                    gateway: (&self.gateway.name, &self.rules),
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
        let principal = self.principal(&ctx)?;
        call::handle(
            &self.shared,
            Gateway {
                name: &self.gateway.name,
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
