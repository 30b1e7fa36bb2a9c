//! The connector's concurrent tunnels, one per runtime replica it is configured with
//! (`[[tunnel.replica]]`), or a single one to the address learned at enrollment.
//!
//! Each [`Slot`] is kept up by its own supervisor loop and numbered in its hello, so the
//! runtime replaces a slot's old tunnel with its new one (a renewal, a move back to QUIC)
//! and never another slot's. The slots share what must happen once per connector: one
//! certificate renewal at a time, after which every slot dials again with the new
//! certificate.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedMutexGuard, watch};
use tracing::warn;

use crate::config::{ReplicaAddress, TunnelConfig};
use crate::state::ConnectorConfig;

/// One of the connector's tunnels: its number, where it dials, and what all slots share.
#[derive(Debug)]
pub struct Slot {
    /// Sent in the hello; below [`shared::control::MAX_TUNNEL_SLOTS`].
    pub index: u32,
    /// Where it dials: a `[[tunnel.replica]]`, or `None` for the endpoints in the
    /// enrollment (read at each attempt, as they may change on disk).
    configured: Option<ReplicaAddress>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    renewal: Arc<tokio::sync::Mutex<()>>,
    renewed: watch::Sender<u64>,
    /// The replica each slot's current tunnel reached, by index.
    reached: Mutex<Vec<Option<String>>>,
}

impl Slot {
    /// The slots `config` asks for: one per `[[tunnel.replica]]`, or one to the enrolled
    /// endpoints when it lists none.
    pub fn all(config: &TunnelConfig) -> Vec<Arc<Slot>> {
        let configured: Vec<Option<ReplicaAddress>> = if config.replicas.is_empty() {
            vec![None]
        } else {
            config.replicas.iter().cloned().map(Some).collect()
        };
        let shared = Arc::new(Shared {
            renewal: Arc::new(tokio::sync::Mutex::new(())),
            renewed: watch::Sender::new(0),
            reached: Mutex::new(vec![None; configured.len()]),
        });
        (0u32..)
            .zip(configured)
            .map(|(index, configured)| {
                Arc::new(Slot {
                    index,
                    configured,
                    shared: shared.clone(),
                })
            })
            .collect()
    }

    /// Where this slot dials, given the enrollment as it is on disk now.
    pub fn target(&self, enrolled: &ConnectorConfig) -> ReplicaAddress {
        self.configured.clone().unwrap_or_else(|| ReplicaAddress {
            quic: enrolled.quic_endpoint.clone(),
            tcp: enrolled.tcp_endpoint.clone(),
        })
    }

    /// The right to renew the certificate, unless another slot is renewing it now. Held
    /// until the renewal is answered.
    pub fn try_renew(&self) -> Option<OwnedMutexGuard<()>> {
        self.shared.renewal.clone().try_lock_owned().ok()
    }

    /// A renewed certificate is on disk: every slot dials again with it.
    pub fn renewed(&self) {
        self.shared.renewed.send_modify(|n| *n += 1);
    }

    /// Wakes when any slot has renewed the certificate.
    pub fn renewals(&self) -> watch::Receiver<u64> {
        self.shared.renewed.subscribe()
    }

    /// This slot's tunnel reached `replica` (empty: the runtime did not say). Two slots on
    /// one replica still work, but a replica stopping takes both, so the operator is told.
    pub fn reached(&self, replica: &str) {
        let mut reached = self
            .shared
            .reached
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let index = self.index as usize;
        if !replica.is_empty() {
            for (other, name) in reached.iter().enumerate() {
                if other != index && name.as_deref() == Some(replica) {
                    warn!(
                        replica,
                        "tunnels {other} and {index} both reached replica {replica}: each \
                         [[tunnel.replica]] address must reach one replica (not a load balancer), \
                         or a replica stopping takes both tunnels"
                    );
                }
            }
        }
        if let Some(mine) = reached.get_mut(index) {
            *mine = Some(replica.to_owned()).filter(|r| !r.is_empty());
        }
    }
}
