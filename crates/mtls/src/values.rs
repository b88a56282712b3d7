//! Value parsers for the settings of `mtls-server`, `mtls-client` and `mtls-bench`: every value
//! is checked when the command line is read, so a setting that cannot work is refused at start
//! with exit code 2, the option named (clap adds it) and the accepted range stated, before any
//! file is read or any token is redeemed. Durations go through `pki::duration` (the one parser,
//! with a floor of one second).

use std::time::Duration;

/// A duration of at least one second ("90s", "10m", "1h").
pub fn duration(s: &str) -> Result<Duration, String> {
    pki::duration::parse(s)
}

/// The smallest pause between the requests of `mtls-client --count N`: it paces the client's
/// own requests (demos and tests watch rotations request by request), it is not an interval of
/// the service's machinery, so it may be shorter than a second, but never zero.
pub const MIN_REQUEST_INTERVAL: Duration = Duration::from_millis(10);

/// A pause between requests: at least [`MIN_REQUEST_INTERVAL`].
pub fn request_interval(s: &str) -> Result<Duration, String> {
    pki::duration::parse_at_least(s, MIN_REQUEST_INTERVAL)
}

/// A count of at least 1.
pub fn count(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number; give 1 or more"))?;
    if n == 0 {
        return Err(format!("{s:?} is too small: the minimum is 1"));
    }
    Ok(n)
}

/// [`count`] as a `usize`.
pub fn count_usize(s: &str) -> Result<usize, String> {
    usize::try_from(count(s)?).map_err(|_| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_start_at_one_and_durations_at_a_second() {
        assert_eq!(count("3").unwrap(), 3);
        assert!(count("0").unwrap_err().contains("the minimum is 1"));
        assert!(count("-1").unwrap_err().contains("not a whole number"));
        assert!(count("many").unwrap_err().contains("not a whole number"));
        assert_eq!(count_usize("10000").unwrap(), 10_000);
        assert_eq!(duration("2s").unwrap(), Duration::from_secs(2));
        assert!(duration("500ms").unwrap_err().contains("the minimum is 1s"));
        assert!(duration("0s").unwrap_err().contains("the minimum is 1s"));
        assert!(duration("-3s").unwrap_err().contains("negative"));
        assert_eq!(
            request_interval("100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert!(request_interval("0s")
            .unwrap_err()
            .contains("the minimum is 10ms"));
    }
}
