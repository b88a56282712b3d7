//! Time formatting and conversions shared by logs, metrics and the CLI.

use std::time::Duration as StdDuration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// RFC 3339 in UTC, seconds precision.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// How long from `now` until `t`, zero when `t` has passed.
pub fn until(t: OffsetDateTime, now: OffsetDateTime) -> StdDuration {
    let d = t - now;
    if d.is_negative() {
        StdDuration::ZERO
    } else {
        d.unsigned_abs()
    }
}

/// A short human duration ("29m 59s").
pub fn human(d: StdDuration) -> String {
    humantime::format_duration(StdDuration::from_secs(d.as_secs())).to_string()
}
