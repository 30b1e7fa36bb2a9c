//! The connector's local policy: a file the customer owns, beside the configuration, that
//! the cloud cannot change. It lists the tools this connector will run and, optionally, the
//! repositories they may touch. [`Enforced`] applies it to every call the runtime sends,
//! whatever the runtime decided, and offers the runtime only tools it could allow; the rules
//! themselves go to the runtime at hello, so its tools/list and `policy check` stay truthful.
//!
//! ```toml
//! version = 1
//! max_calls_per_minute = 120  # optional: per user and tool, whatever the runtime sends
//! require_user_proof = true   # optional: refuse calls the identity provider does not vouch for
//! user_proof_max_age = "12h"  # optional: how long ago the user may have signed in there
//! [identity_provider]         # optional: whose ID tokens prove the caller (see user_proof)
//! issuer = "https://login.corp.example/realms/eng"
//! audience = "mcp-edge-runtime"   # the runtime's client id at the provider
//! [[allow]]
//! tools = ["github_*", "gitlab_*"]
//! repos = ["acme/**"]        # optional; omitted means any repository
//! [[allow]]
//! tools = ["github_merge_pull_request"]
//! groups = ["release-managers"]  # optional: only these groups (or `users`, by subject)
//! # With an [identity_provider], the user approves each destructive call and each
//! # approval (merge, delete, approve) by signing in there again; or name the tools:
//! # require_approval = ["github_merge_*"]   (top level; [] for none)
//! [[allow]]
//! tools = ["github_*"]
//! instance = "ghes-sandbox"  # optional; omitted means every [[provider]] instance
//! [[allow]]
//! tools = ["gitlab_get_*"]
//! repos = ["gitlab-prod:platform/**"]   # an instance for one pattern
//! [[allow]]
//! tools = ["diag.*"]
//! ```
//!
//! Without a file the connector runs its diagnostic tools only.

pub mod rate;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use shared::call::{Call, CallFailure, CallOutcome, PreviewOutcome, UserProof};
use shared::policy::{AllowRule, RuleSet, Site, ToolPattern, instances_of, site_of};
use shared::wire::{self, ErrorCode};

use crate::call_context::CallContext;
use crate::toolset::{BoxFuture, ToolSet, unknown_tool};
use crate::user_proof::approval::{Approvable, Approvals};
use crate::user_proof::{self, ProvenUser, UserProofPolicy, Verifier};

/// A parsed local policy file.
#[derive(Debug, Clone)]
pub struct LocalPolicy {
    /// What may run.
    pub rules: RuleSet,
    /// Who each rule of `rules` (same position) is for.
    pub who: Vec<Who>,
    /// At most this many calls of one tool for one user in any minute; `None`: no limit.
    pub max_calls_per_minute: Option<NonZeroU32>,
    /// The identity provider whose ID tokens prove who the caller is; `None`: the
    /// runtime's word is taken.
    pub user_proof: Option<UserProofPolicy>,
    /// The tools whose calls the user approves at the identity provider; `None`: the
    /// destructive ones and approvals ([`needs_confirmation`]). Only with `user_proof`.
    pub require_approval: Option<Vec<ToolPattern>>,
}

/// Whether a call of `spec` with `args` changes something the user must confirm: a
/// destructive tool, or arguments matching the tool's `confirm_when` (an approval). A
/// condition that does not parse asks too.
pub fn needs_confirmation(
    spec: &wire::ToolSpec,
    args: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    if spec.destructive {
        return true;
    }
    if spec.confirm_when_json.is_empty() {
        return false;
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(
        &spec.confirm_when_json,
    ) {
        Ok(when) => when.iter().all(|(k, v)| args.get(k) == Some(v)),
        Err(_) => true,
    }
}

impl From<RuleSet> for LocalPolicy {
    fn from(rules: RuleSet) -> Self {
        Self {
            who: vec![Who::default(); rules.0.len()],
            rules,
            max_calls_per_minute: None,
            user_proof: None,
            require_approval: None,
        }
    }
}

/// The users a rule is for: anyone when both lists are empty, else only a caller the
/// identity provider vouched for whose subject is in `users` or who is in one of `groups`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    /// Subjects (`sub`) at the provider.
    pub users: Vec<String>,
    /// Groups, from the provider's group claim.
    pub groups: Vec<String>,
}

