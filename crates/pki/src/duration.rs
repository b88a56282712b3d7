//! Durations given on command lines and in requests ("90s", "10m", "1h", "7d"): one parser, one
//! rule. Every interval the product takes has a floor (`at_least`): zero, negative and
//! sub-second values are refused with the accepted form, because a 0 s refresh spins and a 1 ms
//! certificate lifetime only produces failures later.

use std::time::Duration;

/// The smallest interval any setting accepts unless it says otherwise.
pub const ONE_SECOND: Duration = Duration::from_secs(1);

/// Parses `s` ("90s", "10m", "1h 30m", "7d") and refuses anything shorter than `at_least`.
/// The error is a sentence for the option's message (clap prefixes the option's name).
pub fn parse_at_least(s: &str, at_least: Duration) -> Result<Duration, String> {
    let minimum = || format!("the minimum is {}", crate::timefmt::human_std(at_least));
    let d = parse_any(s).map_err(|e| e.explain(s, &minimum()))?;
    if d < at_least {
        return Err(format!("{s:?} is too short: {}", minimum()));
    }
    Ok(d)
}

/// Why a text is not a duration at all.
enum NotADuration {
    Negative,
    Garbage(humantime::DurationError),
}

impl NotADuration {
    /// The message, ending with the accepted `range`.
    fn explain(&self, s: &str, range: &str) -> String {
        match self {
            NotADuration::Negative => format!("{s:?} is negative: {range}"),
            NotADuration::Garbage(e) => {
                format!("{s:?} is not a duration ({e}); examples: 90s, 10m, 1h, 7d; {range}")
            }
        }
    }
}

fn parse_any(s: &str) -> Result<Duration, NotADuration> {
    let trimmed = s.trim();
    if trimmed.starts_with('-') {
        return Err(NotADuration::Negative);
    }
    humantime::parse_duration(trimmed).map_err(NotADuration::Garbage)
}

/// Parses `s` and refuses anything outside `at_least..=at_most`; the error states the range.
pub fn parse_between(s: &str, at_least: Duration, at_most: Duration) -> Result<Duration, String> {
    let range = || {
        format!(
            "the accepted range is {} to {}",
            crate::timefmt::human_std(at_least),
            crate::timefmt::human_std(at_most)
        )
    };
    let d = parse_any(s).map_err(|e| e.explain(s, &range()))?;
    if d < at_least {
        return Err(format!("{s:?} is too short: {}", range()));
    }
    if d > at_most {
        return Err(format!("{s:?} is too long: {}", range()));
    }
    Ok(d)
}

/// A parsed duration as a `time::Duration` (lifetimes and validity periods).
fn to_time(s: &str, d: Duration) -> Result<time::Duration, String> {
    time::Duration::try_from(d).map_err(|_| format!("{s:?} is too large"))
}

/// [`parse_at_least`] with the one-second floor, as a clap value parser.
pub fn parse(s: &str) -> Result<Duration, String> {
    parse_at_least(s, ONE_SECOND)
}

/// [`parse`], as a `time::Duration` (lifetimes and validity periods).
pub fn parse_time(s: &str) -> Result<time::Duration, String> {
    to_time(s, parse(s)?)
}

/// [`parse_at_least`], as a `time::Duration`.
pub fn parse_time_at_least(s: &str, at_least: Duration) -> Result<time::Duration, String> {
    to_time(s, parse_at_least(s, at_least)?)
}

/// [`parse_between`], as a `time::Duration`.
pub fn parse_time_between(
    s: &str,
    at_least: Duration,
    at_most: Duration,
) -> Result<time::Duration, String> {
    to_time(s, parse_between(s, at_least, at_most)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_forms() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse(" 7d ").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_time("10m").unwrap(), time::Duration::minutes(10));
    }

    #[test]
    fn refuses_zero_negative_tiny_and_garbage() {
        assert!(parse("0s").unwrap_err().contains("minimum is 1s"));
        assert!(parse("1ms").unwrap_err().contains("minimum is 1s"));
        assert!(parse("-5s")
            .unwrap_err()
            .contains("is negative: the minimum is 1s"));
        assert!(parse("soon").unwrap_err().contains("examples: 90s"));
        assert!(parse_at_least("1s", Duration::from_secs(2))
            .unwrap_err()
            .contains("minimum is 2s"));
        assert_eq!(
            parse_at_least("2s", Duration::from_secs(2)).unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(
            parse_at_least("0s", Duration::ZERO).unwrap(),
            Duration::ZERO
        );
        assert!(parse_at_least("-1s", Duration::ZERO)
            .unwrap_err()
            .contains("negative"));
    }

    #[test]
    fn ranges_are_stated_on_both_ends() {
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(parse_between("7d", ONE_SECOND, week).unwrap(), week);
        assert_eq!(parse_between("1s", ONE_SECOND, week).unwrap(), ONE_SECOND);
        let short = parse_between("1ms", ONE_SECOND, week).unwrap_err();
        assert!(
            short.contains("too short: the accepted range is 1s to 7d"),
            "{short}"
        );
        let long = parse_between("8d", ONE_SECOND, week).unwrap_err();
        assert!(
            long.contains("too long: the accepted range is 1s to 7d"),
            "{long}"
        );
        assert!(parse_between("-1s", ONE_SECOND, week)
            .unwrap_err()
            .contains("is negative: the accepted range is 1s to 7d"));
        assert!(parse_between("soon", ONE_SECOND, week)
            .unwrap_err()
            .contains("examples: 90s, 10m, 1h, 7d; the accepted range is 1s to 7d"));
        assert_eq!(
            parse_time_between("90s", ONE_SECOND, week).unwrap(),
            time::Duration::seconds(90)
        );
        assert!(parse_time_at_least("1s", Duration::from_secs(2)).is_err());
    }
}
