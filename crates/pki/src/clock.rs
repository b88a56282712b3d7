//! Where "now" comes from. Everything that decides by time (issuance, token expiry, rotation,
//! CRL freshness) takes a [`Clock`], so tests can set the time instead of waiting for it.
//! Production code uses [`SystemClock`]; synchronous tests use [`ManualClock`]. (Async code that
//! also sleeps pairs a clock with tokio's timer; the services' clock that follows tokio's paused
//! time lives with them.)
//!
//! [`Deadline`] is the one reader of the monotonic system clock (`clippy.toml` bans
//! `std::time::Instant::now` elsewhere): timeouts of real I/O, such as blocking sockets and child
//! processes, run in real time whatever a test clock says.

use std::fmt;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// A source of the current wall-clock time (UTC).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until told otherwise (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: OffsetDateTime) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock to `t` (backwards too: clocks do jump).
    pub fn set(&self, t: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A point in real (monotonic) time by which blocking I/O or a child process must be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(std::time::Instant);

impl Deadline {
    /// `timeout` from now.
    #[allow(clippy::disallowed_methods)] // the one reader of the monotonic clock (module docs)
    pub fn after(timeout: std::time::Duration) -> Deadline {
        Deadline(std::time::Instant::now() + timeout)
    }

    /// Time left until the deadline; zero once it has passed.
    #[allow(clippy::disallowed_methods)] // the one reader of the monotonic clock (module docs)
    pub fn remaining(&self) -> std::time::Duration {
        self.0.saturating_duration_since(std::time::Instant::now())
    }

    /// True once the deadline has passed.
    pub fn passed(&self) -> bool {
        self.remaining().is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_deadline_counts_down_to_zero() {
        let later = Deadline::after(std::time::Duration::from_secs(3600));
        assert!(!later.passed());
        assert!(later.remaining() > std::time::Duration::from_secs(3590));
        let now = Deadline::after(std::time::Duration::ZERO);
        assert!(now.passed());
        assert_eq!(now.remaining(), std::time::Duration::ZERO);
        assert!(now < later);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
        assert_eq!(clock.now(), datetime!(2026-01-01 00:00 UTC));
        clock.advance(Duration::minutes(90));
        assert_eq!(clock.now(), datetime!(2026-01-01 01:30 UTC));
        clock.set(datetime!(2025-12-31 23:00 UTC));
        assert_eq!(clock.now(), datetime!(2025-12-31 23:00 UTC));
        let system = SystemClock.now();
        assert!((OffsetDateTime::now_utc() - system).abs() < Duration::minutes(1));
    }
}