impl Who {
    /// Whether `user` (`None`: unproven) is one this rule is for.
    pub fn admits(&self, user: Option<&ProvenUser>) -> bool {
        if self.users.is_empty() && self.groups.is_empty() {
            return true;
        }
        user.is_some_and(|u| {
            self.users.contains(&u.subject) || u.groups.iter().any(|g| self.groups.contains(g))
        })
    }
}

/// The policy without a file: the diagnostic tools.
pub fn default_rules() -> RuleSet {
    // A constant pattern (the tests below check it parses).
    RuleSet(
        AllowRule::parse(&["diag.*".to_owned()], None, None)
            .into_iter()
            .collect(),
    )
}

/// Why the local policy cannot be used (the connector refuses to start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalPolicyError {
    /// Unreadable.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Invalid.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: u32,
    max_calls_per_minute: Option<toml::Spanned<u32>>,
    require_user_proof: Option<toml::Spanned<bool>>,
    user_proof_max_age: Option<toml::Spanned<String>>,
    require_approval: Option<toml::Spanned<Vec<String>>>,
    identity_provider: Option<toml::Spanned<RawIdentityProvider>>,
    #[serde(default)]
    allow: Vec<toml::Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    tools: Vec<String>,
    instance: Option<String>,
    repos: Option<Vec<String>>,
    users: Option<Vec<String>>,
    groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentityProvider {
    issuer: String,
    audience: String,
    groups_claim: Option<String>,
    ca_bundle: Option<std::path::PathBuf>,
}

/// Parses a local policy file's text.
pub fn parse(path: &str, text: &str) -> Result<LocalPolicy, LocalPolicyError> {
    let at = |span: Option<std::ops::Range<usize>>, message: String| {
        let start = span.map_or(0, |s| s.start);
        let before = text.get(..start).unwrap_or(text);
        LocalPolicyError::Invalid {
            path: path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
            message,
        }
    };
    let raw: RawPolicy =
        toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_owned()))?;
    if raw.version != 1 {
        return Err(at(
            None,
            format!(
                "local policy version {} is not supported (this connector reads 1)",
                raw.version
            ),
        ));
    }
    let user_proof = match raw.identity_provider {
        None => None,
        Some(idp) => {
            let span = idp.span();
            let idp = idp.into_inner();
            if !url::Url::parse(&idp.issuer).is_ok_and(|u| crate::config::https_or_loopback(&u)) {
                return Err(at(
                    Some(span),
                    "identity_provider.issuer must be an https URL (http only on a loopback host)"
                        .into(),
                ));
            }
            if idp.audience.is_empty() {
                return Err(at(Some(span), "identity_provider.audience is empty".into()));
            }
            let max_age = match &raw.user_proof_max_age {
                None => user_proof::DEFAULT_MAX_AGE,
                Some(a) => humantime::parse_duration(a.get_ref())
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        at(
                            Some(a.span()),
                            format!(
                                "user_proof_max_age {:?} is not a duration such as \"12h\"",
                                a.get_ref()
                            ),
                        )
                    })?,
            };
            Some(UserProofPolicy {
                issuer: idp.issuer,
                audience: idp.audience,
                groups_claim: idp.groups_claim.unwrap_or_else(|| "groups".to_owned()),
                max_age,
                required: raw
                    .require_user_proof
                    .as_ref()
                    .is_some_and(|r| *r.get_ref()),
                ca_bundle: idp.ca_bundle,
            })
        }
    };
    // What only a provider can prove needs one to be named.
    let without_provider = |span, what: &str| {
        at(
            Some(span),
            format!("{what} needs an [identity_provider] whose ID tokens prove who the user is"),
        )
    };
    if user_proof.is_none() {
        if let Some(r) = raw.require_user_proof.as_ref().filter(|r| *r.get_ref()) {
            return Err(without_provider(r.span(), "require_user_proof"));
        }
        if let Some(a) = &raw.user_proof_max_age {
            return Err(without_provider(a.span(), "user_proof_max_age"));
        }
        if let Some(a) = &raw.require_approval {
            return Err(without_provider(a.span(), "require_approval"));
        }
    }
    let require_approval = match raw.require_approval {
        None => None,
        Some(list) => {
            let span = list.span();
            Some(
                list.into_inner()
                    .iter()
                    .map(|t| t.parse::<ToolPattern>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| at(Some(span), format!("require_approval: {e}")))?,
            )
        }
    };
    let mut rules = Vec::with_capacity(raw.allow.len());
    let mut who = Vec::with_capacity(raw.allow.len());
    for (i, r) in raw.allow.into_iter().enumerate() {
        let span = r.span();
        let r = r.into_inner();
        let rule = AllowRule::parse(&r.tools, r.instance.as_deref(), r.repos.as_deref())
            .map_err(|e| at(Some(span.clone()), format!("allow[{i}]: {e}")))?;
        let w = Who {
            users: r.users.unwrap_or_default(),
            groups: r.groups.unwrap_or_default(),
        };
        if w != Who::default() && user_proof.is_none() {
            return Err(without_provider(
                span,
                &format!("allow[{i}]: users or groups"),
            ));
        }
        if w.users.iter().chain(&w.groups).any(|n| n.is_empty()) {
            return Err(at(
                Some(span),
                format!("allow[{i}]: an empty user or group name"),
            ));
        }
        rules.push(rule);
        who.push(w);
    }
    let max_calls_per_minute = match raw.max_calls_per_minute {
        None => None,
        Some(n) => {
            let span = n.span();
            Some(NonZeroU32::new(n.into_inner()).ok_or_else(|| {
                at(
                    Some(span),
                    "max_calls_per_minute must be at least 1 (leave it out for no limit)"
                        .to_owned(),
                )
            })?)
        }
    };
    Ok(LocalPolicy {
        rules: RuleSet(rules),
        who,
        max_calls_per_minute,
        user_proof,
        require_approval,
    })
}

