//! Reconnect delays: exponential backoff with full jitter.
//!
//! Each delay is uniform in `[0, min(cap, base * 2^n)]`. Spreading retries over the whole
//! window, rather than around its end, is what keeps a fleet of connectors that lost the
//! same runtime at the same moment from coming back at the same moment.

use std::time::Duration;

/// A backoff sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `base`, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::random_range(0..=nanos))
    }

    /// Back to the first step (after a connection succeeded).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            ceilings.push(b.ceiling());
            assert!(b.next_delay() <= *ceilings.last().unwrap());
        }
        assert_eq!(ceilings[0], Duration::from_millis(200));
        assert_eq!(ceilings[1], Duration::from_millis(400));
        assert_eq!(ceilings[7], Duration::from_millis(25_600));
        assert_eq!(ceilings[8], Duration::from_secs(30));
        assert_eq!(ceilings[11], Duration::from_secs(30));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(200));
    }

    #[test]
    fn delays_are_spread_over_the_whole_window() {
        let mut low = 0;
        for _ in 0..1000 {
            let mut b = Backoff::new(Duration::from_secs(30), Duration::from_secs(30));
            if b.next_delay() < Duration::from_secs(15) {
                low += 1;
            }
        }
        // Full jitter: about half the delays fall in the lower half of the window.
        assert!((350..=650).contains(&low), "{low}");
    }
}
