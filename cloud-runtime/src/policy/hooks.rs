//! Policy hooks: code that runs around an allowed call. A pre-call hook may let the call go
//! on, deny it, or ask the user to confirm it first; a post-call hook may rewrite the output
//! (redact it). The built-in hooks are [`ConfirmDestructive`] and [`RedactSecrets`]; more
//! can be added by implementing [`PreCallHook`] or [`PostCallHook`].

use std::sync::LazyLock;

use regex::Regex;
use shared::identity::TenantId;
use shared::policy::Target;
use shared::wire;

use super::file::HookSettings;
use crate::identity::{AgentName, UserName};

/// What a hook sees of a call.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    /// Tenant.
    pub tenant: &'a TenantId,
    /// User.
    pub user: &'a UserName,
    /// Agent.
    pub agent: &'a AgentName,
    /// The tool's spec as its connector declared it.
    pub tool: &'a wire::ToolSpec,
    /// The repository, if the tool names one.
    pub target: Option<&'a Target>,
    /// The arguments.
    pub arguments: &'a serde_json::Map<String, serde_json::Value>,
}

/// A pre-call hook's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreCall {
    /// Go on (to the next hook, then the call).
    Continue,
    /// Refuse, with a reason for the agent.
    Deny(String),
    /// Ask the user this question first; go on only if they confirm.
    Confirm(String),
}

/// Runs before an allowed call.
pub trait PreCallHook: Send + Sync {
    /// Name, for the audit trail when the hook decides.
    fn name(&self) -> &'static str;
    /// The verdict on `call`.
    fn before(&self, call: &CallInfo<'_>) -> PreCall;
}

/// Runs on a call's output before it goes back to the client.
pub trait PostCallHook: Send + Sync {
    /// Name, for logs.
    fn name(&self) -> &'static str;
    /// Rewrites `output` in place; returns how many things it changed.
    fn after(&self, call: &CallInfo<'_>, output: &mut wire::ToolOutput) -> usize;
}

/// The hooks of one tenant, in order.
pub struct Hooks {
    pre: Vec<Box<dyn PreCallHook>>,
    post: Vec<Box<dyn PostCallHook>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field(
                "pre",
                &self.pre.iter().map(|h| h.name()).collect::<Vec<_>>(),
            )
            .field(
                "post",
                &self.post.iter().map(|h| h.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Hooks {
    /// The built-in hooks the settings turn on.
    pub fn builtin(settings: HookSettings) -> Self {
        let mut hooks = Self {
            pre: Vec::new(),
            post: Vec::new(),
        };
        if settings.confirm_destructive {
            hooks.pre.push(Box::new(ConfirmDestructive));
        }
        if settings.redact_secrets {
            hooks.post.push(Box::new(RedactSecrets));
        }
        hooks
    }

    /// Adds a pre-call hook after the others.
    pub fn with_pre(mut self, hook: Box<dyn PreCallHook>) -> Self {
        self.pre.push(hook);
        self
    }

    /// Adds a post-call hook after the others.
    pub fn with_post(mut self, hook: Box<dyn PostCallHook>) -> Self {
        self.post.push(hook);
        self
    }

    /// The first verdict other than [`PreCall::Continue`], with the hook's name.
    pub fn before(&self, call: &CallInfo<'_>) -> Option<(&'static str, PreCall)> {
        self.pre.iter().find_map(|h| match h.before(call) {
            PreCall::Continue => None,
            v => Some((h.name(), v)),
        })
    }

    /// Runs every post-call hook; returns how many changes they made.
    pub fn after(&self, call: &CallInfo<'_>, output: &mut wire::ToolOutput) -> usize {
        self.post.iter().map(|h| h.after(call, output)).sum()
    }
}

/// Whether `call` needs the user's confirmation: its tool is destructive (merge, delete),
/// or its arguments match the tool's `confirm_when_json` (an approval). A condition that
/// does not parse asks too: a connector's mistake must not skip the question.
pub fn needs_confirmation(call: &CallInfo<'_>) -> bool {
    if call.tool.destructive {
        return true;
    }
    if call.tool.confirm_when_json.is_empty() {
        return false;
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(
        &call.tool.confirm_when_json,
    ) {
        Ok(when) => when.iter().all(|(k, v)| call.arguments.get(k) == Some(v)),
        Err(_) => true,
    }
}

/// Asks the user before any call that needs confirmation ([`needs_confirmation`]):
/// destructive tools (merge, delete) and approvals.
#[derive(Debug, Clone, Copy)]
pub struct ConfirmDestructive;

impl PreCallHook for ConfirmDestructive {
    fn name(&self) -> &'static str {
        "confirm-destructive"
    }

    fn before(&self, call: &CallInfo<'_>) -> PreCall {
        if !needs_confirmation(call) {
            return PreCall::Continue;
        }
        let on = call.target.map(|t| format!(" on {t}")).unwrap_or_default();
        let undo = if call.tool.destructive {
            ", which cannot be undone"
        } else {
            ""
        };
        PreCall::Confirm(format!(
            "Agent {} wants to run {}{on}{undo}. Allow it?",
            call.agent, call.tool.name
        ))
    }
}

/// Strings shaped like well-known credentials: GitHub and GitLab tokens, cloud keys, Slack
/// tokens, JWTs, PEM private keys, and this product's own keys and tokens.
#[allow(clippy::expect_used)] // a constant pattern, compiled by every test run
static SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",
        r"|\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
        r"|\bgl(?:pat|oas|rt|dt|ptt|cbt|ft|imt|agent|soat|ffct)-[A-Za-z0-9_\-]{20,}",
        r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}",
        r"|\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        r"|\bmcp(?:ak|jt|us|code|rt)_[A-Za-z0-9_\-]{16,}",
    ))
    .expect("the secret pattern compiles")
});

