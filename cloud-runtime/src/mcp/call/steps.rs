//! The pure part of each step of a call: what to name it, whether it resolves, what a
//! denial or a hook's verdict leads to, what is recorded. No I/O, so each is tested here.

use std::sync::Arc;

use rmcp::model::JsonObject;
use shared::call::{CallFailure, ToolName};
use shared::identity::TenantId;
use shared::policy::{Site, site_of};
use shared::wire::{self, ErrorCode};

use crate::audit::CallAudit;
use crate::audit::record::{AuditRecord, Confirmation as AuditConfirmation};
use crate::mcp::confirm::Shown;
use crate::mcp::refusal::Refusal;
use crate::policy::decide::Layer;
use crate::policy::hooks::PreCall;

/// The name a call goes by in spans and records. The name is the client's to choose (any
/// length, any characters); one that cannot name a tool goes in only as a placeholder.
pub(super) fn tool_name(requested: &str) -> String {
    match ToolName::parse(requested) {
        Ok(n) => n.as_str().to_owned(),
        Err(_) => "(invalid tool name)".to_owned(),
    }
}

/// Why a call could not be resolved to a tool and a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unresolved {
    /// No connector of the tenant is online (so the tool may exist).
    NoConnector,
    /// No online connector offers the tool.
    UnknownTool,
    /// The arguments name no usable instance or repository.
    InvalidTarget(String),
}

/// The record and the refusal of a call that did not resolve.
pub(super) fn unresolved(
    audit: &CallAudit,
    tenant: &TenantId,
    name: &str,
    why: Unresolved,
) -> (AuditRecord, Refusal) {
    match why {
        Unresolved::NoConnector => {
            let failure = no_connector(tenant);
            let record = audit.outcome(None, "unavailable", Some(&failure.message));
            (record, Refusal::Failed(failure))
        }
        Unresolved::UnknownTool => (
            audit.refusal("unknown tool"),
            Refusal::UnknownTool {
                name: name.to_owned(),
                why: None,
            },
        ),
        Unresolved::InvalidTarget(error) => (
            audit.refusal(&format!("invalid target: {error}")),
            Refusal::InvalidTarget {
                name: name.to_owned(),
                error,
            },
        ),
    }
}

/// The tool (`spec`, if an online connector offers it) and the site its arguments name.
pub(super) fn resolve_tool(
    spec: Option<Arc<wire::ToolSpec>>,
    online: bool,
    arguments: &JsonObject,
) -> Result<(Arc<wire::ToolSpec>, Site), Unresolved> {
    let spec = match spec {
        Some(s) => s,
        None if online => return Err(Unresolved::UnknownTool),
        None => return Err(Unresolved::NoConnector),
    };
    let site = site_of(&spec, arguments).map_err(|e| Unresolved::InvalidTarget(e.to_string()))?;
    Ok((spec, site))
}

/// A denial as the agent sees it: a tool the gateway does not expose does not exist here.
pub(super) fn refusal_of_denial(name: &str, layer: Layer, reason: String) -> Refusal {
    if layer == Layer::Gateway {
        Refusal::UnknownTool {
            name: name.to_owned(),
            why: Some(reason),
        }
    } else {
        Refusal::Denied { layer, reason }
    }
}

/// What the pre-call hooks decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HookStep {
    /// No hook objects.
    Proceed,
    /// A hook denies the call, for this reason.
    Deny(String),
    /// A hook asks the user first; `fallback` is its question when the connector previews
    /// nothing.
    Confirm {
        /// The hook, named in the reason of a refusal.
        hook: &'static str,
        /// The hook's question.
        fallback: String,
    },
}

