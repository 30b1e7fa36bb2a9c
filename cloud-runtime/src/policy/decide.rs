//! The permission intersection: a call is allowed only where the gateway exposes the tool,
//! the agent's role allows it, the user's grants allow it, and a connector's local policy
//! allows it — each on the call's site (its upstream instance and repository). The first layer that refuses is named in the
//! decision, with a reason that speaks only of the caller's own role and groups.
//!
//! Pure functions over plain data: no store, no transport, no clock.

use std::fmt;

use serde::{Deserialize, Serialize};
use shared::policy::{Instance, RuleSet, Scope, Site};

use super::file::TenantPolicy;
use crate::identity::{AgentName, GatewayName, GroupName, Principal, RoleName, UserName};

/// A layer of the intersection (and the hooks after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// The gateway's tool collection.
    Gateway,
    /// The agent's role.
    Agent,
    /// The user's grants.
    User,
    /// The connector's local policy.
    Connector,
    /// A pre-call hook (e.g. the user declined a confirmation).
    Hook,
}

impl Layer {
    /// Every layer, for metrics and tables.
    pub const ALL: [Layer; 5] = [
        Layer::Gateway,
        Layer::Agent,
        Layer::User,
        Layer::Connector,
        Layer::Hook,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Gateway => "gateway",
            Layer::Agent => "agent",
            Layer::User => "user",
            Layer::Connector => "connector",
            Layer::Hook => "hook",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The agent (application).
    pub agent: &'a AgentName,
    /// The agent's role.
    pub role: &'a RoleName,
    /// The user.
    pub user: &'a UserName,
    /// The user's groups (their grants).
    pub groups: &'a [GroupName],
}

impl<'a> From<&'a Principal> for Subject<'a> {
    fn from(p: &'a Principal) -> Self {
        Self {
            agent: &p.agent,
            role: &p.role,
            user: &p.user,
            groups: &p.groups,
        }
    }
}

/// The outcome of the intersection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The refusing layer; `None` when allowed.
    pub denied_by: Option<Layer>,
    /// Why, in a sentence for the agent and the audit trail.
    pub reason: String,
}

impl Decision {
    /// Whether the call may go ahead.
    pub fn allowed(&self) -> bool {
        self.denied_by.is_none()
    }

    fn deny(layer: Layer, reason: String) -> Self {
        Self {
            denied_by: Some(layer),
            reason,
        }
    }
}

/// What the runtime knows of each layer when deciding one call.
#[derive(Debug, Clone, Copy)]
pub struct Layers<'a> {
    /// The tenant's policy, if one was applied (none denies everything).
    pub policy: Option<&'a TenantPolicy>,
    /// The gateway's name and its exposed tools.
    pub gateway: (&'a GatewayName, &'a RuleSet),
    /// Where the tenant's connectors' local policies allow the tool.
    pub connector: &'a Scope,
}

fn role_scope(policy: Option<&TenantPolicy>, role: &RoleName, tool: &str) -> Result<Scope, String> {
    match policy.and_then(|p| p.roles.get(role.as_str())) {
        Some(g) => Ok(g.rules.scope(tool)),
        None if policy.is_none() => Err("the tenant has no policy yet".to_owned()),
        None => Err(format!("role {role:?} is not defined in the tenant policy")),
    }
}

fn user_scope(policy: Option<&TenantPolicy>, groups: &[GroupName], tool: &str) -> Scope {
    let Some(p) = policy else {
        return Scope::None;
    };
    // A union of groups: any of the user's grants may allow it.
    groups
        .iter()
        .filter_map(|g| p.groups.get(g.as_str()))
        .fold(Scope::None, |acc, g| acc.union(g.rules.scope(tool)))
}

fn where_phrase(scope: &Scope, site: &Site) -> String {
    match (scope, site) {
        (
            Scope::Places(_),
            Site {
                instance: None,
                repo: None,
            },
        ) => "without naming a repository".to_owned(),
        (Scope::Places(ps), site) => {
            let list: Vec<String> = ps.iter().map(ToString::to_string).collect();
            format!("on {site} (only on {})", list.join(", "))
        }
        _ => String::new(),
    }
}

