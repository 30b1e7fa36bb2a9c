//! Sessions waiting to hear that a user finished connecting an upstream account (MCP
//! 2025-11-25 URL elicitation): the session that asked is told with
//! `notifications/elicitation/complete` when the user is back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::RoleServer;
use rmcp::model::{CustomNotification, ServerNotification};
use rmcp::service::Peer;

/// How long a session waits for its completion notice.
const NOTICE_TTL: Duration = Duration::from_secs(600);

/// Sessions waiting to hear that a user finished connecting (per elicitation id).
#[derive(Debug, Default)]
pub struct Elicitations {
    peers: Mutex<HashMap<String, (Instant, Peer<RoleServer>)>>,
}

impl Elicitations {
    /// Remembers that the session of `peer` waits for elicitation `id`, forgetting sessions
    /// that waited too long or are gone.
    pub fn remember(&self, id: &str, peer: Peer<RoleServer>) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.retain(|_, (at, p)| at.elapsed() < NOTICE_TTL && !p.is_transport_closed());
        peers.insert(id.to_owned(), (Instant::now(), peer));
    }

    /// Tells the session that asked (if it is still here) that elicitation `id` is done.
    pub async fn complete(&self, id: &str) {
        let peer = self
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .map(|(_, p)| p);
        if let Some(peer) = peer {
            let notice = CustomNotification::new(
                "notifications/elicitation/complete",
                Some(serde_json::json!({ "elicitationId": id })),
            );
            let _ = peer
                .send_notification(ServerNotification::CustomNotification(notice))
                .await;
        }
    }
}