/// Loads the policy at `path`; without a path, or when the file does not exist, the
/// diagnostic tools only.
pub fn load(path: Option<&Path>) -> Result<LocalPolicy, LocalPolicyError> {
    let Some(path) = path else {
        return Ok(default_rules().into());
    };
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&name, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %name, "no local policy file: serving the diagnostic tools only");
            Ok(default_rules().into())
        }
        Err(source) => Err(LocalPolicyError::Read { path: name, source }),
    }
}

/// A tool set behind the local policy.
pub struct Enforced {
    inner: Arc<dyn ToolSet>,
    rules: RuleSet,
    who: Vec<Who>,
    verifier: Option<Verifier>,
    require_approval: Option<Vec<ToolPattern>>,
    approvals: Approvals,
    rate: Option<rate::CallRate>,
    offered: HashMap<String, wire::ToolSpec>,
}

/// A call that passed the rules: its tool, site and arguments.
#[derive(Debug)]
struct Checked<'a> {
    spec: &'a wire::ToolSpec,
    site: Site,
    args: serde_json::Map<String, serde_json::Value>,
}

impl Enforced {
    /// `inner`'s tools, of which only those `policy` could allow are offered and run, at
    /// its rate, for the users it names.
    pub fn new(
        inner: Arc<dyn ToolSet>,
        policy: LocalPolicy,
    ) -> Result<Self, user_proof::keys::KeysError> {
        let LocalPolicy {
            rules,
            who,
            max_calls_per_minute,
            user_proof,
            require_approval,
        } = policy;
        let offered = inner
            .specs()
            .into_iter()
            .filter(|s| {
                rules
                    .scope(&s.name)
                    .admits_some(!s.target_args.is_empty(), &instances_of(s))
            })
            .map(|s| (s.name.clone(), s))
            .collect();
        Ok(Self {
            inner,
            rules,
            who,
            verifier: user_proof.map(Verifier::new).transpose()?,
            require_approval,
            approvals: Approvals::default(),
            rate: max_calls_per_minute.map(rate::CallRate::new),
            offered,
        })
    }

    /// The rules, for the hello.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Who the call's user is, as the identity provider proves it (`None` where the policy
    /// takes the runtime's word).
    async fn prove(
        &self,
        proof: &UserProof,
        claimed: &str,
    ) -> Result<Option<ProvenUser>, CallFailure> {
        match &self.verifier {
            Some(v) => v
                .check(proof.expose(), claimed)
                .await
                .map_err(|e| e.failure()),
            None => Ok(None),
        }
    }