/// The step the first deciding hook's verdict (if any) leads to.
pub(super) fn hook_step(verdict: Option<(&'static str, PreCall)>) -> HookStep {
    match verdict {
        None | Some((_, PreCall::Continue)) => HookStep::Proceed,
        Some((hook, PreCall::Deny(reason))) => HookStep::Deny(format!("hook {hook}: {reason}")),
        Some((hook, PreCall::Confirm(fallback))) => HookStep::Confirm { hook, fallback },
    }
}

/// The outcome label and reason of a call whose preview failed.
pub(super) fn preview_failure(f: &CallFailure) -> (String, String) {
    (
        format!("{:?}", f.code).to_lowercase(),
        format!("the preview failed: {}", f.message),
    )
}

/// A confirmation as the audit trail records it.
pub(super) fn confirmed(shown: Shown, answer: &str) -> AuditConfirmation {
    AuditConfirmation {
        shown: shown.message,
        binding: shown.binding,
        answer: answer.to_owned(),
    }
}

/// The failure of a call made while no connector of `tenant` is online.
pub(super) fn no_connector(tenant: &TenantId) -> CallFailure {
    CallFailure::new(
        ErrorCode::Unavailable,
        format!("no connector of tenant {tenant} is online"),
    )
    .retry_after(std::time::Duration::from_secs(5))
}

/// The failure of a call that could not be recorded, and so was not made.
pub(super) fn audit_unavailable() -> CallFailure {
    CallFailure::new(
        ErrorCode::Unavailable,
        "the audit trail is unavailable, so the call was not made; retry later",
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shared::policy::{AllowRule, RuleSet};

    use super::*;
    use crate::audit::CallFacts;
    use crate::audit::record::Verdict;
    use crate::identity::{AgentName, GatewayName, GroupName, Principal, RoleName, UserName};
    use crate::mcp::refusal::answer;
    use crate::policy::decide::{Layers, Subject, decide};
    use crate::policy::file;

    fn spec(target_args: &[&str]) -> Arc<wire::ToolSpec> {
        Arc::new(wire::ToolSpec {
            name: "github_get_issue".into(),
            target_args: target_args.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        })
    }

    fn args(json: serde_json::Value) -> JsonObject {
        json.as_object().cloned().unwrap()
    }

    #[test]
    fn a_name_that_cannot_be_a_tool_goes_in_as_a_placeholder() {
        assert_eq!(tool_name("github_get_issue"), "github_get_issue");
        assert_eq!(tool_name("bad name\n"), "(invalid tool name)");
        assert_eq!(tool_name(&"x".repeat(10_000)), "(invalid tool name)");
    }

    #[test]
    fn resolving_tells_a_missing_tool_from_a_missing_connector() {
        let none = args(serde_json::json!({}));
        assert_eq!(
            resolve_tool(None, true, &none).err(),
            Some(Unresolved::UnknownTool)
        );
        assert_eq!(
            resolve_tool(None, false, &none).err(),
            Some(Unresolved::NoConnector)
        );
        let (s, site) = resolve_tool(Some(spec(&[])), true, &none).unwrap();
        assert_eq!(s.name, "github_get_issue");
        assert_eq!(site, Site::default());
    }

    fn audit() -> CallAudit {
        CallAudit::new(CallFacts {
            tenant: "acme",
            gateway: Some("eng"),
            user: "alice",
            user_id: None,
            agent: "bot",
            tool: "github_get_issue",
            instance: None,
            target: None,
            arguments: None,
            call_id: 7,
            trace_id: "t".into(),
            span_id: "s".into(),
        })
    }

    /// An unresolved call is recorded as a denial by no layer (unknown tool, bad target), or
    /// as an unavailable outcome when no connector is online to say whether the tool exists.
    #[test]
    fn an_unresolved_call_is_recorded_and_refused() {
        let acme: TenantId = "acme".parse().unwrap();
        let (record, refusal) = unresolved(&audit(), &acme, "t", Unresolved::UnknownTool);
        assert_eq!(record.decision, Some(Verdict::Deny));
        assert_eq!(
            (record.layer, record.reason.as_deref()),
            (None, Some("unknown tool"))
        );
        assert_eq!(answer(refusal).unwrap_err().message, "unknown tool: t");
        let bad = Unresolved::InvalidTarget("bad repo".into());
        let (record, refusal) = unresolved(&audit(), &acme, "t", bad);
        assert_eq!(record.reason.as_deref(), Some("invalid target: bad repo"));
        assert_eq!(answer(refusal).unwrap_err().message, "t: bad repo");
        let (record, refusal) = unresolved(&audit(), &acme, "t", Unresolved::NoConnector);
        assert_eq!(record.decision, None);
        assert_eq!(record.outcome.as_deref(), Some("unavailable"));
        assert_eq!(
            record.reason.as_deref(),
            Some("no connector of tenant acme is online")
        );
        assert!(matches!(refusal, Refusal::Failed(f) if f.code == ErrorCode::Unavailable));
    }

    #[test]
    fn resolving_reads_the_target_or_refuses_a_malformed_one() {
        let repo = args(serde_json::json!({"repo": "acme/widgets"}));
        let (_, site) = resolve_tool(Some(spec(&["repo"])), true, &repo).unwrap();
        assert_eq!(
            site.repo.map(|r| r.to_string()).as_deref(),
            Some("acme/widgets")
        );
        let bad = args(serde_json::json!({"repo": "../etc"}));
        assert!(matches!(
            resolve_tool(Some(spec(&["repo"])), true, &bad),
            Err(Unresolved::InvalidTarget(_))
        ));
    }

    /// The decision step's answers: a gateway that does not expose a tool hides it (unknown
    /// tool), any other layer's denial is a result naming the layer.
    #[test]
    fn a_gateway_denial_reads_as_an_unknown_tool_and_others_as_denials() {
        let policy = file::parse(
            "t.toml",
            "version = 1\n[roles.triage]\nallow = [{ tools = [\"github_get_issue\"] }]\n",
        )
        .unwrap();
        let principal = Principal {
            tenant: "acme".parse().unwrap(),
            user_id: shared::identity::UserId::from_bytes(&[1; 16]),
            user: UserName::parse("alice").unwrap(),
            groups: vec![GroupName::parse("nobody").unwrap()],
            agent: AgentName::parse("bot").unwrap(),
            role: RoleName::parse("triage").unwrap(),
        };
        let eng = GatewayName::parse("eng").unwrap();
        let rules = RuleSet(vec![
            AllowRule::parse(&["github_*".to_owned()], None, None).unwrap(),
        ]);
        let any = shared::policy::Scope::Any;
        let layers = Layers {
            policy: Some(&policy),
            gateway: (&eng, &rules),
            connector: &any,
        };
        let refusal = |tool: &str| {
            let d = decide(layers, Subject::from(&principal), tool, &Site::default());
            refusal_of_denial(tool, d.denied_by.unwrap(), d.reason)
        };
        let hidden = answer(refusal("gitlab_get_issue")).unwrap_err();
        assert_eq!(
            hidden.message,
            "unknown tool: gitlab_get_issue (gateway eng does not expose gitlab_get_issue)"
        );
        assert!(matches!(
            refusal("github_get_issue"),
            Refusal::Denied {
                layer: Layer::User,
                ..
            }
        ));
        assert!(matches!(
            refusal("github_merge_pull_request"),
            Refusal::Denied {
                layer: Layer::Agent,
                ..
            }
        ));
    }

    #[test]
    fn hooks_proceed_deny_with_their_name_or_ask() {
        assert_eq!(hook_step(None), HookStep::Proceed);
        assert_eq!(hook_step(Some(("h", PreCall::Continue))), HookStep::Proceed);
        assert_eq!(
            hook_step(Some(("business-hours", PreCall::Deny("closed".into())))),
            HookStep::Deny("hook business-hours: closed".into())
        );
        assert_eq!(
            hook_step(Some((
                "confirm-destructive",
                PreCall::Confirm("Allow?".into())
            ))),
            HookStep::Confirm {
                hook: "confirm-destructive",
                fallback: "Allow?".into()
            }
        );
    }

    #[test]
    fn a_failed_preview_is_recorded_with_its_code_and_message() {
        let f = CallFailure::new(ErrorCode::NotFound, "no pull request #5");
        assert_eq!(
            preview_failure(&f),
            (
                "notfound".to_owned(),
                "the preview failed: no pull request #5".to_owned()
            )
        );
    }

    #[test]
    fn a_confirmation_is_recorded_with_what_was_shown() {
        let shown = Shown {
            message: "Allow?".into(),
            binding: BTreeMap::from([("head_sha".into(), "abc".into())]),
        };
        let c = confirmed(shown, "refused");
        assert_eq!((c.shown.as_str(), c.answer.as_str()), ("Allow?", "refused"));
        assert_eq!(c.binding.get("head_sha").map(String::as_str), Some("abc"));
    }

    #[test]
    fn no_connector_and_no_audit_trail_are_retryable_failures() {
        let f = no_connector(&"acme".parse().unwrap());
        assert_eq!(f.code, ErrorCode::Unavailable);
        assert_eq!(f.message, "no connector of tenant acme is online");
        assert!(f.retry_after.is_some());
        assert_eq!(audit_unavailable().code, ErrorCode::Unavailable);
    }
}
