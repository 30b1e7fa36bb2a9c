//! One `tools/call`, as its steps (`Call::run`):
//!
//! 1. **resolve** the tool among the tenant's online connectors and read the site (instance
//!    and repository) it acts on; a call no policy can decide (unknown tool, malformed
//!    target, no connector online) is audited and refused here;
//! 2. **decide** it with the permission intersection ([`crate::policy::decide`]); a denial is
//!    audited and answered here, and never reaches a connector;
//! 3. run the **pre-call hooks**: a destructive tool or an approval asks the user first,
//!    showing the effect the connector previews, and the call is then bound to what was shown;
//! 4. **record the decision**, and only then
//! 5. **route** the call (what the tunnel carries, on whose behalf) and
//! 6. **relay** it through the tunnel, under its own span, whose `traceparent` the connector
//!    continues, carrying progress, logs and questions to the client;
//! 7. **record the outcome** and every upstream request the connector reports;
//! 8. run the **post-call hooks** (redaction) on the output.
//!
//! Every step that ends the call early returns a [`Refusal`], which [`answer`] alone turns
//! into the JSON-RPC answer. The caller's identity is named once, in the `Call`
//! that each step is a method of.

#![allow(deprecated)] // logging is deprecated by SEP-2577 but current clients use it

mod steps;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry::KeyValue;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, JsonObject, LoggingLevel,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use shared::call::CallFailure;
use shared::identity::TenantId;
use shared::policy::{RuleSet, Site};
use shared::trace::Span;
use shared::wire::{self, ErrorCode};

use super::confirm::{self, Claim, Confirmation, Shown};
use super::convert;
use super::refusal::{Refusal, answer};
use super::relay::Relay;
use super::shared_state::Shared;
use super::upstream_account::{self, NotConnected};
use crate::audit::digest::DigestKey;
use crate::audit::outcome_label;
use crate::audit::record::{Arguments, AuditRecord, Confirmation as AuditConfirmation};
use crate::audit::{CallAudit, CallFacts};
use crate::identity::{GatewayName, Principal};
use crate::policy::decide::{Decision, Layer, Layers, Subject, decide};
use crate::policy::hooks::CallInfo;
use crate::policy::live::Applied;
use crate::tunnel::registry::{CallReport, CallSpec};
use steps::{
    HookStep, audit_unavailable, confirmed, hook_step, preview_failure, refusal_of_denial,
    resolve_tool, tool_name, unresolved,
};

/// The gateway a call came through.
#[derive(Debug, Clone, Copy)]
pub struct Gateway<'a> {
    /// Its name.
    pub name: &'a GatewayName,
    /// The tools it exposes.
    pub rules: &'a RuleSet,
}

/// Handles one `tools/call`.
pub async fn handle(
    shared: &Shared,
    gateway: Gateway<'_>,
    principal: &Principal,
    request: CallToolRequestParams,
    ctx: &RequestContext<RoleServer>,
    log_level: Arc<Mutex<LoggingLevel>>,
) -> Result<CallToolResponse, McpError> {
    let call = Call::begin(shared, gateway, principal, &request, ctx);
    match call.run(&request, log_level).await {
        Ok(result) => Ok(result.into()),
        Err(refusal) => answer(refusal),
    }
}

/// One call in progress: who makes it, through which gateway, with what, under which span.
struct Call<'a> {
    shared: &'a Shared,
    ctx: &'a RequestContext<RoleServer>,
    gateway: Gateway<'a>,
    principal: &'a Principal,
    /// The tool name, or a placeholder for a name that cannot be one ([`tool_name`]).
    name: String,
    arguments: JsonObject,
    /// The tenant's policy in force (none denies everything).
    applied: Option<Arc<Applied>>,
    span: Span,
    call_id: u64,
}

/// A resolved call: the tool, the site it acts on, and the records that name both.
struct Resolved {
    spec: Arc<wire::ToolSpec>,
    site: Site,
    /// The repository as the audit trail and the question show it.
    target: Option<String>,
    audit: CallAudit,
}