/// Decides one call of `tool` at `site` (its instance and repository).
pub fn decide(layers: Layers<'_>, subject: Subject<'_>, tool: &str, site: &Site) -> Decision {
    let (gateway_name, gateway_rules) = layers.gateway;
    if !gateway_rules.allows(tool, &Site::default()) {
        return Decision::deny(
            Layer::Gateway,
            format!("gateway {gateway_name} does not expose {tool}"),
        );
    }
    let role = match role_scope(layers.policy, subject.role, tool) {
        Ok(s) => s,
        Err(why) => {
            return Decision::deny(Layer::Agent, format!("agent {}: {why}", subject.agent));
        }
    };
    if !role.allows(site) {
        let tail = where_phrase(&role, site);
        return Decision::deny(
            Layer::Agent,
            format!(
                "agent {}'s role {} does not allow {tool}{}",
                subject.agent,
                subject.role,
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(" {tail}")
                }
            ),
        );
    }
    let user = user_scope(layers.policy, subject.groups, tool);
    if !user.allows(site) {
        let tail = where_phrase(&user, site);
        let groups = if subject.groups.is_empty() {
            "no groups".to_owned()
        } else {
            let names: Vec<&str> = subject.groups.iter().map(GroupName::as_str).collect();
            format!("groups {}", names.join(", "))
        };
        return Decision::deny(
            Layer::User,
            format!(
                "your grants ({groups}) do not allow {tool}{}",
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(" {tail}")
                }
            ),
        );
    }
    if !layers.connector.allows(site) {
        let tail = where_phrase(layers.connector, site);
        return Decision::deny(
            Layer::Connector,
            format!(
                "no connector's local policy allows {tool}{}",
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(" {tail}")
                }
            ),
        );
    }
    Decision {
        denied_by: None,
        reason: format!(
            "allowed by gateway {gateway_name}, role {}, the user's grants and the connector's policy",
            subject.role
        ),
    }
}

/// The policy's own layers for `tool`, anywhere: `None` when the role and the user's
/// grants both allow it somewhere, else the first layer that refuses it everywhere. What
/// a policy change can turn (the gateway and connector layers are not the policy's).
pub fn policy_refusal(
    policy: Option<&TenantPolicy>,
    role: &RoleName,
    groups: &[GroupName],
    tool: &str,
) -> Option<Layer> {
    match role_scope(policy, role, tool) {
        Ok(Scope::None) | Err(_) => Some(Layer::Agent),
        Ok(_) if user_scope(policy, groups, tool) == Scope::None => Some(Layer::User),
        Ok(_) => None,
    }
}

/// Whether some call of `tool` could pass every layer: what tools/list shows. `has_target`
/// says whether the tool names a repository in its arguments, `instances` which upstream
/// instances it can act on.
pub fn visible(
    layers: Layers<'_>,
    subject: Subject<'_>,
    tool: &str,
    has_target: bool,
    instances: &[Instance],
) -> bool {
    let (_, gateway_rules) = layers.gateway;
    if !gateway_rules.allows(tool, &Site::default()) {
        return false;
    }
    let Ok(role) = role_scope(layers.policy, subject.role, tool) else {
        return false;
    };
    role.intersect(&user_scope(layers.policy, subject.groups, tool))
        .intersect(layers.connector)
        .admits_some(has_target, instances)
}

#[cfg(test)]
mod tests {
    use shared::policy::Target;

    use super::*;
    use crate::policy::file;

    /// A call on `repo`, on no particular instance.
    fn at(repo: &Target) -> Site {
        Site {
            instance: None,
            repo: Some(repo.clone()),
        }
    }

    const POLICY: &str = r#"
version = 1
[roles.triage]
allow = [{ tools = ["github_get_issue", "github_list_issues", "github_comment_on_issue"] }]
[roles.maintainer]
allow = [{ tools = ["github_*"] }]
[roles.acme-only]
allow = [{ tools = ["github_*"], repos = ["acme/**"] }]
[groups.admins]
allow = [{ tools = ["github_*"] }]
[groups.triage]
allow = [{ tools = ["github_get_issue", "github_list_issues", "github_comment_on_issue"] }]
[groups.widgets]
allow = [{ tools = ["github_*"], repos = ["*/widgets"] }]
[roles.sandbox]
allow = [{ tools = ["github_*"], instance = "ghes-sandbox" }]
"#;

    fn policy() -> TenantPolicy {
        file::parse("t.toml", POLICY).unwrap()
    }

