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
    let trimmed = s.trim();
    if trimmed.starts_with('-') {
        return Err(format!(
            "{s:?} is negative; give a duration like 90s, 10m, 1h or 7d"
        ));
    }
    let d = humantime::parse_duration(trimmed)
        .map_err(|e| format!("{s:?} is not a duration ({e}); examples: 90s, 10m, 1h, 7d"))?;
    if d < at_least {
        return Err(format!(
            "{s:?} is too short: the minimum is {}",
            humantime::format_duration(at_least)
        ));
    }
    Ok(d)
}

/// [`parse_at_least`] with the one-second floor, as a clap value parser.
pub fn parse(s: &str) -> Result<Duration, String> {
    parse_at_least(s, ONE_SECOND)
}

/// [`parse`], as a `time::Duration` (lifetimes and validity periods).
pub fn parse_time(s: &str) -> Result<time::Duration, String> {
    let d = parse(s)?;
    time::Duration::try_from(d).map_err(|_| format!("{s:?} is too large"))
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
        assert!(parse("-5s").unwrap_err().contains("negative"));
        assert!(parse("soon").unwrap_err().contains("examples: 90s"));
        assert!(parse_at_least("1s", Duration::from_secs(2))
            .unwrap_err()
            .contains("minimum is 2s"));
        assert_eq!(
            parse_at_least("2s", Duration::from_secs(2)).unwrap(),
            Duration::from_secs(2)
        );
    }
}
