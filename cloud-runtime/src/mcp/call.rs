//! One `tools/call`, from request to result:
//!
//! 1. find the tool among the tenant's online connectors and read its target repository;
//! 2. decide it with the permission intersection ([`crate::policy::decide`]); a denial is
//!    audited and answered here, and never reaches a connector;
//! 3. run the pre-call hooks (a destructive tool or an approval asks the user first, showing
//!    the effect the connector previews, and the call is then bound to what was shown);
//! 4. write the decision record, and only then send the call through the tunnel, under its
//!    own span, whose `traceparent` the connector continues;
//! 5. audit every upstream request the connector reports and the outcome; run the post-call
//!    hooks (redaction) on the output.

#![allow(deprecated)] // logging is deprecated by SEP-2577 but current clients use it

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry::KeyValue;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, LoggingLevel};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use shared::call::{CallFailure, ToolName};
use shared::policy::{RuleSet, site_of};
use shared::wire::{self, ErrorCode};

use super::confirm::{self, Claim, Confirmation, Shown};
use super::principal::Principal;
use super::relay::Relay;
use super::server::Shared;
use super::{authorization, convert};
use crate::audit::outcome_label;
use crate::audit::record::{Arguments, AuditRecord, Confirmation as AuditConfirmation};
use crate::audit::{CallAudit, CallFacts};
use crate::policy::decide::decide;
use crate::policy::hooks::{CallInfo, PreCall};
use crate::policy::{Layer, Layers, Subject};
use crate::tunnel::registry::CallSpec;

/// The gateway a call came through.
#[derive(Debug, Clone, Copy)]
pub struct Gateway<'a> {
    /// Its name.
    pub name: &'a str,
    /// The tools it exposes.
    pub rules: &'a RuleSet,
}