    /// Whether the policy lets `user` run the call: its tool offered, its arguments
    /// naming a site a rule for this user allows.
    fn check(&self, call: &Call, user: Option<&ProvenUser>) -> Result<Checked<'_>, CallFailure> {
        let Some(spec) = self.offered.get(call.tool.as_str()) else {
            return Err(unknown_tool(call.tool.as_str()));
        };
        let args: serde_json::Map<String, serde_json::Value> = if call.arguments_json.is_empty() {
            serde_json::Map::new()
        } else {
            serde_json::from_slice(&call.arguments_json).map_err(|e| {
                CallFailure::new(
                    ErrorCode::InvalidArguments,
                    format!("arguments must be a JSON object: {e}"),
                )
            })?
        };
        let site = site_of(spec, &args)
            .map_err(|e| CallFailure::new(ErrorCode::InvalidArguments, e.to_string()))?;
        let mut for_others = false;
        for (rule, who) in self.rules.0.iter().zip(&self.who) {
            if rule.allows(&spec.name, &site) {
                if who.admits(user) {
                    return Ok(Checked { spec, site, args });
                }
                for_others = true;
            }
        }
        let place = if site.instance.is_none() && site.repo.is_none() {
            String::new()
        } else {
            format!(" on {site}")
        };
        let whom = if for_others {
            match user {
                Some(u) => format!(
                    " for the user {:?}",
                    u.name.as_deref().unwrap_or(&u.subject)
                ),
                None => " for a user its identity provider did not vouch for".to_owned(),
            }
        } else {
            String::new()
        };
        Err(CallFailure::new(
            ErrorCode::Denied,
            format!(
                "this connector's local policy does not allow {}{place}{whom}",
                spec.name
            ),
        ))
    }

    /// Every check before `call` may run: the user's proof, the rules, then the rate (only
    /// an allowed call counts against it).
    async fn admit(&self, call: &Call, counted: bool) -> Result<(), CallFailure> {
        let user = self.prove(&call.user_proof, &call.caller.user).await?;
        let checked = self.check(call, user.as_ref())?;
        // Previews write nothing: only the call itself needs the user's approval.
        if counted {
            self.approved(call, user.as_ref(), &checked).await?;
        }
        match &self.rate {
            Some(rate) if counted => rate.check(call),
            _ => Ok(()),
        }
    }
}

impl Enforced {
    /// Whether the user approved `call` at the identity provider, where the policy wants
    /// them to: refused with a challenge when they have not (yet, or validly).
    async fn approved(
        &self,
        call: &Call,
        user: Option<&ProvenUser>,
        checked: &Checked<'_>,
    ) -> Result<(), CallFailure> {
        let Some(verifier) = &self.verifier else {
            return Ok(());
        };
        let wanted = match &self.require_approval {
            Some(tools) => tools.iter().any(|t| t.matches(&checked.spec.name)),
            None => needs_confirmation(checked.spec, &checked.args),
        };
        if !wanted {
            return Ok(());
        }
        let Some(user) = user else {
            return Err(user_proof::ProofError::Missing.failure());
        };
        let approvable = Approvable {
            tool: &checked.spec.name,
            target: if checked.site.instance.is_none() && checked.site.repo.is_none() {
                String::new()
            } else {
                checked.site.to_string()
            },
            arguments: &checked.args,
            binding: &call.binding,
        };
        let why = if call.approval.expose().is_empty() {
            "this call needs your approval at your identity provider".to_owned()
        } else {
            let refused = match verifier.verify(call.approval.expose()).await {
                Ok(approver) => match self.approvals.redeem(&user.id, &approver, &approvable) {
                    Ok(()) => return Ok(()),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            tracing::warn!(call_id = call.id, tool = call.tool.as_str(), user = %user.id, reason = %refused, "approval refused");
            format!("the approval sent with this call was refused ({refused}); approve it again")
        };
        let nonce = self
            .approvals
            .challenge(&user.id, &approvable)
            .map_err(|e| CallFailure::new(ErrorCode::Unavailable, e.to_string()))?;
        let mut f = CallFailure::new(ErrorCode::ApprovalRequired, why);
        f.approval = Some(Box::new(wire::ApprovalChallenge {
            nonce,
            summary: approvable.summary(),
            issuer: verifier.policy().issuer.clone(),
            expires_in_ms: u64::try_from(user_proof::approval::CHALLENGE_TTL.as_millis())
                .unwrap_or(u64::MAX),
        }));
        Err(f)
    }
}

impl ToolSet for Enforced {
    fn specs(&self) -> Vec<wire::ToolSpec> {
        let mut specs: Vec<_> = self.offered.values().cloned().collect();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs
    }

    fn call<'a>(&'a self, call: &'a Call, ctx: &'a CallContext) -> BoxFuture<'a, CallOutcome> {
        Box::pin(async move {
            if let Err(f) = self.admit(call, true).await {
                tracing::warn!(call_id = call.id, tool = call.tool.as_str(), user = %call.caller.user, reason = %f.message, "call refused by the local policy");
                return Err(f);
            }
            self.inner.call(call, ctx).await
        })
    }

