//! Which replica holds which tunnel.
//!
//! Each replica publishes every change to its own tunnels on one subject, numbered by a
//! generation, and a heartbeat carrying the generation every [`BEAT`]. The others keep a
//! copy: a change applies when it is the next generation; a gap (a message lost while NATS
//! reconnected, or a replica just started) makes the receiver ask the holder for a
//! [`Snapshot`] instead. A replica silent for [`EXPIRY`] (crashed, cut off) is forgotten
//! with its tunnels, so nothing waits on it; its connectors reconnect elsewhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prost::Message as _;
use shared::identity::{ConnectorId, TenantId};
use shared::policy::{AllowRule, RuleSet, Site};
use shared::wire;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::messages::{DirectoryMessage, Origin, Snapshot, Tunnel, directory_message::Kind};
use crate::tools_changed::ToolsChanged;
use crate::tunnel::registry::ConnectorHandle;

/// How often a replica says it is alive.
pub const BEAT: Duration = Duration::from_secs(1);

/// How long a silent replica's tunnels are still believed.
pub const EXPIRY: Duration = Duration::from_secs(3);

/// A tunnel another replica holds.
#[derive(Debug)]
pub struct RemoteTunnel {
    /// The holder's instance.
    pub instance: u64,
    /// Tenant.
    pub tenant: TenantId,
    /// Connector.
    pub connector: ConnectorId,
    /// Its tools by name.
    pub tools: Vec<Arc<wire::ToolSpec>>,
    /// Its local policy.
    pub rules: RuleSet,
}

impl RemoteTunnel {
    fn from_wire(instance: u64, t: Tunnel) -> Option<(String, Self)> {
        let tenant = t.tenant.parse().ok()?;
        let connector = t.connector.parse().ok()?;
        // A rule this build cannot read allows nothing rather than everything.
        let rules = t
            .local_policy
            .iter()
            .filter_map(|r| AllowRule::from_wire(r).ok())
            .collect();
        Some((
            t.session_id,
            Self {
                instance,
                tenant,
                connector,
                tools: t.tools.into_iter().map(Arc::new).collect(),
                rules: RuleSet(rules),
            },
        ))
    }

    /// Whether it offers `tool` and its local policy allows it at `site`.
    pub fn serves(&self, tool: &str, site: &Site) -> bool {
        self.tools.iter().any(|t| t.name == tool) && self.rules.allows(tool, site)
    }
}

/// Another replica, as this one knows it.
#[derive(Debug)]
struct Peer {
    replica: String,
    generation: u64,
    /// The copy missed a change; a snapshot is due.
    stale: bool,
    fetching: bool,
    heard: Instant,
    tunnels: HashMap<String, RemoteTunnel>,
}

/// This replica's tunnels, as it announces them.
#[derive(Debug, Default)]
struct Own {
    generation: u64,
    tunnels: HashMap<String, Tunnel>,
}

/// Both halves: what this replica announces, and its copy of the others'.
#[derive(Debug)]
pub struct Directory {
    replica: String,
    instance: u64,
    own: Mutex<Own>,
    peers: RwLock<HashMap<u64, Peer>>,
    changes: ToolsChanged,
}

/// What a received directory message asks of the receiver.
#[derive(Debug, PartialEq, Eq)]
pub enum Followup {
    /// Nothing.
    None,
    /// Fetch a snapshot from this instance.
    Snapshot(u64),
}

impl Directory {
    /// The directory of the replica `replica`, process `instance`.
    pub fn new(replica: String, instance: u64, changes: ToolsChanged) -> Self {
        Self {
            replica,
            instance,
            own: Mutex::default(),
            peers: RwLock::default(),
            changes,
        }
    }