/// What the pre-call hooks let through: the values the user confirmed (the call is held to
/// them) and the confirmation for the decision record; both empty when none was asked.
#[derive(Debug, Default)]
struct Confirmed {
    binding: BTreeMap<String, String>,
    confirmation: Option<AuditConfirmation>,
}

impl<'a> Call<'a> {
    /// Names the call, opens its span and gives it an id.
    fn begin(
        shared: &'a Shared,
        gateway: Gateway<'a>,
        principal: &'a Principal,
        request: &CallToolRequestParams,
        ctx: &'a RequestContext<RoleServer>,
    ) -> Self {
        let name = tool_name(&request.name);
        let arguments = request.arguments.clone().unwrap_or_default();
        let applied = shared.policies.get(principal.tenant.as_str());
        let span = shared.telemetry.call_span(
            &format!("tools/call {name}"),
            ctx.meta.get("traceparent").and_then(|v| v.as_str()),
        );
        span.set_attributes(vec![
            KeyValue::new("mcp.tool.name", name.clone()),
            KeyValue::new("mcp_edge.tenant", principal.tenant.to_string()),
            KeyValue::new("mcp_edge.gateway", gateway.name.to_string()),
            KeyValue::new("mcp_edge.user", principal.user.to_string()),
            KeyValue::new("mcp_edge.user_id", principal.user_id.to_string()),
            KeyValue::new("mcp_edge.agent", principal.agent.to_string()),
        ]);
        Self {
            shared,
            ctx,
            gateway,
            principal,
            name,
            arguments,
            applied,
            span,
            call_id: shared.registry.new_call_id(),
        }
    }

    /// The steps, in order; the first refusal ends the call.
    async fn run(
        &self,
        request: &CallToolRequestParams,
        log_level: Arc<Mutex<LoggingLevel>>,
    ) -> Result<CallToolResult, Refusal> {
        // No record, no call: without the tenant's key no record can be written.
        let Ok(key) = self.shared.digest_keys.key(self.tenant().as_str()).await else {
            return Err(Refusal::Failed(audit_unavailable()));
        };
        let tool = self.resolve(&key).await?;
        let reason = self.decide(&tool).await?;
        let confirmed = self.pre_call_hooks(&tool, &key, request).await?;
        self.record_decision(&tool, &reason, confirmed.confirmation)
            .await?;
        let call = self.route(&tool, confirmed.binding, true).await?;
        let (report, started) = self.relay(call, &tool, log_level).await?;
        let connector = self.record_outcome(&tool, &report, started).await;
        match report.outcome {
            Ok(output) => Ok(self.post_call_hooks(&tool, output)),
            Err(f) => Err(self.failed(f, connector.as_deref()).await),
        }
    }

    fn tenant(&self) -> &TenantId {
        &self.principal.tenant
    }

