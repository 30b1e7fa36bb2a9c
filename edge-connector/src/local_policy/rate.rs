//! The local policy's call rate: at most `max_calls_per_minute` calls of one tool on behalf
//! of one user, counted here whatever the runtime sends, so that a runtime gone wrong cannot
//! make a user's upstream account do more than the customer allows.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use shared::call::{Call, CallFailure};
use shared::wire::ErrorCode;

/// Checks between two sweeps of buckets that are full again (keeps memory bounded).
const SWEEP_EVERY: u32 = 1024;

/// Token buckets per (user, tool).
#[derive(Debug)]
pub struct CallRate {
    per_minute: NonZeroU32,
    limiter: DefaultKeyedRateLimiter<(String, String)>,
    clock: DefaultClock,
    checks: AtomicU32,
}

impl CallRate {
    /// At most `per_minute` calls of a tool per user in any minute (all at once, or spread).
    pub fn new(per_minute: NonZeroU32) -> Self {
        Self {
            per_minute,
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            clock: DefaultClock::default(),
            checks: AtomicU32::new(0),
        }
    }

    /// Takes one call from the bucket of `call`'s user and tool, or says when to retry.
    pub fn check(&self, call: &Call) -> Result<(), CallFailure> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let key = (call.caller.user.clone(), call.tool.as_str().to_owned());
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until
                .wait_time_from(self.clock.now())
                .max(Duration::from_secs(1));
            CallFailure::new(
                ErrorCode::RateLimited,
                format!(
                    "this connector's local policy allows {} calls of {} per minute for one user; retry in {} s",
                    self.per_minute,
                    call.tool.as_str(),
                    wait.as_secs_f64().ceil()
                ),
            )
            .retry_after(wait)
        })
    }
}
