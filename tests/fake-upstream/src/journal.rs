//! The request journal: every request to the faked API (not to `/_fake/`), in arrival
//! order with a monotonic index, so tests can count upstream calls and spot duplicate writes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// One request as the journal keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Arrival order, from 1; never reused, not even after a clear.
    pub index: u64,
    /// HTTP method.
    pub method: String,
    /// Path, as sent (still percent-encoded).
    pub path: String,
    /// Query string without `?`, if any.
    pub query: Option<String>,
    /// The authenticated user's login, if the token resolved.
    pub user: Option<String>,
    /// Response status; none when the connection was reset instead.
    pub status: Option<u16>,
    /// The fault that shaped the answer, if any: `status`, `rate_limit`, `delay`...
    pub fault: Option<String>,
    /// Milliseconds since the server started, at arrival.
    pub at_ms: u64,
}

/// The journal.
#[derive(Debug)]
pub struct Journal {
    started: Instant,
    next: AtomicU64,
    entries: Mutex<Vec<Entry>>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            started: Instant::now(),
            next: AtomicU64::new(1),
            entries: Mutex::new(Vec::new()),
        }
    }
}

impl Journal {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an arriving request and returns its index.
    pub fn begin(&self, method: &str, path: &str, query: Option<&str>) -> u64 {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let at_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.lock().push(Entry {
            index,
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            user: None,
            status: None,
            fault: None,
            at_ms,
        });
        index
    }

    /// Fills in what became of request `index`.
    pub fn finish(&self, index: u64, user: Option<&str>, status: Option<u16>, fault: Option<&str>) {
        if let Some(e) = self.lock().iter_mut().rev().find(|e| e.index == index) {
            e.user = user.map(str::to_owned);
            e.status = status;
            e.fault = fault.map(str::to_owned);
        }
    }

    /// A copy of every entry.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    /// Forgets every entry (indexes keep counting).
    pub fn clear(&self) {
        self.lock().clear();
    }
}
