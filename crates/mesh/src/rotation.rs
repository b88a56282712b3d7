//! Rotation (DESIGN §3): renew at `rotate_at` of the lifetime with ±10% jitter, publish only a
//! validated certificate, back off while the CA is unreachable (tightening as expiry nears), and
//! after expiry re-enroll once a fresh join token is available.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use crate::credentials::{Credential, Identity};
use crate::enroll::Enroller;
use crate::events::Events;
use crate::stop::Stop;
use crate::timefmt::until;

/// Jitter bound as a fraction of the lifetime.
pub const JITTER: f64 = 0.1;

/// A uniformly random jitter in [-JITTER, JITTER].
pub fn random_jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.0;
    }
    let unit = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    (unit * 2.0 - 1.0) * JITTER
}

/// When `cred` should be renewed.
pub fn next_rotation(cred: &Credential, rotate_at: f64, jitter: f64) -> OffsetDateTime {
    pki::renewal::renewal_time(cred.info.not_before, cred.info.not_after, rotate_at, jitter)
}

#[derive(Clone, Copy, Debug)]
pub struct RotationConfig {
    /// Fraction of the lifetime at which to renew (0 < rotate_at < 1).
    pub rotate_at: f64,
    /// First retry delay after a failed renewal; doubles per attempt.
    pub retry_base: Duration,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            rotate_at: 0.5,
            retry_base: Duration::from_secs(1),
        }
    }
}

/// Runs until `stop` is requested (spawn it with [`Stop::spawn`]): sleeps until the next
/// rotation, renews, publishes, repeats. A renewal cut short by the stop is not a failure.
pub async fn run(
    enroller: Arc<Enroller>,
    identity: Arc<Identity>,
    events: Arc<Events>,
    config: RotationConfig,
    first_jitter: f64,
    stop: Stop,
) {
    let mut jitter = first_jitter;
    loop {
        let current = identity.current();
        let at = next_rotation(&current, config.rotate_at, jitter);
        tokio::time::sleep(until(at, OffsetDateTime::now_utc())).await;
        let mut attempt: u32 = 0;
        let mut told_about_token = false;
        loop {
            let now = OffsetDateTime::now_utc();
            let expired = now >= current.info.not_after;
            if expired && !enroller.fresh_token_available() {
                // Renewal is impossible with an expired certificate. Wait for the operator to
                // put a new token in --join-token-file; reading a small file is cheap.
                if !told_about_token {
                    events.rotation_failed(
                        &format!(
                            "the certificate expired at {}; renewal needs a fresh join token \
                             (write one to --join-token-file)",
                            crate::timefmt::rfc3339(current.info.not_after)
                        ),
                        TOKEN_POLL,
                        Duration::ZERO,
                    );
                    told_about_token = true;
                }
                tokio::time::sleep(TOKEN_POLL).await;
                continue;
            }
            let (result, how) = if expired {
                (
                    enroller.enroll().await,
                    "re-enrolled with a fresh join token",
                )
            } else {
                (enroller.renew(&current).await, "renewed")
            };
            match result {
                Ok(next) => {
                    jitter = random_jitter();
                    let next_at = next_rotation(&next, config.rotate_at, jitter);
                    let old = identity.publish(next);
                    events.rotated(&old, &identity.current(), Some(next_at), how);
                    break;
                }
                Err(_) if stop.requested() => return,
                Err(e) => {
                    let now = OffsetDateTime::now_utc();
                    let left = until(current.info.not_after, now);
                    let delay = retry_delay(&config, attempt, expired, left);
                    events.rotation_failed(&e.to_string(), delay, left);
                    tokio::time::sleep(delay).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

/// How often the token file is re-read while the certificate is expired.
pub const TOKEN_POLL: Duration = Duration::from_secs(1);

/// The wait before the next attempt: doubling from `retry_base`, never more than a quarter of
/// the lifetime left (so attempts tighten toward expiry), at most 5 s once expired.
fn retry_delay(config: &RotationConfig, attempt: u32, expired: bool, left: Duration) -> Duration {
    if expired {
        return (config.retry_base * 2u32.saturating_pow(attempt.min(5)))
            .min(Duration::from_secs(5));
    }
    let base = time::Duration::try_from(config.retry_base).unwrap_or(time::Duration::SECOND);
    let left = time::Duration::try_from(left).unwrap_or(time::Duration::ZERO);
    Duration::try_from(pki::renewal::retry_delay(attempt, base, left)).unwrap_or(config.retry_base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_bounds_and_varies() {
        let samples: Vec<f64> = (0..200).map(|_| random_jitter()).collect();
        assert!(samples.iter().all(|j| (-JITTER..=JITTER).contains(j)));
        assert!(samples.iter().any(|j| *j > 0.05));
        assert!(samples.iter().any(|j| *j < -0.05));
    }

    #[test]
    fn retries_double_then_tighten_toward_expiry() {
        let c = RotationConfig::default();
        let hour = Duration::from_secs(3600);
        assert_eq!(retry_delay(&c, 0, false, hour), Duration::from_secs(1));
        assert_eq!(retry_delay(&c, 3, false, hour), Duration::from_secs(8));
        assert_eq!(
            retry_delay(&c, 6, false, Duration::from_secs(8)),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry_delay(&c, 9, true, Duration::ZERO),
            Duration::from_secs(5)
        );
    }
}
