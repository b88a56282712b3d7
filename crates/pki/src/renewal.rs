//! When to renew: at a fraction of the lifetime, with jitter so fleets do not renew together.

use time::{Duration, OffsetDateTime};

/// The moment at which `fraction` (0..1) of the lifetime has elapsed, shifted by `jitter`
/// (a fraction of the lifetime in -0.1..=0.1), never before NotBefore nor after NotAfter.
pub fn renewal_time(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    fraction: f64,
    jitter: f64,
) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    let at = (fraction + jitter.clamp(-0.1, 0.1)).clamp(0.0, 1.0);
    not_before + lifetime * at
}

/// True when `now` is at or past the renewal point.
pub fn needs_renewal(
    now: OffsetDateTime,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    fraction: f64,
) -> bool {
    now >= renewal_time(not_before, not_after, fraction, 0.0)
}

/// Share of the lifetime still left at `now` (0 once expired, 1 before NotBefore).
pub fn remaining_fraction(
    now: OffsetDateTime,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> f64 {
    let lifetime = (not_after - not_before).as_seconds_f64();
    if lifetime <= 0.0 {
        return 0.0;
    }
    ((not_after - now).as_seconds_f64() / lifetime).clamp(0.0, 1.0)
}

/// Retry delay while the CA is unreachable: doubles from `base` but never waits past a quarter
/// of the time left, so retries tighten as expiry nears.
pub fn retry_delay(attempt: u32, base: Duration, time_left: Duration) -> Duration {
    let exp = base * 2f64.powi(attempt.min(16) as i32);
    let cap = std::cmp::max(time_left / 4_i32, Duration::milliseconds(200));
    exp.min(cap).min(Duration::minutes(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn renews_at_the_fraction_with_bounded_jitter() {
        let nb = datetime!(2026-01-01 0:00 UTC);
        let na = nb + Duration::hours(10);
        assert_eq!(renewal_time(nb, na, 0.5, 0.0), nb + Duration::hours(5));
        assert_eq!(renewal_time(nb, na, 0.5, 0.5), nb + Duration::hours(6));
        assert_eq!(
            renewal_time(nb, na, 0.5, -0.05),
            nb + Duration::minutes(270)
        );
        assert!(needs_renewal(nb + Duration::hours(5), nb, na, 0.5));
        assert!(!needs_renewal(nb + Duration::hours(4), nb, na, 0.5));
        assert_eq!(remaining_fraction(nb + Duration::hours(9), nb, na), 0.1);
    }

    #[test]
    fn retries_tighten_near_expiry() {
        let base = Duration::seconds(1);
        assert_eq!(
            retry_delay(0, base, Duration::hours(1)),
            Duration::seconds(1)
        );
        assert_eq!(
            retry_delay(3, base, Duration::hours(1)),
            Duration::seconds(8)
        );
        assert_eq!(
            retry_delay(10, base, Duration::seconds(8)),
            Duration::seconds(2)
        );
    }
}
