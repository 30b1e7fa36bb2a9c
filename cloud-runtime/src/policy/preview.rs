//! What a proposed policy would change before it is applied: its text's diff against the
//! revision in force, and the (agent, user, tool) decisions that would turn, for every
//! agent and user of the tenant and every tool its connectors offer. The console and the
//! admin API show both; nothing is stored.

use serde::Serialize;
use similar::TextDiff;

use super::decide::policy_refusal;
use super::file::TenantPolicy;
use crate::identity::{GroupName, RoleName};
use crate::store::{Store, StoreError};

/// The most (agent, user, tool) triples one dry run decides: past it, the answer says it
/// stopped, rather than holding the request for minutes.
pub const MAX_CHECKS: usize = 200_000;

/// One decision the proposed policy turns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The agent.
    pub agent: String,
    /// The user.
    pub user: String,
    /// The tool.
    pub tool: String,
    /// Under the policy in force: `allow`, or `deny (layer)`.
    pub before: String,
    /// Under the proposed one.
    pub after: String,
}

/// A dry run's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DryRun {
    /// The decisions that turn, by agent, user and tool.
    pub changes: Vec<Change>,
    /// How many triples were decided.
    pub checked: usize,
    /// Whether it stopped at [`MAX_CHECKS`].
    pub truncated: bool,
}

/// The unified diff from `current` (the revision in force, `None` if there is none) to
/// `proposed`, with three lines of context.
pub fn diff(current: Option<(i64, &str)>, proposed: &str) -> String {
    let (old, label) = match current {
        Some((revision, text)) => (text, format!("revision {revision}")),
        None => ("", "no policy".to_owned()),
    };
    TextDiff::from_lines(old, proposed)
        .unified_diff()
        .context_radius(3)
        .header(&label, "proposed")
        .to_string()
}

fn verdict(
    policy: Option<&TenantPolicy>,
    role: &RoleName,
    groups: &[GroupName],
    tool: &str,
) -> String {
    match policy_refusal(policy, role, groups, tool) {
        None => "allow".to_owned(),
        Some(layer) => format!("deny ({layer})"),
    }
}

/// Decides every (agent, user, tool) of `tenant` under `current` and `proposed`, for the
/// `tools` its connectors offer; returns those that turn from allowed to denied or back.
pub async fn dry_run(
    store: &Store,
    tenant: &str,
    current: Option<&TenantPolicy>,
    proposed: &TenantPolicy,
    tools: &[String],
) -> Result<DryRun, StoreError> {
    let agents: Vec<(String, RoleName)> = store
        .agents(tenant)
        .await?
        .into_iter()
        // Stored names were checked when made; one that no longer parses is skipped.
        .filter_map(|a| RoleName::parse(&a.role).ok().map(|r| (a.name, r)))
        .collect();
    let users: Vec<(String, Vec<GroupName>)> = store
        .users(tenant)
        .await?
        .into_iter()
        .map(|u| {
            let groups = u
                .groups
                .iter()
                .filter_map(|g| GroupName::parse(g).ok())
                .collect();
            (u.name, groups)
        })
        .collect();
    let mut run = DryRun {
        changes: Vec::new(),
        checked: 0,
        truncated: false,
    };
    'all: for (agent, role) in &agents {
        for (user, groups) in &users {
            for tool in tools {
                if run.checked == MAX_CHECKS {
                    run.truncated = true;
                    break 'all;
                }
                run.checked += 1;
                let before = verdict(current, role, groups, tool);
                let after = verdict(Some(proposed), role, groups, tool);
                // A denial by another layer is still a denial: only allow/deny turns count.
                if (before == "allow") != (after == "allow") {
                    run.changes.push(Change {
                        agent: agent.clone(),
                        user: user.clone(),
                        tool: tool.clone(),
                        before,
                        after,
                    });
                }
            }
        }
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::file;

    #[test]
    fn the_diff_shows_removed_and_added_lines() {
        let d = diff(Some((3, "version = 1\na\nb\n")), "version = 1\na\nc\n");
        assert!(d.starts_with("--- revision 3\n+++ proposed\n"), "{d}");
        assert!(d.contains("\n-b\n") && d.contains("\n+c\n"), "{d}");
        assert!(diff(None, "version = 1\n").contains("+version = 1"));
    }

    #[tokio::test]
    async fn a_dry_run_lists_the_decisions_that_turn_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::test_store(dir.path()).await;
        let tenant: shared::identity::TenantId = "acme".parse().unwrap();
        store.create_tenant(&tenant).await.unwrap();
        crate::tenancy::add_user(&store, &tenant, "alice", &["dev".to_owned()])
            .await
            .unwrap();
        crate::tenancy::add_user(&store, &tenant, "bob", &[])
            .await
            .unwrap();
        crate::tenancy::create_agent(&store, &tenant, "bot", "dev", None)
            .await
            .unwrap();
        let before = file::parse(
            "p",
            "version = 1\n[roles.dev]\nallow = [{ tools = [\"diag.ping\"] }]\n\
             [groups.dev]\nallow = [{ tools = [\"diag.*\"] }]\n",
        )
        .unwrap();
        let after = file::parse(
            "p",
            "version = 1\n[roles.dev]\nallow = [{ tools = [\"diag.*\"] }]\n\
             [groups.dev]\nallow = [{ tools = [\"diag.*\"] }]\n",
        )
        .unwrap();
        let tools = ["diag.ping".to_owned(), "diag.echo".to_owned()];
        let run = dry_run(&store, "acme", Some(&before), &after, &tools)
            .await
            .unwrap();
        assert_eq!(run.checked, 4);
        assert_eq!(
            run.changes,
            [Change {
                agent: "bot".into(),
                user: "alice".into(),
                tool: "diag.echo".into(),
                before: "deny (agent)".into(),
                after: "allow".into(),
            }],
            "bob has no grants: denied by the user layer before and after"
        );
        let none = dry_run(&store, "acme", None, &after, &tools).await.unwrap();
        assert_eq!(none.changes.len(), 2, "{none:?}");
    }
}
