//! The one place times and durations become text, for logs, metrics, JSON and every command:
//! RFC 3339 in UTC with whole seconds, and short human durations ("29m 59s").

use std::time::Duration as StdDuration;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// RFC 3339 in UTC with whole seconds, e.g. `2026-01-01T00:00:00Z` (certificates carry whole
/// seconds, so sub-second digits would only disagree with them).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let utc = t.to_offset(UtcOffset::UTC);
    let utc = utc.replace_nanosecond(0).unwrap_or(utc);
    utc.format(&Rfc3339).unwrap_or_else(|_| utc.to_string())
}

/// [`rfc3339`] as a serde serializer, for JSON documents:
/// `#[serde(serialize_with = "pki::timefmt::serialize")]`.
pub fn serialize<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// [`serialize`] for an optional time (`null` when absent).
pub fn serialize_option<S: serde::Serializer>(
    t: &Option<OffsetDateTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, s),
        None => s.serialize_none(),
    }
}

/// [`rfc3339`] for a borrowed time (the fields `thiserror` messages hand over).
pub(crate) fn rfc3339_ref(t: &OffsetDateTime) -> String {
    rfc3339(*t)
}

/// Parses an RFC 3339 time (any offset).
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2026-01-01T00:00:00Z: {e}"))
}

/// A duration in its two largest non-zero units: `1d 2h`, `59m 59s`, `3h`, `0s`; below a second
/// in whole milliseconds (`10ms`, the one sub-second floor a setting has). The sign is dropped
/// (callers say "ago" or "in").
pub fn human(d: Duration) -> String {
    let mut secs = d.whole_seconds().unsigned_abs();
    if secs == 0 {
        let millis = d.whole_milliseconds().unsigned_abs();
        return if millis == 0 {
            "0s".into()
        } else {
            format!("{millis}ms")
        };
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

/// [`human`] for a standard-library duration.
pub fn human_std(d: StdDuration) -> String {
    human(Duration::try_from(d).unwrap_or(Duration::MAX))
}

/// How long from `now` until `t`; zero when `t` has passed.
pub fn until(t: OffsetDateTime, now: OffsetDateTime) -> StdDuration {
    let d = t - now;
    if d.is_negative() {
        StdDuration::ZERO
    } else {
        d.unsigned_abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rfc3339_is_utc_with_whole_seconds() {
        let t = datetime!(2026-01-01 01:30:15.987 +01:00);
        assert_eq!(rfc3339(t), "2026-01-01T00:30:15Z");
        assert_eq!(
            parse_rfc3339("2026-01-01T00:30:15Z").unwrap(),
            t.replace_nanosecond(0).unwrap()
        );
        assert!(parse_rfc3339("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn json_times_are_the_same_text() {
        #[derive(serde::Serialize)]
        struct Doc {
            #[serde(serialize_with = "serialize")]
            at: OffsetDateTime,
            #[serde(serialize_with = "serialize_option")]
            maybe: Option<OffsetDateTime>,
            #[serde(serialize_with = "serialize_option")]
            never: Option<OffsetDateTime>,
        }
        let t = datetime!(2026-01-01 01:30:15.5 +01:00);
        let json = serde_json::to_string(&Doc {
            at: t,
            maybe: Some(t),
            never: None,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"at":"2026-01-01T00:30:15Z","maybe":"2026-01-01T00:30:15Z","never":null}"#
        );
    }

    #[test]
    fn human_durations_keep_two_units() {
        assert_eq!(human(Duration::ZERO), "0s");
        assert_eq!(human(Duration::seconds(3599)), "59m 59s");
        assert_eq!(human(Duration::seconds(3600)), "1h");
        assert_eq!(human(Duration::seconds(93_784)), "1d 2h");
        assert_eq!(human(Duration::seconds(-90)), "1m 30s");
        assert_eq!(human(Duration::milliseconds(10)), "10ms");
        assert_eq!(human(Duration::milliseconds(1500)), "1s");
        assert_eq!(human_std(StdDuration::from_millis(1500)), "1s");
    }

    #[test]
    fn until_is_never_negative() {
        let now = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(
            until(now + Duration::seconds(5), now),
            StdDuration::from_secs(5)
        );
        assert_eq!(until(now - Duration::seconds(5), now), StdDuration::ZERO);
    }
}