    fn rules(tools: &[&str]) -> RuleSet {
        let tools: Vec<String> = tools.iter().map(|s| (*s).to_owned()).collect();
        RuleSet(vec![
            shared::policy::AllowRule::parse(&tools, None, None).unwrap(),
        ])
    }

    /// Leaks: test names live as long as the test process.
    fn subject(role: &str, groups: &[String]) -> Subject<'static> {
        let groups: Vec<GroupName> = groups
            .iter()
            .map(|g| GroupName::parse(g).unwrap())
            .collect();
        Subject {
            agent: Box::leak(Box::new(AgentName::parse("bot").unwrap())),
            role: Box::leak(Box::new(RoleName::parse(role).unwrap())),
            user: Box::leak(Box::new(UserName::parse("alice").unwrap())),
            groups: Box::leak(groups.into_boxed_slice()),
        }
    }

    fn eng() -> &'static GatewayName {
        Box::leak(Box::new(GatewayName::parse("eng").unwrap()))
    }

    /// Every combination of allow/deny over the four layers: the call is allowed exactly
    /// when all four allow, and otherwise the first refusing layer is named.
    #[test]
    fn every_combination_of_the_four_layers() {
        let p = policy();
        let tool = "github_merge_pull_request";
        let target: Target = "acme/widgets".parse().unwrap();
        for mask in 0u8..16 {
            let (gw_ok, agent_ok, user_ok, conn_ok) =
                (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0, mask & 8 != 0);
            let gateway = rules(if gw_ok { &["github_*"] } else { &["gitlab_*"] });
            let role = if agent_ok { "maintainer" } else { "triage" };
            let groups = vec![if user_ok { "admins" } else { "triage" }.to_owned()];
            let connector = if conn_ok { Scope::Any } else { Scope::None };
            let layers = Layers {
                policy: Some(&p),
                gateway: (eng(), &gateway),
                connector: &connector,
            };
            let d = decide(layers, subject(role, &groups), tool, &at(&target));
            let expected = if !gw_ok {
                Some(Layer::Gateway)
            } else if !agent_ok {
                Some(Layer::Agent)
            } else if !user_ok {
                Some(Layer::User)
            } else if !conn_ok {
                Some(Layer::Connector)
            } else {
                None
            };
            assert_eq!(d.denied_by, expected, "mask {mask:04b}: {}", d.reason);
            let shown = visible(layers, subject(role, &groups), tool, true, &[]);
            assert_eq!(shown, expected.is_none(), "mask {mask:04b} visibility");
        }
    }

    /// The issue's scenario: an upstream administrator through a triage agent cannot merge or
    /// delete a branch; through a maintainer agent they can; a triage user through a
    /// maintainer agent cannot.
    #[test]
    fn admin_user_through_a_triage_agent() {
        let p = policy();
        let gateway = rules(&["*"]);
        let layers = Layers {
            policy: Some(&p),
            gateway: (eng(), &gateway),
            connector: &Scope::Any,
        };
        let repo: Target = "acme/widgets".parse().unwrap();
        let admins = vec!["admins".to_owned()];
        let triage = vec!["triage".to_owned()];
        for tool in ["github_merge_pull_request", "github_delete_branch"] {
            let d = decide(layers, subject("triage", &admins), tool, &at(&repo));
            assert_eq!(d.denied_by, Some(Layer::Agent), "{}", d.reason);
            assert!(d.reason.contains("role triage"), "{}", d.reason);
            let d = decide(layers, subject("maintainer", &admins), tool, &at(&repo));
            assert!(d.allowed(), "{}", d.reason);
            let d = decide(layers, subject("maintainer", &triage), tool, &at(&repo));
            assert_eq!(d.denied_by, Some(Layer::User), "{}", d.reason);
        }
        let d = decide(
            layers,
            subject("triage", &triage),
            "github_comment_on_issue",
            &at(&repo),
        );
        assert!(d.allowed());
    }

    #[test]
    fn a_connector_limited_to_other_repositories_shows_the_tool_but_denies_the_call() {
        let p = policy();
        let gateway = rules(&["*"]);
        let connector = Scope::repos(vec!["globex/*".parse().unwrap()]);
        let layers = Layers {
            policy: Some(&p),
            gateway: (eng(), &gateway),
            connector: &connector,
        };
        let admins = vec!["admins".to_owned()];
        let s = subject("maintainer", &admins);
        let acme: Target = "acme/widgets".parse().unwrap();
        let globex: Target = "globex/widgets".parse().unwrap();
        let d = decide(layers, s, "github_get_issue", &at(&acme));
        assert_eq!(d.denied_by, Some(Layer::Connector), "{}", d.reason);
        assert!(d.reason.contains("only on globex/*"), "{}", d.reason);
        assert!(decide(layers, s, "github_get_issue", &at(&globex)).allowed());
        assert!(visible(layers, s, "github_get_issue", true, &[]));
    }

    #[test]
    fn repository_scopes_intersect() {
        let p = policy();
        let gateway = rules(&["*"]);
        let layers = Layers {
            policy: Some(&p),
            gateway: (eng(), &gateway),
            connector: &Scope::Any,
        };
        let widgets = vec!["widgets".to_owned()];
        let s = subject("acme-only", &widgets);
        let ok: Target = "acme/widgets".parse().unwrap();
        let other: Target = "acme/infra".parse().unwrap();
        let foreign: Target = "globex/widgets".parse().unwrap();
        assert!(decide(layers, s, "github_get_issue", &at(&ok)).allowed());
        assert_eq!(
            decide(layers, s, "github_get_issue", &at(&other)).denied_by,
            Some(Layer::User)
        );
        assert_eq!(
            decide(layers, s, "github_get_issue", &at(&foreign)).denied_by,
            Some(Layer::Agent)
        );
        // Repository-limited grants never allow a tool that names no repository.
        assert_eq!(
            decide(layers, s, "github_whoami", &Site::default()).denied_by,
            Some(Layer::Agent)
        );
        assert!(visible(layers, s, "github_get_issue", true, &[]));
        assert!(!visible(layers, s, "github_whoami", false, &[]));
    }

    #[test]
    fn no_policy_or_unknown_role_denies() {
        let gateway = rules(&["*"]);
        let groups = vec!["admins".to_owned()];
        let layers = Layers {
            policy: None,
            gateway: (eng(), &gateway),
            connector: &Scope::Any,
        };
        let d = decide(
            layers,
            subject("maintainer", &groups),
            "diag.ping",
            &Site::default(),
        );
        assert_eq!(d.denied_by, Some(Layer::Agent));
        assert!(d.reason.contains("no policy"), "{}", d.reason);
        let p = policy();
        let layers = Layers {
            policy: Some(&p),
            ..layers
        };
        let d = decide(
            layers,
            subject("ghost", &groups),
            "github_x",
            &Site::default(),
        );
        assert!(d.reason.contains("not defined"), "{}", d.reason);
    }

    /// A role limited to one upstream instance allows the call there, denies the same
    /// repository on the other instance (naming it), and shows the tool only where it can
    /// reach that instance.
    #[test]
    fn an_instance_scoped_role_denies_the_same_repo_on_another_instance() {
        let p = policy();
        let gateway = rules(&["*"]);
        let layers = Layers {
            policy: Some(&p),
            gateway: (eng(), &gateway),
            connector: &Scope::Any,
        };
        let admins = vec!["admins".to_owned()];
        let s = subject("sandbox", &admins);
        let on = |instance: &str| Site {
            instance: Some(instance.parse().unwrap()),
            repo: Some("acme/widgets".parse().unwrap()),
        };
        assert!(decide(layers, s, "github_get_issue", &on("ghes-sandbox")).allowed());
        let d = decide(layers, s, "github_get_issue", &on("ghes-prod"));
        assert_eq!(d.denied_by, Some(Layer::Agent), "{}", d.reason);
        assert!(
            d.reason.contains("on ghes-prod:acme/widgets")
                && d.reason.contains("any repository on ghes-sandbox"),
            "{}",
            d.reason
        );
        let repo: Target = "acme/widgets".parse().unwrap();
        assert_eq!(
            decide(layers, s, "github_get_issue", &at(&repo)).denied_by,
            Some(Layer::Agent)
        );
        let names =
            |v: &[&str]| -> Vec<Instance> { v.iter().map(|i| i.parse().unwrap()).collect() };
        assert!(visible(
            layers,
            s,
            "github_get_issue",
            true,
            &names(&["ghes-prod", "ghes-sandbox"])
        ));
        assert!(!visible(
            layers,
            s,
            "github_get_issue",
            true,
            &names(&["ghes-prod"])
        ));
    }
}