    fn preview<'a>(
        &'a self,
        call: &'a Call,
        ctx: &'a CallContext,
    ) -> BoxFuture<'a, PreviewOutcome> {
        // A preview reads upstream as the user: the same rules as the call itself.
        Box::pin(async move {
            self.admit(call, false).await?;
            self.inner.preview(call, ctx).await
        })
    }

    fn authorize<'a>(&'a self, cb: &'a wire::AuthorizeCallback) -> BoxFuture<'a, CallOutcome> {
        // Finishing a user's sign-in runs no tool, but stores a grant under the user's
        // id: the same proof as for a call.
        Box::pin(async move {
            let claimed = cb.caller.as_ref().map_or("", |c| c.user.as_str());
            self.prove(&UserProof::new(cb.user_proof.clone()), claimed)
                .await?;
            self.inner.authorize(cb).await
        })
    }

    fn connections<'a>(&'a self, req: &'a wire::ConnectionsRequest) -> BoxFuture<'a, CallOutcome> {
        // No tool runs and no upstream is reached: the answer names users and providers,
        // never a token, and a revocation only removes one. The connector's own audit log
        // records who asked (see `audit_gate`).
        self.inner.connections(req)
    }
}

#[cfg(test)]
mod tests {
    use shared::policy::Site;

    use super::*;

    #[test]
    fn parses_rules_and_names_the_line_of_a_bad_one() {
        let rules = parse(
            "p.toml",
            "version = 1\n[[allow]]\ntools = [\"github_*\"]\nrepos = [\"acme/**\"]\n",
        )
        .unwrap()
        .rules;
        let at = |repo: &str| Site {
            instance: None,
            repo: Some(repo.parse().unwrap()),
        };
        assert!(rules.allows("github_get_issue", &at("acme/w")));
        assert!(!rules.allows("github_get_issue", &at("globex/w")));
        let e = parse("p.toml", "version = 1\n\n[[allow]]\ntools = [\"a b\"]\n").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:3:"), "{e}");
        let e = parse("p.toml", "version = 2\n").unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
        assert!(
            load(Some(Path::new("/nonexistent/policy.toml")))
                .unwrap()
                .rules
                .allows("diag.ping", &Site::default())
        );
        assert!(!default_rules().allows("github_get_issue", &Site::default()));
    }

