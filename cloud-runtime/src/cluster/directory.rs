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

/// Room kept in each snapshot page for its origin and page count.
const PAGE_OVERHEAD: usize = 1024;

/// Most pages a snapshot may take (a thousand 1 MiB pages; more is a peer's bug).
pub const MAX_PAGES: u32 = 1000;

/// Why a snapshot's pages do not make one snapshot.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PagesError {
    /// A page does not decode.
    #[error("page {0} is malformed")]
    Malformed(u32),
    /// A page is of another replica, another generation, or another page count than the
    /// first (the list changed while it was read: the next heartbeat asks again).
    #[error("page {0} is of another replica, generation or page count than page 0")]
    Inconsistent(u32),
    /// More pages than [`MAX_PAGES`].
    #[error("{0} pages, more than {MAX_PAGES}")]
    TooMany(u32),
}

/// The number of pages page 0 announces (at least one).
pub fn page_count(first: &[u8]) -> Result<u32, PagesError> {
    let pages = Snapshot::decode(first)
        .map_err(|_| PagesError::Malformed(0))?
        .pages
        .max(1);
    if pages > MAX_PAGES {
        return Err(PagesError::TooMany(pages));
    }
    Ok(pages)
}

/// Joins the pages of one snapshot, in order, into one, checking that each is of the same
/// replica, generation and page count as the first.
pub fn join_pages(pages: &[impl AsRef<[u8]>]) -> Result<Snapshot, PagesError> {
    let mut joined: Option<Snapshot> = None;
    for (i, page) in (0u32..).zip(pages) {
        let page = Snapshot::decode(page.as_ref()).map_err(|_| PagesError::Malformed(i))?;
        match &mut joined {
            None => joined = Some(page),
            Some(j) => {
                if page.origin != j.origin || page.pages != j.pages {
                    return Err(PagesError::Inconsistent(i));
                }
                j.tunnels.extend(page.tunnels);
            }
        }
    }
    joined.ok_or(PagesError::Malformed(0))
}

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

    /// Page `page` of this replica's tunnels as a snapshot message no larger than
    /// `max_bytes` (a NATS message's limit): the tunnels in session order, a page ending
    /// where the next tunnel would overflow it. The pages of one generation are the same
    /// whenever asked, so a reader that gets every page at one generation has the whole
    /// list. A page past the end is empty.
    pub fn snapshot_page(&self, page: u32, max_bytes: usize) -> Vec<u8> {
        let own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        let mut sessions: Vec<&String> = own.tunnels.keys().collect();
        sessions.sort();
        let budget = max_bytes.saturating_sub(PAGE_OVERHEAD);
        let mut starts = vec![0];
        let mut used = 0;
        for (i, session) in sessions.iter().enumerate() {
            let len = own.tunnels.get(*session).map_or(0, |t| {
                prost::length_delimiter_len(t.encoded_len()) + 1 + t.encoded_len()
            });
            if used + len > budget && used > 0 {
                starts.push(i);
                used = 0;
            }
            used += len;
        }
        let index = page as usize;
        let range = match (starts.get(index), starts.get(index + 1)) {
            (Some(&from), Some(&to)) => from..to,
            (Some(&from), None) => from..sessions.len(),
            (None, _) => 0..0,
        };
        Snapshot {
            origin: Some(self.origin(own.generation)),
            tunnels: sessions
                .get(range)
                .unwrap_or_default()
                .iter()
                .filter_map(|s| own.tunnels.get(*s).cloned())
                .collect(),
            pages: u32::try_from(starts.len()).unwrap_or(u32::MAX),
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

    /// Replaces the copy of `instance`'s tunnels with a snapshot it sent, every page
    /// joined ([`join_pages`]; `None`: the request failed; the next heartbeat asks again).
    pub fn apply_snapshot(&self, instance: u64, snapshot: Option<Snapshot>) {
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
            pages: 1,
        };
        d.apply_snapshot(2, Some(snapshot));
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
            Some(Snapshot {
                origin: Some(Origin {
                    replica: "rt-b".into(),
                    instance: 2,
                    generation: 1,
                }),
                tunnels: vec![],
                pages: 1,
            }),
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
    fn a_snapshot_larger_than_a_message_goes_in_pages_that_join_whole() {
        let d = Directory::new("rt-a".into(), 1, ToolsChanged::default());
        for i in 0..200 {
            let mut t = tunnel(&format!("s-{i:03}"));
            t.connector = format!("c-{i:012x}");
            d.own
                .lock()
                .unwrap()
                .tunnels
                .insert(t.session_id.clone(), t);
        }
        let whole = d.snapshot_page(0, usize::MAX);
        // Room for about a fifth of the list per page.
        let max = PAGE_OVERHEAD + whole.len() / 5;
        let first = d.snapshot_page(0, max);
        let n = page_count(&first).unwrap();
        let pages: Vec<Vec<u8>> = (0..n).map(|p| d.snapshot_page(p, max)).collect();
        assert!((5..=7).contains(&n), "{n} pages");
        assert!(pages.iter().all(|p| p.len() <= max));
        assert_eq!(pages[0], first, "the same page whenever asked");
        let joined = join_pages(&pages).unwrap();
        let mut sessions: Vec<_> = joined
            .tunnels
            .iter()
            .map(|t| t.session_id.clone())
            .collect();
        sessions.dedup();
        assert_eq!(sessions.len(), 200, "every tunnel once");
        assert!(d.snapshot_page(n, max).len() < 64, "past the end: empty");

        // A page of another generation (the list changed between two reads) spoils it.
        let mut stale = pages.clone();
        d.own.lock().unwrap().generation += 1;
        stale[1] = d.snapshot_page(1, max);
        assert_eq!(join_pages(&stale).unwrap_err(), PagesError::Inconsistent(1));
        let mut garbled = pages;
        garbled[2] = vec![0xff; 3];
        assert_eq!(join_pages(&garbled).unwrap_err(), PagesError::Malformed(2));
        let huge = Snapshot {
            origin: None,
            tunnels: vec![],
            pages: MAX_PAGES + 1,
        };
        assert_eq!(
            page_count(&huge.encode_to_vec()).unwrap_err(),
            PagesError::TooMany(MAX_PAGES + 1)
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
            Some(Snapshot {
                origin: Some(Origin {
                    replica: "rt-b".into(),
                    instance: 2,
                    generation: 1,
                }),
                tunnels: vec![tunnel("s-1")],
                pages: 1,
            }),
        );
        assert_eq!(count(&d), 1);
        d.forget(2);
        assert_eq!(count(&d), 0);
    }
}
