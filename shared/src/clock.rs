//! The wall clock, injectable: code that decides something by the time (does this code,
//! token or join token still count?) asks a [`Clock`] it was given, so a test can hand it a
//! [`ManualClock`] and move time instead of sleeping.
//!
//! Times are Unix milliseconds (`i64`), the unit the runtime's store and the connector's
//! vault record.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current wall-clock time.
pub trait Clock: Debug + Send + Sync {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Now, as a [`SystemTime`].
    fn now(&self) -> SystemTime {
        let ms = self.now_ms();
        let offset = Duration::from_millis(ms.unsigned_abs());
        if ms >= 0 {
            UNIX_EPOCH + offset
        } else {
            UNIX_EPOCH - offset
        }
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // A clock set before 1970 is broken; the epoch is as good an answer as any.
            Err(_) => 0,
        }
    }
}

/// The system clock's now, in Unix milliseconds: for code where no test needs to move time.
pub fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// A clock that stands still until told to move: for tests.
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `ms` (Unix milliseconds).
    pub fn at(ms: i64) -> Self {
        Self {
            ms: AtomicI64::new(ms),
        }
    }

    /// A clock standing at the system clock's now.
    pub fn at_system_now() -> Self {
        Self::at(now_ms())
    }

    /// Sets the time to `ms` (Unix milliseconds); it may go backwards.
    pub fn set(&self, ms: i64) {
        self.ms.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        // fetch_update's closure never returns None, so this cannot fail.
        let _ = self
            .ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                Some(ms.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_after_2020_and_agrees_with_system_time() {
        let before = SystemTime::now();
        let now = SystemClock.now();
        assert!(now_ms() > 1_577_836_800_000);
        assert!(now >= before - Duration::from_millis(1));
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_ms(), 3_000);
        clock.set(-500);
        assert_eq!(clock.now(), UNIX_EPOCH - Duration::from_millis(500));
        clock.set(i64::MAX - 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now_ms(), i64::MAX);
    }
}
