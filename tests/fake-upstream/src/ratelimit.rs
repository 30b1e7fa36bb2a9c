//! Per-user fixed-window rate limits, one window per (user, resource), like GitHub's
//! `core` and `search` buckets and GitLab's authenticated-API limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Budget;

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Everything but search.
    Core,
    /// GitHub `/search/*`.
    Search,
}

impl Resource {
    /// GitHub's `x-ratelimit-resource` value.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Core => "core",
            Resource::Search => "search",
        }
    }
}

/// The state of a bucket after a request, as the headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left (0 once exhausted).
    pub remaining: u32,
    /// Requests made in this window, this one included.
    pub used: u32,
    /// When the window ends, Unix seconds.
    pub reset: u64,
    /// The bucket.
    pub resource: Resource,
    /// Whether this request was over the limit.
    pub exceeded: bool,
}

impl Quota {
    /// Seconds until the window ends (at least 1).
    pub fn retry_after(&self) -> u64 {
        self.reset.saturating_sub(unix_now()).max(1)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The limiter.
pub struct RateLimiter {
    core: Budget,
    search: Budget,
    windows: Mutex<HashMap<(String, Resource), (u64, u32)>>,
}

impl RateLimiter {
    /// A limiter with these budgets.
    pub fn new(core: Budget, search: Budget) -> RateLimiter {
        RateLimiter {
            core,
            search,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request by `user` against `resource`.
    pub fn hit(&self, user: &str, resource: Resource) -> Quota {
        let budget = match resource {
            Resource::Core => self.core,
            Resource::Search => self.search,
        };
        let now = unix_now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let (reset, used) = windows
            .entry((user.to_owned(), resource))
            .or_insert((now + budget.window.as_secs().max(1), 0));
        if now >= *reset {
            *reset = now + budget.window.as_secs().max(1);
            *used = 0;
        }
        let exceeded = *used >= budget.limit;
        if !exceeded {
            *used += 1;
        }
        Quota {
            limit: budget.limit,
            remaining: budget.limit - *used,
            used: *used,
            reset: *reset,
            resource,
            exceeded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_user_and_resource() {
        let b = |limit| Budget {
            limit,
            window: Duration::from_secs(60),
        };
        let r = RateLimiter::new(b(2), b(1));
        assert_eq!(r.hit("a", Resource::Core).remaining, 1);
        assert_eq!(r.hit("a", Resource::Core).remaining, 0);
        let q = r.hit("a", Resource::Core);
        assert!(q.exceeded);
        assert_eq!((q.remaining, q.used), (0, 2));
        assert!(!r.hit("b", Resource::Core).exceeded);
        assert!(!r.hit("a", Resource::Search).exceeded);
        assert!(r.hit("a", Resource::Search).exceeded);
    }
}
