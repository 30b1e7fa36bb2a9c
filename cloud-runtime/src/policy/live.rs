//! The policies in force, in memory: loaded at start, and reloaded within a second of
//! `cloud-runtime policy apply` (which only writes the store), so a change needs no restart
//! and reaches every replica that reads the same store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::file::{self, TenantPolicy};
use super::hooks::Hooks;
use crate::store::{Store, StoreError};
use crate::tools_changed::ToolsChanged;

/// How often the store is asked for new revisions.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// One tenant's policy in force.
#[derive(Debug)]
pub struct Applied {
    /// Its revision number.
    pub revision: i64,
    /// The rules.
    pub policy: TenantPolicy,
    /// The hooks its settings turn on.
    pub hooks: Hooks,
}

/// The policies of all tenants.
#[derive(Debug, Default)]
pub struct Policies {
    tenants: RwLock<HashMap<String, Arc<Applied>>>,
}

impl Policies {
    /// The policy in force for `tenant`, if one was applied.
    pub fn get(&self, tenant: &str) -> Option<Arc<Applied>> {
        self.tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
    }

    /// Loads every revision newer than the one in memory; returns the tenants that changed.
    pub async fn refresh(&self, store: &Store) -> Result<Vec<String>, StoreError> {
        let heads = store.policy_heads().await?;
        let mut changed = Vec::new();
        for (tenant, revision) in heads {
            if self.get(&tenant).is_some_and(|a| a.revision >= revision) {
                continue;
            }
            let Some(row) = store.policy_revision(&tenant, revision).await? else {
                continue;
            };
            match file::parse(&row.file_name, &row.source) {
                Ok(policy) => {
                    let hooks = Hooks::builtin(policy.hooks);
                    self.tenants
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(
                            tenant.clone(),
                            Arc::new(Applied {
                                revision,
                                policy,
                                hooks,
                            }),
                        );
                    info!(%tenant, revision, "policy in force");
                    changed.push(tenant);
                }
                // `policy apply` validates before storing, so this is a hand-edited store or
                // a newer runtime's format: keep the previous revision in force.
                Err(e) => {
                    warn!(%tenant, revision, error = %e, "stored policy does not parse; keeping the previous one")
                }
            }
        }
        Ok(changed)
    }

    /// Polls the store until `shutdown`, announcing every tenant whose policy changed.
    pub async fn watch(
        self: Arc<Self>,
        store: Store,
        changes: ToolsChanged,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            match self.refresh(&store).await {
                Ok(changed) => {
                    for t in changed {
                        if let Ok(t) = t.parse() {
                            changes.notify(&t);
                        }
                    }
                }
                Err(e) => warn!(error = %e, "reading policy revisions failed"),
            }
        }
    }
}
