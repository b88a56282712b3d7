//! Where a time falls in a validity period: the status, "expires in 59m 59s" / "expired 3h
//! ago", and the share of the lifetime used. Times and durations become text in
//! `pki::timefmt`, the one formatter of the project.

use pki::timefmt::human;
use time::OffsetDateTime;

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
            format!("becomes valid in {}", human(not_before - at))
        }
        ValidityStatus::Valid => format!("expires in {}", human(not_after - at)),
        ValidityStatus::Expired => format!("expired {} ago", human(at - not_after)),
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
    use time::Duration;

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
    }
}