    /// This process's instance.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    fn origin(&self, generation: u64) -> Origin {
        Origin {
            replica: self.replica.clone(),
            instance: self.instance,
            generation,
        }
    }

    /// Records a tunnel of this replica; returns the message announcing it.
    pub fn up(&self, handle: &ConnectorHandle) -> Vec<u8> {
        let tunnel = Tunnel {
            tenant: handle.identity.tenant.to_string(),
            connector: handle.identity.connector.to_string(),
            session_id: handle.session_id.clone(),
            tools: handle.tools.values().map(|t| (**t).clone()).collect(),
            local_policy: handle.local_policy.0.iter().map(|r| r.to_wire()).collect(),
        };
        let mut own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        own.generation += 1;
        own.tunnels
            .insert(handle.session_id.clone(), tunnel.clone());
        DirectoryMessage {
            origin: Some(self.origin(own.generation)),
            kind: Some(Kind::Up(tunnel)),
        }
        .encode_to_vec()
    }

    /// Forgets a tunnel of this replica; returns the message announcing it, if it was
    /// announced.
    pub fn down(&self, session_id: &str) -> Option<Vec<u8>> {
        let mut own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        own.tunnels.remove(session_id)?;
        own.generation += 1;
        Some(
            DirectoryMessage {
                origin: Some(self.origin(own.generation)),
                kind: Some(Kind::Down(session_id.to_owned())),
            }
            .encode_to_vec(),
        )
    }

    /// The heartbeat message.
    pub fn beat(&self) -> Vec<u8> {
        let own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        DirectoryMessage {
            origin: Some(self.origin(own.generation)),
            kind: Some(Kind::Beat(true)),
        }
        .encode_to_vec()
    }

    /// This replica's tunnels, as a snapshot message.
    pub fn snapshot(&self) -> Vec<u8> {
        let own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        Snapshot {
            origin: Some(self.origin(own.generation)),
            tunnels: own.tunnels.values().cloned().collect(),
        }
        .encode_to_vec()
    }

    /// Applies a message from the directory subject.
    pub fn receive(&self, payload: &[u8]) -> Followup {
        let msg = match DirectoryMessage::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "malformed directory message dropped");
                return Followup::None;
            }
        };
        let Some(origin) = msg.origin else {
            return Followup::None;
        };
        if origin.instance == self.instance {
            return Followup::None;
        }
        let mut changed = Vec::new();
        let followup = {
            let mut peers = self.peers.write().unwrap_or_else(|p| p.into_inner());
            let peer = peers.entry(origin.instance).or_insert_with(|| {
                info!(replica = %origin.replica, instance = format_args!("{:016x}", origin.instance), "replica seen");
                Peer {
                    replica: origin.replica.clone(),
                    generation: 0,
                    stale: true,
                    fetching: false,
                    heard: Instant::now(),
                    tunnels: HashMap::new(),
                }
            });
            peer.heard = Instant::now();
            match msg.kind {
                Some(Kind::Beat(_)) | None => {
                    if origin.generation != peer.generation {
                        peer.stale = true;
                    }
                }
                Some(change) if !peer.stale && origin.generation == peer.generation + 1 => {
                    peer.generation = origin.generation;
                    match change {
                        Kind::Up(t) => {
                            if let Some((session, tunnel)) =
                                RemoteTunnel::from_wire(origin.instance, t)
                            {
                                changed.push(tunnel.tenant.clone());
                                peer.tunnels.insert(session, tunnel);
                            }
                        }
                        Kind::Down(session) => {
                            if let Some(t) = peer.tunnels.remove(&session) {
                                changed.push(t.tenant);
                            }
                        }
                        Kind::Beat(_) => {}
                    }
                }
                Some(_) => peer.stale = true,
            }
            if peer.stale && !peer.fetching {
                peer.fetching = true;
                Followup::Snapshot(origin.instance)
            } else {
                Followup::None
            }
        };
        for tenant in changed {
            self.changes.notify(&tenant);
        }
        followup
    }

    /// Replaces the copy of `instance`'s tunnels with a snapshot it sent (`None`: the
    /// request failed; the next heartbeat asks again).
    pub fn apply_snapshot(&self, instance: u64, payload: Option<&[u8]>) {
        let snapshot = payload.and_then(|p| match Snapshot::decode(p) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "malformed directory snapshot dropped");
                None
            }
        });
        let mut changed = Vec::new();
        {
            let mut peers = self.peers.write().unwrap_or_else(|p| p.into_inner());
            let Some(peer) = peers.get_mut(&instance) else {
                return;
            };
            peer.fetching = false;
            let Some(snapshot) = snapshot else {
                return;
            };
            let Some(origin) = snapshot.origin.filter(|o| o.instance == instance) else {
                return;
            };
            changed.extend(peer.tunnels.drain().map(|(_, t)| t.tenant));
            peer.tunnels = snapshot
                .tunnels
                .into_iter()
                .filter_map(|t| RemoteTunnel::from_wire(instance, t))
                .collect();
            changed.extend(peer.tunnels.values().map(|t| t.tenant.clone()));
            peer.generation = origin.generation;
            peer.stale = false;
            debug!(replica = %peer.replica, tunnels = peer.tunnels.len(), generation = origin.generation, "directory snapshot applied");
        }
        changed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        changed.dedup();
        for tenant in changed {
            self.changes.notify(&tenant);
        }
    }

    /// Forgets replicas not heard from for [`EXPIRY`].
    pub fn expire(&self) {
        let mut changed = Vec::new();
        {
            let mut peers = self.peers.write().unwrap_or_else(|p| p.into_inner());
            peers.retain(|_, peer| {
                let alive = peer.heard.elapsed() < EXPIRY;
                if !alive {
                    warn!(replica = %peer.replica, tunnels = peer.tunnels.len(), "replica silent; forgetting its tunnels");
                    changed.extend(peer.tunnels.values().map(|t| t.tenant.clone()));
                }
                alive
            });
        }
        for tenant in changed {
            self.changes.notify(&tenant);
        }
    }

    /// Forgets `instance` at once (it answered that it has no relay), until it is heard
    /// from again.
    pub fn forget(&self, instance: u64) {
        let removed = self
            .peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&instance);
        if let Some(peer) = removed {
            for t in peer.tunnels.values() {
                self.changes.notify(&t.tenant);
            }
        }
    }

    /// Runs `f` on every remote tunnel of `tenant`.
    pub fn each<F: FnMut(&RemoteTunnel)>(&self, tenant: &TenantId, mut f: F) {
        let peers = self.peers.read().unwrap_or_else(|p| p.into_inner());
        for t in peers.values().flat_map(|p| p.tunnels.values()) {
            if &t.tenant == tenant {
                f(t);
            }
        }
    }

    /// The tenant of a connector online at another replica.
    pub fn tenant_of(&self, connector: &ConnectorId) -> Option<TenantId> {
        let peers = self.peers.read().unwrap_or_else(|p| p.into_inner());
        peers
            .values()
            .flat_map(|p| p.tunnels.values())
            .find(|t| &t.connector == connector)
            .map(|t| t.tenant.clone())
    }

    /// The (instance, connector) pairs elsewhere that serve `tool` at `site` for `tenant`
    /// (or only `connector`'s), starting at a different one each time.
    pub fn candidates(
        &self,
        tenant: &TenantId,
        connector: Option<&ConnectorId>,
        tool: &str,
        site: &Site,
        rotation: usize,
    ) -> Vec<(u64, ConnectorId)> {
        let mut found = Vec::new();
        self.each(tenant, |t| {
            if connector.is_none_or(|c| c == &t.connector)
                && (tool.is_empty() || t.serves(tool, site))
            {
                found.push((t.instance, t.connector.clone()));
            }
        });
        found.sort_by(|a, b| (a.0, a.1.as_str()).cmp(&(b.0, b.1.as_str())));
        found.dedup();
        if !found.is_empty() {
            let n = rotation % found.len();
            found.rotate_left(n);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(session: &str) -> Tunnel {
        Tunnel {
            tenant: "acme".into(),
            connector: "c-1".into(),
            session_id: session.into(),
            tools: vec![wire::ToolSpec {
                name: "list_repos".into(),
                ..Default::default()
            }],
            local_policy: vec![wire::PolicyRule {
                tools: vec!["*".into()],
                ..Default::default()
            }],
        }
    }

    fn message(instance: u64, generation: u64, kind: Kind) -> Vec<u8> {
        DirectoryMessage {
            origin: Some(Origin {
                replica: "rt-b".into(),
                instance,
                generation,
            }),
            kind: Some(kind),
        }
        .encode_to_vec()
    }

    fn count(d: &Directory) -> usize {
        let mut n = 0;
        d.each(&"acme".parse().unwrap(), |_| n += 1);
        n
    }

    #[test]
    fn a_new_replica_is_fetched_whole_then_followed_change_by_change() {
        let d = Directory::new("rt-a".into(), 1, ToolsChanged::default());
        // The first word from an unknown replica asks for its snapshot.
        assert_eq!(
            d.receive(&message(2, 5, Kind::Beat(true))),
            Followup::Snapshot(2)
        );
        // While the snapshot is on its way, changes are not applied and not asked again.
        assert_eq!(
            d.receive(&message(2, 6, Kind::Up(tunnel("s-2")))),
            Followup::None
        );
        let snapshot = Snapshot {
            origin: Some(Origin {
                replica: "rt-b".into(),
                instance: 2,
                generation: 6,
            }),
            tunnels: vec![tunnel("s-1"), tunnel("s-2")],
        };
        d.apply_snapshot(2, Some(&snapshot.encode_to_vec()));
        assert_eq!(count(&d), 2);
        assert_eq!(
            d.receive(&message(2, 7, Kind::Down("s-1".into()))),
            Followup::None
        );
        assert_eq!(count(&d), 1);
        let tenant = "acme".parse().unwrap();
        let site = Site::default();
        assert_eq!(d.candidates(&tenant, None, "list_repos", &site, 0).len(), 1);
        assert!(d.candidates(&tenant, None, "merge", &site, 0).is_empty());
    }

    #[test]
    fn a_gap_or_a_restart_asks_for_a_snapshot() {
        let d = Directory::new("rt-a".into(), 1, ToolsChanged::default());
        d.receive(&message(2, 1, Kind::Beat(true)));
        d.apply_snapshot(
            2,
            Some(
                &Snapshot {
                    origin: Some(Origin {
                        replica: "rt-b".into(),
                        instance: 2,
                        generation: 1,
                    }),
                    tunnels: vec![],
                }
                .encode_to_vec(),
            ),
        );
        // Generation 2 was lost: 3 is not applied, a snapshot is asked for.
        assert_eq!(
            d.receive(&message(2, 3, Kind::Up(tunnel("s-1")))),
            Followup::Snapshot(2)
        );
        assert_eq!(count(&d), 0);
        // A heartbeat at another generation than the copy's does too.
        d.apply_snapshot(2, None);
        assert_eq!(
            d.receive(&message(2, 9, Kind::Beat(true))),
            Followup::Snapshot(2)
        );
    }

    #[test]
    fn own_messages_and_garbage_change_nothing() {
        let d = Directory::new("rt-a".into(), 1, ToolsChanged::default());
        assert_eq!(
            d.receive(&message(1, 1, Kind::Up(tunnel("s-1")))),
            Followup::None
        );
        assert_eq!(d.receive(b"\xff\xff\xff"), Followup::None);
        assert_eq!(count(&d), 0);
    }

    #[test]
    fn a_silent_replica_is_forgotten() {
        let d = Directory::new("rt-a".into(), 1, ToolsChanged::default());
        d.receive(&message(2, 0, Kind::Beat(true)));
        d.apply_snapshot(
            2,
            Some(
                &Snapshot {
                    origin: Some(Origin {
                        replica: "rt-b".into(),
                        instance: 2,
                        generation: 1,
                    }),
                    tunnels: vec![tunnel("s-1")],
                }
                .encode_to_vec(),
            ),
        );
        assert_eq!(count(&d), 1);
        d.forget(2);
        assert_eq!(count(&d), 0);
    }
}