    /// Tools that count the calls that reach them.
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl ToolSet for Counting {
        fn specs(&self) -> Vec<wire::ToolSpec> {
            ["github_get_issue", "github_merge_pull_request"]
                .map(|name| wire::ToolSpec {
                    name: name.into(),
                    target_args: vec!["owner".into(), "repo".into()],
                    instances: vec!["ghes-prod".into(), "ghes-sandbox".into()],
                    ..Default::default()
                })
                .into()
        }

        fn call<'a>(&'a self, _: &'a Call, _: &'a CallContext) -> BoxFuture<'a, CallOutcome> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Ok(wire::ToolOutput::default()) })
        }
    }

    fn call(tool: &str, owner: &str) -> Call {
        call_on(tool, "ghes-prod", owner)
    }

    fn as_user(mut call: Call, user: &str) -> Call {
        call.caller.user = user.to_owned();
        call
    }

    fn call_on(tool: &str, instance: &str, owner: &str) -> Call {
        Call::try_from(wire::CallRequest {
            call_id: 1,
            tool: tool.into(),
            arguments_json: format!(
                r#"{{"instance":"{instance}","owner":"{owner}","repo":"w","number":1}}"#
            )
            .into_bytes(),
            timeout_ms: 1000,
            caller: Some(wire::Caller {
                tenant: "acme".into(),
                user: "alice".into(),
                agent: "bot".into(),
            }),
            ..Default::default()
        })
        .unwrap()
    }

    /// Whatever the runtime decided, a call the local policy does not allow never reaches
    /// the tools, and tools it cannot allow are not offered at all.
    #[tokio::test]
    async fn refuses_what_the_runtime_sent_but_the_local_policy_does_not_allow() {
        let inner = Arc::new(Counting::default());
        let rules = parse(
            "policy.toml",
            "version = 1\n[[allow]]\ntools = [\"github_get_issue\"]\nrepos = [\"acme/*\"]\n",
        )
        .unwrap();
        let enforced = Enforced::new(inner.clone(), rules).unwrap();
        let offered: Vec<String> = enforced.specs().into_iter().map(|s| s.name).collect();
        assert_eq!(offered, ["github_get_issue"]);

        let tracing = Arc::new(shared::trace::Tracing::new("t", "0", None).unwrap());
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let span = tracing.start("t", shared::trace::Kind::Server, None);
        let ctx = CallContext::new(tx, false, tracing.clone(), span);

        assert!(
            enforced
                .call(&call("github_get_issue", "acme"), &ctx)
                .await
                .is_ok()
        );
        let other_repo = enforced
            .call(&call("github_get_issue", "globex"), &ctx)
            .await
            .unwrap_err();
        assert_eq!(other_repo.code, ErrorCode::Denied);
        assert!(
            other_repo.message.contains("globex/w"),
            "{}",
            other_repo.message
        );
        let not_offered = enforced
            .call(&call("github_merge_pull_request", "acme"), &ctx)
            .await
            .unwrap_err();
        assert_eq!(not_offered.code, ErrorCode::UnknownTool);
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// An instance-scoped local rule lets a call through on its instance and refuses the
    /// same repository on another instance of the same kind.
    #[tokio::test]
    async fn an_instance_scoped_local_rule_refuses_the_same_repo_on_another_instance() {
        let inner = Arc::new(Counting::default());
        let rules = parse(
            "policy.toml",
            "version = 1\n[[allow]]\ntools = [\"github_get_issue\"]\ninstance = \"ghes-sandbox\"\nrepos = [\"acme/*\"]\n",
        )
        .unwrap();
        let enforced = Enforced::new(inner.clone(), rules).unwrap();
        let tracing = Arc::new(shared::trace::Tracing::new("t", "0", None).unwrap());
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let span = tracing.start("t", shared::trace::Kind::Server, None);
        let ctx = CallContext::new(tx, false, tracing.clone(), span);
        let sandbox = call_on("github_get_issue", "ghes-sandbox", "acme");
        assert!(enforced.call(&sandbox, &ctx).await.is_ok());
        let prod = enforced
            .call(&call_on("github_get_issue", "ghes-prod", "acme"), &ctx)
            .await
            .unwrap_err();
        assert_eq!(prod.code, ErrorCode::Denied);
        assert!(
            prod.message.contains("ghes-prod:acme/w"),
            "{}",
            prod.message
        );
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        let e = parse(
            "p.toml",
            "version = 1\n[[allow]]\ntools = [\"x\"]\ninstance = \"Prod\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("instance \"Prod\""), "{e}");
    }

    /// Whatever the runtime sends, one user gets at most `max_calls_per_minute` calls of a
    /// tool; other users and other tools have their own budget, and a refused call spends none.
    #[tokio::test]
    async fn the_local_rate_holds_per_user_and_tool_whatever_the_runtime_sends() {
        let inner = Arc::new(Counting::default());
        let policy = parse(
            "policy.toml",
            "version = 1\nmax_calls_per_minute = 2\n[[allow]]\ntools = [\"github_*\"]\nrepos = [\"acme/*\"]\n",
        )
        .unwrap();
        let enforced = Enforced::new(inner.clone(), policy).unwrap();
        let tracing = Arc::new(shared::trace::Tracing::new("t", "0", None).unwrap());
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let span = tracing.start("t", shared::trace::Kind::Server, None);
        let ctx = CallContext::new(tx, false, tracing.clone(), span);
        let get = || call("github_get_issue", "acme");

        let denied = enforced
            .call(&call("github_get_issue", "globex"), &ctx)
            .await;
        assert_eq!(denied.unwrap_err().code, ErrorCode::Denied);
        for _ in 0..2 {
            assert!(enforced.call(&get(), &ctx).await.is_ok());
        }
        let limited = enforced.call(&get(), &ctx).await.unwrap_err();
        assert_eq!(limited.code, ErrorCode::RateLimited);
        assert!(
            limited
                .retry_after
                .is_some_and(|d| d >= std::time::Duration::from_secs(1))
        );
        assert!(
            limited
                .message
                .contains("2 calls of github_get_issue per minute"),
            "{}",
            limited.message
        );
        assert!(enforced.call(&as_user(get(), "bob"), &ctx).await.is_ok());
        let merge = call("github_merge_pull_request", "acme");
        assert!(enforced.call(&merge, &ctx).await.is_ok());
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 4);

        let e = parse("p.toml", "version = 1\nmax_calls_per_minute = 0\n").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:2:"), "{e}");
        assert!(e.to_string().contains("at least 1"), "{e}");
    }

    fn proven(subject: &str, groups: &[&str]) -> ProvenUser {
        ProvenUser {
            id: crate::user_proof::claims::user_id("https://idp.example", subject),
            subject: subject.into(),
            name: Some(subject.into()),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            authenticated_at: std::time::SystemTime::now(),
            nonce: None,
        }
    }

    /// Rules naming users or groups admit only callers the identity provider vouched for,
    /// by subject or group claim; an unproven caller gets the rules for anyone only.
    #[test]
    fn rules_for_users_and_groups_admit_only_proven_members() {
        let policy = parse(
            "policy.toml",
            "version = 1\nrequire_user_proof = true\nuser_proof_max_age = \"8h\"\n\
             [identity_provider]\nissuer = \"https://idp.example\"\naudience = \"rt\"\n\
             [[allow]]\ntools = [\"github_get_issue\"]\n\
             [[allow]]\ntools = [\"github_merge_pull_request\"]\ngroups = [\"release\"]\n\
             [[allow]]\ntools = [\"github_merge_pull_request\"]\nusers = [\"carol\"]\n",
        )
        .unwrap();
        let proof = policy.user_proof.clone().unwrap();
        assert!(proof.required);
        assert_eq!(proof.max_age, std::time::Duration::from_secs(8 * 3600));
        assert_eq!(proof.groups_claim, "groups");
        let enforced = Enforced::new(Arc::new(Counting::default()), policy).unwrap();
        let merge = call("github_merge_pull_request", "acme");
        let release = proven("alice", &["eng", "release"]);
        assert!(enforced.check(&merge, Some(&release)).is_ok());
        assert!(enforced.check(&merge, Some(&proven("carol", &[]))).is_ok());
        let bob = enforced
            .check(&merge, Some(&proven("bob", &["eng"])))
            .unwrap_err();
        assert_eq!(bob.code, ErrorCode::Denied);
        assert!(
            bob.message.contains("for the user \"bob\""),
            "{}",
            bob.message
        );
        let unproven = enforced.check(&merge, None).unwrap_err();
        assert!(
            unproven.message.contains("did not vouch for"),
            "{}",
            unproven.message
        );
        // The rule for anyone still admits everyone.
        let get = call("github_get_issue", "acme");
        assert!(enforced.check(&get, None).is_ok());
        assert!(enforced.check(&get, Some(&proven("bob", &[]))).is_ok());
    }

    /// What only an identity provider can prove needs one named, with a usable issuer and
    /// max age: each mistake names its line.
    #[test]
    fn user_rules_without_an_identity_provider_are_refused_with_their_line() {
        for (text, line, says) in [
            (
                "version = 1\nrequire_user_proof = true\n",
                2,
                "needs an [identity_provider]",
            ),
            (
                "version = 1\nuser_proof_max_age = \"1h\"\n",
                2,
                "needs an [identity_provider]",
            ),
            (
                "version = 1\n[[allow]]\ntools = [\"x\"]\ngroups = [\"g\"]\n",
                2,
                "allow[0]: users or groups needs",
            ),
            (
                "version = 1\n[identity_provider]\nissuer = \"http://idp.example\"\naudience = \"rt\"\n",
                2,
                "must be an https URL",
            ),
            (
                "version = 1\nuser_proof_max_age = \"soon\"\n[identity_provider]\nissuer = \"https://idp.example\"\naudience = \"rt\"\n",
                2,
                "not a duration",
            ),
        ] {
            let e = parse("p.toml", text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("p.toml:{line}:")), "{e}");
            assert!(e.contains(says), "{e}");
        }
    }
}