/// What a redacted secret becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces every credential-shaped string in `text`; returns the count.
pub fn redact_text(text: &mut String) -> usize {
    let n = SECRET.find_iter(text).count();
    if n > 0 {
        *text = SECRET.replace_all(text, REDACTED).into_owned();
    }
    n
}

/// Replaces every credential-shaped string inside a JSON value; returns the count.
pub fn redact_value(v: &mut serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => redact_text(s),
        serde_json::Value::Array(a) => a.iter_mut().map(redact_value).sum(),
        serde_json::Value::Object(o) => o.values_mut().map(redact_value).sum(),
        _ => 0,
    }
}

fn redact_json(bytes: &mut Vec<u8>) -> usize {
    if bytes.is_empty() || !SECRET.is_match(&String::from_utf8_lossy(bytes)) {
        return 0;
    }
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return 0;
    };
    let n = redact_value(&mut v);
    if n > 0
        && let Ok(out) = serde_json::to_vec(&v)
    {
        *bytes = out;
    }
    n
}

/// Strips credential-shaped strings from every part of an output.
#[derive(Debug, Clone, Copy)]
pub struct RedactSecrets;

impl PostCallHook for RedactSecrets {
    fn name(&self) -> &'static str {
        "redact-secrets"
    }

    fn after(&self, _call: &CallInfo<'_>, output: &mut wire::ToolOutput) -> usize {
        redact_text(&mut output.text)
            + redact_json(&mut output.structured_json)
            + redact_json(&mut output.content_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(destructive: bool) -> wire::ToolSpec {
        wire::ToolSpec {
            name: "github_merge_pull_request".into(),
            destructive,
            ..Default::default()
        }
    }

    fn info<'a>(
        spec: &'a wire::ToolSpec,
        args: &'a serde_json::Map<String, serde_json::Value>,
    ) -> CallInfo<'a> {
        CallInfo {
            tenant: Box::leak(Box::new("acme".parse().unwrap())),
            user: Box::leak(Box::new(UserName::parse("alice").unwrap())),
            agent: Box::leak(Box::new(AgentName::parse("bot").unwrap())),
            tool: spec,
            target: None,
            arguments: args,
        }
    }

    #[test]
    fn destructive_tools_need_confirmation() {
        let hooks = Hooks::builtin(HookSettings::default());
        let args = serde_json::Map::new();
        let d = spec(true);
        assert!(matches!(
            hooks.before(&info(&d, &args)),
            Some(("confirm-destructive", PreCall::Confirm(_)))
        ));
        let r = spec(false);
        assert_eq!(hooks.before(&info(&r, &args)), None);
        let off = Hooks::builtin(HookSettings {
            confirm_destructive: false,
            redact_secrets: false,
        });
        assert_eq!(off.before(&info(&d, &args)), None);
    }

    #[test]
    fn approvals_need_confirmation_like_merges() {
        let hooks = Hooks::builtin(HookSettings::default());
        let review = wire::ToolSpec {
            name: "github_review_pull_request".into(),
            confirm_when_json: r#"{"event":"APPROVE"}"#.into(),
            ..Default::default()
        };
        let args = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
        let approve = args(serde_json::json!({"event": "APPROVE", "number": 5}));
        assert!(matches!(
            hooks.before(&info(&review, &approve)),
            Some(("confirm-destructive", PreCall::Confirm(m))) if !m.contains("cannot be undone")
        ));
        let comment = args(serde_json::json!({"event": "COMMENT", "body": "x"}));
        assert_eq!(hooks.before(&info(&review, &comment)), None);
        let broken = wire::ToolSpec {
            confirm_when_json: "not json".into(),
            ..review.clone()
        };
        assert!(hooks.before(&info(&broken, &comment)).is_some());
    }

    #[test]
    fn secrets_are_redacted_everywhere_in_an_output() {
        let token = format!("ghp_{}", "a1B2".repeat(9));
        let pat = format!("glpat-{}", "x".repeat(20));
        let key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----";
        let mut out = wire::ToolOutput {
            text: format!("token {token} and {pat}"),
            structured_json: serde_json::to_vec(
                &serde_json::json!({"a": [token, {"k": key}], "n": 1}),
            )
            .unwrap(),
            ..Default::default()
        };
        let hooks = Hooks::builtin(HookSettings::default());
        let args = serde_json::Map::new();
        let s = spec(false);
        assert_eq!(hooks.after(&info(&s, &args), &mut out), 4);
        assert_eq!(out.text, "token [REDACTED] and [REDACTED]");
        let v: serde_json::Value = serde_json::from_slice(&out.structured_json).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": ["[REDACTED]", {"k": "[REDACTED]"}], "n": 1})
        );
        let mut clean = "nothing here: ghp_short".to_owned();
        assert_eq!(redact_text(&mut clean), 0);
    }
}
