//! Which connections the HTTPS listener serves: a hard limit on open connections, and a
//! fair share per client that shrinks as the listener fills, so a few addresses cannot hold
//! every slot. Past the share a client's new connection is shed (answered 503 with
//! `Retry-After`), and past a small allowance of those it is closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// What the listener does with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Served normally.
    Serve,
    /// Answered 503 with `Retry-After`, then closed.
    Shed,
    /// Closed without a word.
    Refuse,
}

/// How many connections the listener serves, in all and per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once (served and shed); more wait in the accept queue.
    pub max: usize,
    /// The most one client may hold when the listener is empty.
    pub per_client: usize,
}

impl Limits {
    /// Open connections past which every client is held to [`Limits::floor`]: 7/8 of the
    /// hard limit, so the last eighth stays for clients that hold (almost) nothing.
    pub fn shed_at(&self) -> usize {
        self.max - self.max / 8
    }

    /// The share no client is refused below (until the hard limit), and the number of shed
    /// connections a client may have at once.
    pub fn floor(&self) -> usize {
        (self.per_client / 32).max(1)
    }

    /// How many connections one client may hold while `open` are open in all: the full
    /// per-client limit on an empty listener, shrinking in proportion to the room left
    /// before [`Limits::shed_at`], never below [`Limits::floor`].
    pub fn fair_share(&self, open: usize) -> usize {
        let shed_at = self.shed_at();
        let floor = self.floor();
        if open >= shed_at {
            return floor;
        }
        let divisor = (shed_at / self.per_client.max(1)).max(1);
        ((shed_at - open) / divisor).clamp(floor, self.per_client.max(floor))
    }

    /// The decision for a client holding `held` served and `shed` shed connections while
    /// `open` are open in all.
    pub fn admit(&self, open: usize, held: usize, shed: usize) -> Admission {
        if held < self.fair_share(open) {
            Admission::Serve
        } else if shed < self.floor() {
            Admission::Shed
        } else {
            Admission::Refuse
        }
    }
}

/// Connections a client holds.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    served: usize,
    shed: usize,
}

/// Open connections per client, and the admission decisions over them.
#[derive(Debug)]
pub struct Clients {
    limits: Limits,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    by_client: HashMap<IpAddr, Held>,
}

/// One connection counted against its client; uncounted when dropped.
#[derive(Debug)]
pub struct Slot {
    clients: Arc<Clients>,
    key: Option<IpAddr>,
    shed: bool,
}

impl Clients {
    /// Tracks clients under `limits`.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            state: Mutex::new(State::default()),
        })
    }

    /// Decides on a new connection from `client` (already keyed by
    /// [`crate::rate_limit::client_key`]); `None` for a trusted proxy, which is held to the
    /// hard limit only since it speaks for many clients. The slot is `None` when refused.
    pub fn admit(self: &Arc<Self>, client: Option<IpAddr>) -> (Admission, Option<Slot>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let open = state.open;
        let decision = match client {
            None => Admission::Serve,
            Some(key) => {
                let held = state.by_client.get(&key).copied().unwrap_or_default();
                self.limits.admit(open, held.served, held.shed)
            }
        };
        if decision == Admission::Refuse {
            return (decision, None);
        }
        let shed = decision == Admission::Shed;
        state.open += 1;
        if let Some(key) = client {
            let held = state.by_client.entry(key).or_default();
            if shed {
                held.shed += 1;
            } else {
                held.served += 1;
            }
        }
        (
            decision,
            Some(Slot {
                clients: self.clone(),
                key: client,
                shed,
            }),
        )
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.clients.state.lock().unwrap_or_else(|e| e.into_inner());
        state.open = state.open.saturating_sub(1);
        let Some(key) = self.key else { return };
        if let Some(held) = state.by_client.get_mut(&key) {
            if self.shed {
                held.shed = held.shed.saturating_sub(1);
            } else {
                held.served = held.served.saturating_sub(1);
            }
            if held.served == 0 && held.shed == 0 {
                state.by_client.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Limits = Limits {
        max: 4096,
        per_client: 256,
    };

    #[test]
    fn fair_share_shrinks_as_the_listener_fills() {
        let small = Limits {
            max: 64,
            per_client: 16,
        };
        // (limits, open connections, share of one client)
        let table = [
            (DEFAULT, 0, 256),
            (DEFAULT, 512, 219),
            (DEFAULT, 1792, 128),
            (DEFAULT, 3000, 41),
            (DEFAULT, 3500, 8),
            (DEFAULT, 3584, 8),
            (DEFAULT, 4095, 8),
            (small, 0, 16),
            (small, 14, 14),
            (small, 40, 5),
            (small, 55, 1),
            (small, 56, 1),
            (small, 63, 1),
            (
                Limits {
                    max: 1,
                    per_client: 1,
                },
                0,
                1,
            ),
        ];
        for (limits, open, share) in table {
            assert_eq!(
                limits.fair_share(open),
                share,
                "{limits:?} with {open} open"
            );
        }
    }

    #[test]
    fn admission_serves_within_the_share_then_sheds_then_refuses() {
        // (open, held, shed, decision)
        let table = [
            (0, 0, 0, Admission::Serve),
            (0, 255, 0, Admission::Serve),
            (0, 256, 0, Admission::Shed),
            (0, 256, 7, Admission::Shed),
            (0, 256, 8, Admission::Refuse),
            (3584, 7, 0, Admission::Serve),
            (3584, 8, 0, Admission::Shed),
            (4000, 0, 0, Admission::Serve),
        ];
        for (open, held, shed, want) in table {
            assert_eq!(
                DEFAULT.admit(open, held, shed),
                want,
                "{open} open, {held} held, {shed} shed"
            );
        }
    }

    #[test]
    fn sixteen_addresses_cannot_fill_the_listener() {
        let clients = Clients::new(DEFAULT);
        let mut slots = Vec::new();
        for a in 0..16u8 {
            let ip = IpAddr::from([10, 0, 0, a]);
            while let (Admission::Serve, Some(slot)) = clients.admit(Some(ip)) {
                slots.push(slot);
            }
        }
        let open = slots.len();
        assert!(
            open + DEFAULT.max / 8 <= DEFAULT.max,
            "16 addresses hold {open} of {} connections",
            DEFAULT.max
        );
        let (decision, _slot) = clients.admit(Some(IpAddr::from([10, 0, 1, 1])));
        assert_eq!(decision, Admission::Serve);
    }

    #[test]
    fn a_closed_connection_gives_its_slot_back() {
        let limits = Limits {
            max: 8,
            per_client: 1,
        };
        let clients = Clients::new(limits);
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        let (first, slot) = clients.admit(ip);
        assert_eq!(first, Admission::Serve);
        assert_eq!(clients.admit(ip).0, Admission::Shed);
        drop(slot);
        assert_eq!(clients.admit(ip).0, Admission::Serve);
    }

    #[test]
    fn trusted_proxies_are_held_to_the_hard_limit_only() {
        let clients = Clients::new(Limits {
            max: 8,
            per_client: 1,
        });
        let slots: Vec<_> = (0..8).map(|_| clients.admit(None)).collect();
        assert!(
            slots
                .iter()
                .all(|(d, s)| *d == Admission::Serve && s.is_some())
        );
    }
}
