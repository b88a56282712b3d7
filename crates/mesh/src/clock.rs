//! Where "now" comes from. Everything in the services that decides by time (rotation, CRL
//! refresh and freshness, readiness, the peer watch) asks a [`Clock`], and sleeps with tokio's
//! timer. Production uses [`SystemClock`]; tests use [`TokioClock`], which follows tokio's
//! paused clock, so a test can run an hour of rotations and refreshes in milliseconds.

use time::OffsetDateTime;

pub use pki::clock::{Clock, SystemClock};

/// A wall clock that moves with tokio's clock: a fixed start time plus the time tokio says has
/// elapsed since. Under `#[tokio::test(start_paused = true)]` it advances exactly as far as
/// tokio's auto-advancing timer does, so the times a task computes and the sleeps it takes
/// agree.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: OffsetDateTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock showing `base` now (call it inside the runtime whose time it should follow).
    pub fn starting_at(base: OffsetDateTime) -> TokioClock {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }

    /// A clock starting at the system's current time.
    pub fn new() -> TokioClock {
        TokioClock::starting_at(OffsetDateTime::now_utc())
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.start);
        self.base + elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use time::macros::datetime;

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_time() {
        let clock = TokioClock::starting_at(datetime!(2026-01-01 00:00 UTC));
        assert_eq!(clock.now(), datetime!(2026-01-01 00:00 UTC));
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), datetime!(2026-01-01 00:01:30 UTC));
    }
}