fn no_connector(principal: &Principal) -> CallFailure {
    CallFailure::new(
        ErrorCode::Unavailable,
        format!("no connector of tenant {} is online", principal.tenant),
    )
    .retry_after(std::time::Duration::from_secs(5))
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
    let tenant = &principal.tenant;
    // The name is the client's to choose (any length, any characters); one that cannot name
    // a tool goes into spans and audit records only as this placeholder.
    let name = match ToolName::parse(&request.name) {
        Ok(n) => n.as_str().to_owned(),
        Err(_) => "(invalid tool name)".to_owned(),
    };
    let arguments = request.arguments.clone().unwrap_or_default();
    let applied = shared.policies.get(tenant.as_str());
    let policy = applied.as_deref().map(|a| &a.policy);
    let record_arguments = policy.is_some_and(|p| p.audit.record_arguments);

    let span = shared.telemetry.call_span(
        &format!("tools/call {name}"),
        ctx.meta.get("traceparent").and_then(|v| v.as_str()),
    );
    span.set_attributes(vec![
        KeyValue::new("mcp.tool.name", name.clone()),
        KeyValue::new("mcp_edge.tenant", tenant.to_string()),
        KeyValue::new("mcp_edge.gateway", gateway.name.to_owned()),
        KeyValue::new("mcp_edge.user", principal.user.clone()),
        KeyValue::new("mcp_edge.user_id", principal.user_id.to_string()),
        KeyValue::new("mcp_edge.agent", principal.agent.clone()),
    ]);
    let call_id = shared.registry.new_call_id();
    let Ok(digest_key) = shared.digest_keys.key(tenant.as_str()).await else {
        // No record, no call: without the tenant's key no record can be written.
        return Ok(convert::failure(&audit_unavailable()).into());
    };
    let facts = CallFacts {
        tenant: tenant.as_str(),
        gateway: Some(gateway.name),
        user: &principal.user,
        user_id: Some(principal.user_id.as_str()),
        agent: &principal.agent,
        tool: &name,
        instance: None,
        target: None,
        arguments: Some(Arguments::of(&digest_key, &arguments, record_arguments)),
        call_id,
        trace_id: span.trace_id(),
        span_id: span.span_id(),
    };
    // Calls refused before any policy could decide them are audited too, so an agent
    // cannot probe for tools and targets without a trace.
    let Some(spec) = shared.registry.spec(tenant, &name) else {
        let audit = CallAudit::new(facts);
        if !shared.registry.has_online(tenant) {
            // Tools come from connectors: with none online, the tool may well exist.
            let failure = no_connector(principal);
            shared
                .audit
                .submit(audit.outcome(None, "unavailable", Some(&failure.message)))
                .await;
            return Ok(convert::failure(&failure).into());
        }
        shared.audit.submit(audit.refusal("unknown tool")).await;
        return Err(McpError::invalid_params(
            format!("unknown tool: {name}"),
            None,
        ));
    };
    let site = match site_of(&spec, &arguments) {
        Ok(t) => t,
        Err(e) => {
            let reason = format!("invalid target: {e}");
            shared
                .audit
                .submit(CallAudit::new(facts).refusal(&reason))
                .await;
            return Err(McpError::invalid_params(format!("{name}: {e}"), None));
        }
    };
    let target_text = site.repo.as_ref().map(|t| t.to_string());
    let audit = CallAudit::new(CallFacts {
        instance: site.instance.as_ref().map(|i| i.as_str()),
        target: target_text.as_deref(),
        ..facts
    });
    let subject = Subject {
        agent: &principal.agent,
        role: &principal.role,
        user: &principal.user,
        groups: &principal.groups,
    };
    let connector_scope = shared.registry.connector_scope(tenant, &name);
    let layers = Layers {
        policy,
        gateway: (gateway.name, gateway.rules),
        connector: &connector_scope,
    };
    let decision = decide(layers, subject, &name, &site);
    if let Some(layer) = decision.denied_by {
        let denied = deny(
            shared,
            &audit,
            tenant.as_str(),
            &name,
            layer,
            &decision.reason,
        )
        .await;
        if layer == Layer::Gateway {
            // Not in this gateway's collection: the tool does not exist here.
            return Err(McpError::invalid_params(
                format!("unknown tool: {name} ({})", decision.reason),
                None,
            ));
        }
        return Ok(denied);
    }

    let call_spec = |binding: BTreeMap<String, String>| CallSpec {
        call_id,
        tool: name.clone(),
        arguments_json: serde_json::Value::Object(arguments.clone())
            .to_string()
            .into_bytes(),
        timeout: shared.options.call_timeout,
        caller: wire::Caller {
            tenant: tenant.to_string(),
            user: principal.user_id.to_string(),
            agent: principal.agent.clone(),
        },
        site: site.clone(),
        traceparent: span.traceparent(),
        binding,
    };
    // What the user confirmed, if the call needed it: the values it is bound to, and the
    // confirmation for the decision record.
    let mut binding = BTreeMap::new();
    let mut confirmation = None;
    let info = CallInfo {
        tenant: tenant.as_str(),
        user: &principal.user,
        agent: &principal.agent,
        tool: &spec,
        target: site.repo.as_ref(),
        arguments: &arguments,
    };
    if let Some((hook, verdict)) = applied.as_ref().and_then(|a| a.hooks.before(&info)) {
        match verdict {
            PreCall::Continue => {}
            PreCall::Deny(reason) => {
                let reason = format!("hook {hook}: {reason}");
                return Ok(
                    deny(shared, &audit, tenant.as_str(), &name, Layer::Hook, &reason).await,
                );
            }
            PreCall::Confirm(fallback) => {
                let claim = Claim {
                    t: tenant.to_string(),
                    g: gateway.name.to_owned(),
                    u: principal.user_id.to_string(),
                    a: principal.agent.clone(),
                    n: name.clone(),
                    h: Arguments::of(&digest_key, &arguments, false).hmac_sha256,
                    e: 0,
                    j: String::new(),
                    m: String::new(),
                    b: BTreeMap::new(),
                };
                let answering = confirm::is_answer(
                    ctx,
                    request.input_responses.as_ref(),
                    request.request_state.as_deref(),
                );
                // Ask the connector what the call would do, so the user confirms that
                // effect (a stateless answer carries what was shown in its sealed state).
                let shown = if answering {
                    Shown::default()
                } else {
                    match shared
                        .registry
                        .preview(tenant, &call_spec(BTreeMap::new()))
                        .await
                    {
                        Ok(effect) => {
                            let effect = effect.unwrap_or_default();
                            Shown {
                                message: confirm::question(
                                    &fallback,
                                    &principal.agent,
                                    &name,
                                    target_text.as_deref(),
                                    spec.destructive,
                                    &effect.text,
                                ),
                                binding: effect.binding,
                            }
                        }
                        Err(f) if f.code == ErrorCode::AuthorizationRequired => {
                            let (trace_id, span_id) = (span.trace_id(), span.span_id());
                            return authorization::required(
                                shared,
                                ctx,
                                authorization::Refusal {
                                    principal,
                                    connector: None,
                                    tool: &name,
                                    call_id,
                                    trace: (&trace_id, &span_id),
                                    failure: &f,
                                },
                            )
                            .await;
                        }
                        Err(f) => {
                            // Nothing to confirm and nothing done: the agent sees why (the
                            // pull request does not exist, the upstream is down).
                            let label = format!("{:?}", f.code).to_lowercase();
                            let reason = format!("the preview failed: {}", f.message);
                            shared
                                .audit
                                .submit(audit.outcome(None, &label, Some(&reason)))
                                .await;
                            span.set_error(&f.message);
                            return Ok(convert::failure(&f).into());
                        }
                    }
                };
                match confirm::ask(
                    ctx,
                    &shared.state_key,
                    &shared.store,
                    claim,
                    shown,
                    request.input_responses.as_ref(),
                    request.request_state.as_deref(),
                )
                .await
                {
                    Confirmation::Confirmed(shown) => {
                        binding.clone_from(&shown.binding);
                        confirmation = Some(confirmed(shown, "confirmed"));
                    }
                    Confirmation::Ask(input) => return Ok(CallToolResponse::InputRequired(*input)),
                    Confirmation::Refused(why, shown) => {
                        let reason = format!("hook {hook}: {why}");
                        let record = audit.confirmed_decision(
                            Some(Layer::Hook),
                            &reason,
                            confirmed(shown, "refused"),
                        );
                        return Ok(deny_recorded(
                            shared,
                            record,
                            tenant.as_str(),
                            &name,
                            Layer::Hook,
                            &reason,
                        )
                        .await);
                    }
                }
            }
        }
    }

    let record = match confirmation {
        Some(c) => audit.confirmed_decision(None, &decision.reason, c),
        None => audit.decision(None, &decision.reason),
    };
    if let Err(e) = shared.audit.write(record).await {
        // No record, no action.
        span.set_error(&e.to_string());
        return Ok(convert::failure(&audit_unavailable()).into());
    }
    let call = call_spec(binding);
    let relay = Relay::new(ctx, log_level);
    let started = std::time::Instant::now();
    let report = tokio::select! {
        r = shared.registry.call(tenant, None, call, &relay) => r,
        // Dropping the call resets its stream, which cancels the tool on the connector.
        () = ctx.ct.cancelled() => {
            shared.audit.submit(audit.outcome(None, "cancelled", Some("cancelled by the client"))).await;
            return Err(McpError::internal_error("cancelled by the client", None));
        }
    };
    let connector = report.connector.as_ref().map(|c| c.to_string());
    for a in &report.actions {
        shared
            .audit
            .submit(audit.upstream(connector.as_deref(), a))
            .await;
    }
    let label = outcome_label(&report.outcome);
    let reason = report.outcome.as_ref().err().map(|f| f.message.as_str());
    shared
        .audit
        .submit(audit.outcome(connector.as_deref(), &label, reason))
        .await;
    shared.metrics.finished(
        tenant.as_str(),
        &name,
        &label,
        Some(started.elapsed().as_secs_f64()),
    );
    if let Some(c) = &connector {
        span.set_attributes(vec![KeyValue::new("mcp_edge.connector", c.clone())]);
    }
    Ok(match report.outcome {
        Ok(mut out) => {
            if let Some(a) = &applied {
                a.hooks.after(&info, &mut out);
            }
            if out.is_error {
                span.set_error("tool error");
            }
            convert::result(out).into()
        }
        Err(f) if f.code == ErrorCode::UnknownTool => {
            return Err(McpError::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        }
        Err(f) if f.code == ErrorCode::AuthorizationRequired => {
            let (trace_id, span_id) = (span.trace_id(), span.span_id());
            return authorization::required(
                shared,
                ctx,
                authorization::Refusal {
                    principal,
                    connector: connector.as_deref(),
                    tool: &name,
                    call_id,
                    trace: (&trace_id, &span_id),
                    failure: &f,
                },
            )
            .await;
        }
        Err(f) => {
            span.set_error(&f.message);
            convert::failure(&f).into()
        }
    })
}

/// A confirmation as the audit trail records it.
fn confirmed(shown: Shown, answer: &str) -> AuditConfirmation {
    AuditConfirmation {
        shown: shown.message,
        binding: shown.binding,
        answer: answer.to_owned(),
    }
}

async fn deny(
    shared: &Shared,
    audit: &CallAudit,
    tenant: &str,
    tool: &str,
    layer: Layer,
    reason: &str,
) -> CallToolResponse {
    deny_recorded(
        shared,
        audit.decision(Some(layer), reason),
        tenant,
        tool,
        layer,
        reason,
    )
    .await
}

/// Denies a call whose decision record is `record`.
async fn deny_recorded(
    shared: &Shared,
    record: AuditRecord,
    tenant: &str,
    tool: &str,
    layer: Layer,
    reason: &str,
) -> CallToolResponse {
    // A denial takes effect whether or not its record can be written.
    if let Err(e) = shared.audit.write(record).await {
        tracing::warn!(error = %e, "denial not recorded");
    }
    shared.metrics.denied(tenant, tool, layer);
    CallToolResult::error(vec![rmcp::model::ContentBlock::text(format!(
        "denied by the {layer} layer: {reason}"
    ))])
    .into()
}

/// The failure of a call that could not be recorded, and so was not made.
fn audit_unavailable() -> CallFailure {
    CallFailure::new(
        ErrorCode::Unavailable,
        "the audit trail is unavailable, so the call was not made; retry later",
    )
}