    /// Who and what the call is, for its records.
    fn facts(&self, key: &DigestKey) -> CallFacts<'_> {
        let record_arguments = self
            .applied
            .as_ref()
            .is_some_and(|a| a.policy.audit.record_arguments);
        CallFacts {
            tenant: self.tenant().as_str(),
            gateway: Some(self.gateway.name.as_str()),
            user: self.principal.user.as_str(),
            user_id: Some(self.principal.user_id.as_str()),
            agent: self.principal.agent.as_str(),
            tool: &self.name,
            instance: None,
            target: None,
            arguments: Some(Arguments::of(key, &self.arguments, record_arguments)),
            call_id: self.call_id,
            trace_id: self.span.trace_id(),
            span_id: self.span.span_id(),
        }
    }

    /// Step 1: the tool and its site. A call refused before any policy could decide it is
    /// audited too, so an agent cannot probe for tools and targets without a trace.
    async fn resolve(&self, key: &DigestKey) -> Result<Resolved, Refusal> {
        let facts = self.facts(key);
        let registry = &self.shared.registry;
        let spec = registry.spec(self.tenant(), &self.name);
        // Tools come from connectors: with none online, the tool may well exist.
        let online = spec.is_some() || registry.has_online(self.tenant());
        match resolve_tool(spec, online, &self.arguments) {
            Ok((spec, site)) => {
                let target = site.repo.as_ref().map(ToString::to_string);
                let audit = CallAudit::new(CallFacts {
                    instance: site.instance.as_ref().map(|i| i.as_str()),
                    target: target.as_deref(),
                    ..facts
                });
                Ok(Resolved {
                    spec,
                    site,
                    target,
                    audit,
                })
            }
            Err(why) => {
                let (record, refusal) =
                    unresolved(&CallAudit::new(facts), self.tenant(), &self.name, why);
                self.shared.audit.submit(record).await;
                Err(refusal)
            }
        }
    }

    /// Step 2: the permission intersection; the allowing reason, or the recorded denial.
    async fn decide(&self, tool: &Resolved) -> Result<String, Refusal> {
        let connector = self
            .shared
            .registry
            .connector_scope(self.tenant(), &self.name);
        let layers = Layers {
            policy: self.applied.as_deref().map(|a| &a.policy),
            gateway: (self.gateway.name, self.gateway.rules),
            connector: &connector,
        };
        let Decision { denied_by, reason } = decide(
            layers,
            Subject::from(self.principal),
            &self.name,
            &tool.site,
        );
        match denied_by {
            None => Ok(reason),
            Some(layer) => Err(self
                .deny(tool.audit.decision(Some(layer), &reason), layer, reason)
                .await),
        }
    }

    /// What a hook sees of this call.
    fn info<'b>(&'b self, tool: &'b Resolved) -> CallInfo<'b> {
        CallInfo {
            tenant: self.tenant(),
            user: &self.principal.user,
            agent: &self.principal.agent,
            tool: &tool.spec,
            target: tool.site.repo.as_ref(),
            arguments: &self.arguments,
        }
    }

    /// Step 3: the pre-call hooks' verdict, asking the user when a hook wants it.
    async fn pre_call_hooks(
        &self,
        tool: &Resolved,
        key: &DigestKey,
        request: &CallToolRequestParams,
    ) -> Result<Confirmed, Refusal> {
        let verdict = self
            .applied
            .as_ref()
            .and_then(|a| a.hooks.before(&self.info(tool)));
        match hook_step(verdict) {
            HookStep::Proceed => Ok(Confirmed::default()),
            HookStep::Deny(reason) => Err(self
                .deny(
                    tool.audit.decision(Some(Layer::Hook), &reason),
                    Layer::Hook,
                    reason,
                )
                .await),
            HookStep::Confirm { hook, fallback } => {
                self.confirm(tool, key, request, hook, &fallback).await
            }
        }
    }

    /// Asks the user to confirm the call; a refusal is recorded with what they were shown.
    async fn confirm(
        &self,
        tool: &Resolved,
        key: &DigestKey,
        request: &CallToolRequestParams,
        hook: &str,
        fallback: &str,
    ) -> Result<Confirmed, Refusal> {
        let (responses, state) = (
            request.input_responses.as_ref(),
            request.request_state.as_deref(),
        );
        // A stateless answer carries what was shown in its sealed state: nothing to preview.
        let shown = if confirm::is_answer(self.ctx, responses, state) {
            Shown::default()
        } else {
            self.preview(tool, fallback).await?
        };
        let claim = self.claim(key);
        let s = self.shared;
        match confirm::ask(
            self.ctx,
            &s.state_key,
            &s.store,
            claim,
            shown,
            responses,
            state,
        )
        .await
        {
            Confirmation::Confirmed(shown) => Ok(Confirmed {
                binding: shown.binding.clone(),
                confirmation: Some(confirmed(shown, "confirmed")),
            }),
            Confirmation::Ask(input) => Err(Refusal::AskUser(input)),
            Confirmation::Refused(why, shown) => {
                let reason = format!("hook {hook}: {why}");
                let record = tool.audit.confirmed_decision(
                    Some(Layer::Hook),
                    &reason,
                    confirmed(shown, "refused"),
                );
                Err(self.deny(record, Layer::Hook, reason).await)
            }
        }
    }

    /// What a stateless confirmation is for: this tenant, gateway, user, agent, tool and
    /// arguments.
    fn claim(&self, key: &DigestKey) -> Claim {
        Claim {
            t: self.tenant().to_string(),
            g: self.gateway.name.to_string(),
            u: self.principal.user_id.to_string(),
            a: self.principal.agent.to_string(),
            n: self.name.clone(),
            h: Arguments::of(key, &self.arguments, false).hmac_sha256,
            e: 0,
            j: String::new(),
            m: String::new(),
            b: BTreeMap::new(),
        }
    }

    /// The question to ask: the connector previews what the call would do, so the user
    /// confirms that effect. Nothing to confirm and nothing done when the preview fails: the
    /// agent sees why (the pull request does not exist, the upstream is down).
    async fn preview(&self, tool: &Resolved, fallback: &str) -> Result<Shown, Refusal> {
        let call = self.route(tool, BTreeMap::new(), false).await?;
        match self.shared.registry.preview(self.tenant(), &call).await {
            Ok(effect) => {
                let effect = effect.unwrap_or_default();
                Ok(Shown {
                    message: confirm::question(
                        fallback,
                        self.principal.agent.as_str(),
                        &self.name,
                        tool.target.as_deref(),
                        tool.spec.destructive,
                        &effect.text,
                    ),
                    binding: effect.binding,
                })
            }
            Err(f) if f.code == ErrorCode::AuthorizationRequired => {
                Err(self.ask_to_connect(None, &f).await)
            }
            Err(f) => {
                let (label, reason) = preview_failure(&f);
                self.shared
                    .audit
                    .submit(tool.audit.outcome(None, &label, Some(&reason)))
                    .await;
                self.span.set_error(&f.message);
                Err(Refusal::Failed(f))
            }
        }
    }

    /// Step 4: the decision record. No record, no action.
    async fn record_decision(
        &self,
        tool: &Resolved,
        reason: &str,
        confirmation: Option<AuditConfirmation>,
    ) -> Result<(), Refusal> {
        let record = match confirmation {
            Some(c) => tool.audit.confirmed_decision(None, reason, c),
            None => tool.audit.decision(None, reason),
        };
        if let Err(e) = self.shared.audit.write(record).await {
            self.span.set_error(&e.to_string());
            return Err(Refusal::Failed(audit_unavailable()));
        }
        Ok(())
    }

    /// Step 5: what the tunnel carries, on whose behalf (with the identity provider's
    /// proof of the user, when it has one), held to `binding`; with the user's approval of
    /// this exact call, if they gave one and `approved` (not for a preview).
    async fn route(
        &self,
        tool: &Resolved,
        binding: BTreeMap<String, String>,
        approved: bool,
    ) -> Result<CallSpec, Refusal> {
        let unreadable = |e: crate::store::StoreError| {
            self.span.set_error(&e.to_string());
            Refusal::Failed(CallFailure::new(
                ErrorCode::Unavailable,
                "the user's sign-in could not be read; retry",
            ))
        };
        let (tenant, user) = (self.tenant().as_str(), self.principal.user_id.as_str());
        let arguments_json = serde_json::Value::Object(self.arguments.clone()).to_string();
        let proofs = self
            .shared
            .store
            .call_proofs(
                tenant,
                user,
                approved.then_some((self.name.as_str(), arguments_json.as_str())),
            )
            .await
            .map_err(unreadable)?;
        Ok(CallSpec {
            call_id: self.call_id,
            tool: self.name.clone(),
            arguments_json: arguments_json.into_bytes(),
            timeout: self.shared.options.call_timeout,
            caller: wire::Caller {
                tenant: self.tenant().to_string(),
                user: self.principal.user_id.to_string(),
                agent: self.principal.agent.to_string(),
            },
            site: tool.site.clone(),
            traceparent: self.span.traceparent(),
            binding,
            user_proof: proofs.user_proof.unwrap_or_default(),
            approval: proofs.approval.unwrap_or_default(),
        })
    }

    /// Step 6: the call through the tunnel, until it ends or the client cancels it.
    async fn relay(
        &self,
        call: CallSpec,
        tool: &Resolved,
        log_level: Arc<Mutex<LoggingLevel>>,
    ) -> Result<(CallReport, Instant), Refusal> {
        let relay = Relay::new(self.ctx, log_level);
        let started = Instant::now();
        tokio::select! {
            r = self.shared.registry.call(self.tenant(), None, call, &relay) => Ok((r, started)),
            // Dropping the call resets its stream, which cancels the tool on the connector.
            () = self.ctx.ct.cancelled() => {
                let record = tool.audit.outcome(None, "cancelled", Some("cancelled by the client"));
                self.shared.audit.submit(record).await;
                Err(Refusal::Cancelled)
            }
        }
    }

    /// Step 7: the upstream requests and the outcome, in the audit trail, metrics and span;
    /// returns the connector that ran the call.
    async fn record_outcome(
        &self,
        tool: &Resolved,
        report: &CallReport,
        started: Instant,
    ) -> Option<String> {
        let connector = report.connector.as_ref().map(ToString::to_string);
        for a in &report.actions {
            self.shared
                .audit
                .submit(tool.audit.upstream(connector.as_deref(), a))
                .await;
        }
        let label = outcome_label(&report.outcome);
        let reason = report.outcome.as_ref().err().map(|f| f.message.as_str());
        let mut record = tool.audit.outcome(connector.as_deref(), &label, reason);
        record.receipt = report.receipt.as_ref().map(Into::into);
        self.shared.audit.submit(record).await;
        self.shared.metrics.finished(
            self.tenant().as_str(),
            &self.name,
            &label,
            Some(started.elapsed().as_secs_f64()),
        );
        if let Some(c) = &connector {
            self.span
                .set_attributes(vec![KeyValue::new("mcp_edge.connector", c.clone())]);
        }
        connector
    }

    /// Step 8: the post-call hooks on the output, and the output as an MCP result.
    fn post_call_hooks(&self, tool: &Resolved, mut output: wire::ToolOutput) -> CallToolResult {
        if let Some(a) = &self.applied {
            a.hooks.after(&self.info(tool), &mut output);
        }
        if output.is_error {
            self.span.set_error("tool error");
        }
        convert::result(output)
    }

    /// A call the connector did not run or could not finish.
    async fn failed(&self, f: CallFailure, connector: Option<&str>) -> Refusal {
        match f.code {
            ErrorCode::UnknownTool => Refusal::UnknownTool {
                name: self.name.clone(),
                why: None,
            },
            ErrorCode::AuthorizationRequired => self.ask_to_connect(connector, &f).await,
            ErrorCode::SignInRequired => {
                super::approval::ask_to_sign_in(self.shared, self.ctx, self.principal, &f).await
            }
            ErrorCode::ApprovalRequired => {
                let arguments_json = serde_json::Value::Object(self.arguments.clone()).to_string();
                super::approval::ask_to_approve(
                    self.shared,
                    self.ctx,
                    super::approval::Unapproved {
                        principal: self.principal,
                        tool: &self.name,
                        arguments_json: &arguments_json,
                        failure: &f,
                    },
                )
                .await
            }
            _ => {
                self.span.set_error(&f.message);
                Refusal::Failed(f)
            }
        }
    }

    /// The connector needs the user to connect their upstream account first.
    async fn ask_to_connect(&self, connector: Option<&str>, failure: &CallFailure) -> Refusal {
        let (trace_id, span_id) = (self.span.trace_id(), self.span.span_id());
        upstream_account::ask_to_connect(
            self.shared,
            self.ctx,
            NotConnected {
                principal: self.principal,
                connector,
                tool: &self.name,
                call_id: self.call_id,
                trace: (&trace_id, &span_id),
                failure,
            },
        )
        .await
    }

    /// Denies the call whose decision record is `record`. A denial takes effect whether or
    /// not its record can be written.
    async fn deny(&self, record: AuditRecord, layer: Layer, reason: String) -> Refusal {
        if let Err(e) = self.shared.audit.write(record).await {
            tracing::warn!(error = %e, "denial not recorded");
        }
        self.shared
            .metrics
            .denied(self.tenant().as_str(), &self.name, layer);
        refusal_of_denial(&self.name, layer, reason)
    }
}
