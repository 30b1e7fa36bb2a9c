//! How many new tunnels the runtime admits per second.
//!
//! After a runtime restart every connector comes back at once. Beyond the configured rate a
//! new tunnel is closed with [`CloseCode::Busy`](shared::close::CloseCode::Busy) before the
//! store is touched, with a retry delay spread over the time the wave needs at that rate,
//! so the connectors come back evenly instead of in a second, larger wave.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The window over which recent refusals are counted to size the spread.
const WINDOW: Duration = Duration::from_secs(10);

/// The shortest delay a refused connector is asked to wait.
pub const MIN_DELAY: Duration = Duration::from_secs(1);

/// The handshake rate limit.
#[derive(Debug)]
pub struct HandshakeRate {
    limiter: DefaultDirectRateLimiter,
    per_second: NonZeroU32,
    refused: Mutex<(Instant, u32)>,
}

impl HandshakeRate {
    /// Admits `per_second` new tunnels per second, in bursts of as many.
    pub fn new(per_second: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::direct(Quota::per_second(per_second)),
            per_second,
            refused: Mutex::new((Instant::now(), 0)),
        }
    }

    /// `None` to admit a new tunnel now; otherwise how long it should wait.
    pub fn check(&self) -> Option<Duration> {
        if self.limiter.check().is_ok() {
            return None;
        }
        let waiting = {
            let mut r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            if r.0.elapsed() > WINDOW {
                *r = (Instant::now(), 0);
            }
            r.1 = r.1.saturating_add(1);
            r.1
        };
        Some(spread(waiting, self.per_second, rand::random()))
    }
}

/// The delay for the `waiting`-th refused connector: uniform (by `unit`, in [0, 1)) over
/// the time `waiting` connectors need at `per_second`, at least [`MIN_DELAY`].
fn spread(waiting: u32, per_second: NonZeroU32, unit: f64) -> Duration {
    let span = spread_bound(waiting, per_second) - MIN_DELAY;
    MIN_DELAY + span.mul_f64(unit.clamp(0.0, 1.0))
}

/// The longest delay asked of a refused connector while `waiting` wait: [`MIN_DELAY`] plus
/// the time `waiting` handshakes take at `per_second`.
pub fn spread_bound(waiting: u32, per_second: NonZeroU32) -> Duration {
    MIN_DELAY + Duration::from_secs_f64(f64::from(waiting) / f64::from(per_second.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_rate_then_asks_to_wait() {
        let rate = HandshakeRate::new(NonZeroU32::new(3).unwrap());
        assert_eq!((0..3).filter(|_| rate.check().is_none()).count(), 3);
        let wait = rate.check().expect("the fourth within the second waits");
        assert!(wait >= MIN_DELAY);
    }

    #[test]
    fn the_spread_grows_with_the_wave_and_stays_within_it() {
        let rate = NonZeroU32::new(10).unwrap();
        assert_eq!(spread(1, rate, 0.0), MIN_DELAY);
        assert_eq!(spread(200, rate, 0.999_999).as_secs(), 20);
        assert!(spread(200, rate, 0.5) <= MIN_DELAY + Duration::from_secs(20));
        assert_eq!(spread(200, rate, 7.0), MIN_DELAY + Duration::from_secs(20));
    }
}
