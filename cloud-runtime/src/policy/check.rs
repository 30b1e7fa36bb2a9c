//! `cloud-runtime policy check`: the decision a call would get, from the store alone (no
//! running runtime needed), with the layer that decides it.
//!
//! The connector layer uses the local policies connectors reported at their last hello; a
//! tenant none of whose connectors has reported one is denied there, as a live call would
//! be.

use serde::Serialize;
use shared::policy::{AllowRule, Instance, RuleSet, Site, Target};
use shared::wire;

use super::decide::{Decision, Layer, Layers, Subject, decide};
use super::file;
use crate::identity::{AgentName, GatewayName, GroupName, NameError, RoleName, UserName};
use crate::store::{Store, StoreError};

/// Why a check could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A name the check needs does not exist.
    #[error("{0}")]
    Unknown(String),
    /// The repository is not a repository path.
    #[error("--repo {0}")]
    BadRepo(String),
    /// The instance is not an instance name.
    #[error("--instance {0}")]
    BadInstance(String),
    /// A stored name no longer follows its rule.
    #[error("stored {0}")]
    Name(#[from] NameError),
}

/// The decision on one gateway.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayDecision {
    /// The gateway.
    pub gateway: String,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The deciding layer (`all` when allowed).
    pub layer: String,
    /// Why.
    pub reason: String,
}

/// What to check.
#[derive(Debug, Clone)]
pub struct Question<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Agent name.
    pub agent: &'a str,
    /// User name.
    pub user: &'a str,
    /// Tool.
    pub tool: &'a str,
    /// Repository or project, if the call names one.
    pub repo: Option<&'a str>,
    /// The upstream instance (the connector's `[[provider]]` name), if the call names one.
    pub instance: Option<&'a str>,
    /// One gateway, or every gateway of the tenant.
    pub gateway: Option<&'a str>,
}

fn connector_rules(reported: &[(String, Option<String>)]) -> RuleSet {
    let mut rules = Vec::new();
    for (_, json) in reported {
        let Some(list) = json
            .as_deref()
            .and_then(|j| serde_json::from_str::<Vec<serde_json::Value>>(j).ok())
        else {
            continue;
        };
        for r in list {
            let strings = |k: &str| -> Vec<String> {
                r.get(k)
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let rule = wire::PolicyRule {
                tools: strings("tools"),
                repos: strings("repos"),
                instance: r
                    .get("instance")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned(),
            };
            if let Ok(rule) = AllowRule::from_wire(&rule) {
                rules.push(rule);
            }
        }
    }
    RuleSet(rules)
}

/// Answers `q` from the store.
pub async fn check(store: &Store, q: &Question<'_>) -> Result<Vec<GatewayDecision>, CheckError> {
    let agent = store.agent(q.tenant, q.agent).await?.ok_or_else(|| {
        CheckError::Unknown(format!("tenant {} has no agent {}", q.tenant, q.agent))
    })?;
    let groups = store.user_named(q.tenant, q.user).await?.map(|u| u.groups).ok_or_else(|| {
        CheckError::Unknown(format!(
            "tenant {} has no user {} (identity-provider users appear after their first sign-in)",
            q.tenant, q.user
        ))
    })?;
    let target: Option<Target> = q
        .repo
        .map(str::parse)
        .transpose()
        .map_err(|e| CheckError::BadRepo(format!("{e}")))?;
    let instance: Option<Instance> = q
        .instance
        .map(str::parse)
        .transpose()
        .map_err(|e| CheckError::BadInstance(format!("{e}")))?;
    let site = Site {
        instance,
        repo: target,
    };
    let policy = match store.policy(q.tenant).await? {
        // Stored revisions were validated when applied.
        Some(row) => file::parse(&row.file_name, &row.source).ok(),
        None => None,
    };
    let gateways = match q.gateway {
        Some(name) => vec![store.gateway(q.tenant, name).await?.ok_or_else(|| {
            CheckError::Unknown(format!("tenant {} has no gateway {name}", q.tenant))
        })?],
        None => store.gateways(Some(q.tenant)).await?,
    };
    if gateways.is_empty() {
        return Err(CheckError::Unknown(format!(
            "tenant {} has no gateway",
            q.tenant
        )));
    }
    let connector = connector_rules(&store.local_policies(q.tenant).await?).scope(q.tool);
    // The names come from the store, which checked them when they were made.
    let (agent, role) = (
        AgentName::parse(&agent.name)?,
        RoleName::parse(&agent.role)?,
    );
    let user = UserName::parse(q.user)?;
    let groups: Vec<GroupName> = groups
        .iter()
        .map(|g| GroupName::parse(g))
        .collect::<Result<_, _>>()?;
    let subject = Subject {
        agent: &agent,
        role: &role,
        user: &user,
        groups: &groups,
    };
    gateways
        .iter()
        .map(|gw| {
            let name = GatewayName::parse(&gw.name)?;
            let rules = RuleSet(
                gw.tools
                    .iter()
                    .filter_map(|t| AllowRule::parse(std::slice::from_ref(t), None, None).ok())
                    .collect(),
            );
            let layers = Layers {
                policy: policy.as_ref(),
                gateway: (&name, &rules),
                connector: &connector,
            };
            let Decision { denied_by, reason } = decide(layers, subject, q.tool, &site);
            Ok(GatewayDecision {
                gateway: gw.name.clone(),
                decision: if denied_by.is_some() { "deny" } else { "allow" },
                layer: denied_by.map_or("all".to_owned(), |l: Layer| l.as_str().to_owned()),
                reason,
            })
        })
        .collect()
}
