//! Times as RFC 3339 and as "expires in 59m 59s" / "expired 3h ago".

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// RFC 3339 in UTC, e.g. `2026-01-01T00:00:00Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    pki::verify::rfc3339(&t)
}

/// Parses an RFC 3339 time given on the command line.
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2026-01-01T00:00:00Z: {e}"))
}

/// A duration in its two largest non-zero units: `1d 2h`, `59m 59s`, `3h`, `0s`.
pub fn human_duration(d: Duration) -> String {
    let mut secs = d.whole_seconds().unsigned_abs();
    if secs == 0 {
        return "0s".into();
    }
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    for (size, name) in units {
        let n = secs / size;
        secs %= size;
        if n > 0 || !parts.is_empty() {
            parts.push((n, name));
        }
    }
    parts
        .into_iter()
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where `at` falls in a validity period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidityStatus {
    NotYetValid,
    Valid,
    Expired,
}

impl ValidityStatus {
    pub fn of(at: OffsetDateTime, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        if at < not_before {
            ValidityStatus::NotYetValid
        } else if at > not_after {
            ValidityStatus::Expired
        } else {
            ValidityStatus::Valid
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ValidityStatus::NotYetValid => "not yet valid",
            ValidityStatus::Valid => "valid",
            ValidityStatus::Expired => "expired",
        }
    }
}

/// "expires in 59m 59s", "expired 3h ago" or "becomes valid in 2h".
pub fn relative(
    at: OffsetDateTime,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> String {
    match ValidityStatus::of(at, not_before, not_after) {
        ValidityStatus::NotYetValid => {
            format!("becomes valid in {}", human_duration(not_before - at))
        }
        ValidityStatus::Valid => format!("expires in {}", human_duration(not_after - at)),
        ValidityStatus::Expired => format!("expired {} ago", human_duration(at - not_after)),
    }
}

/// Share of the lifetime used at `at`, in percent (0 before NotBefore, 100 after NotAfter).
pub fn percent_used(
    at: OffsetDateTime,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> f64 {
    let total = (not_after - not_before).as_seconds_f64();
    if total <= 0.0 {
        return 100.0;
    }
    ((at - not_before).as_seconds_f64() / total * 100.0).clamp(0.0, 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn durations_use_two_units() {
        assert_eq!(human_duration(Duration::seconds(3599)), "59m 59s");
        assert_eq!(human_duration(Duration::hours(3)), "3h");
        assert_eq!(human_duration(Duration::seconds(-3 * 3600 - 5)), "3h");
        assert_eq!(human_duration(Duration::seconds(90_061)), "1d 1h");
        assert_eq!(human_duration(Duration::seconds(45)), "45s");
        assert_eq!(human_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn relative_times() {
        let nb = datetime!(2026-01-01 0:00 UTC);
        let na = nb + Duration::hours(1);
        assert_eq!(
            relative(nb + Duration::seconds(1), nb, na),
            "expires in 59m 59s"
        );
        assert_eq!(relative(na + Duration::hours(3), nb, na), "expired 3h ago");
        assert_eq!(
            relative(nb - Duration::hours(2), nb, na),
            "becomes valid in 2h"
        );
        assert_eq!(percent_used(nb + Duration::minutes(15), nb, na), 25.0);
        assert_eq!(percent_used(na + Duration::minutes(15), nb, na), 100.0);
        assert_eq!(rfc3339(nb), "2026-01-01T00:00:00Z");
        assert!(parse_rfc3339("2026-01-01T00:00:00Z").is_ok());
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
