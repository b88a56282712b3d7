//! Rotation (docs/design.md §3, docs/rotation.md): renew at `rotate_at` of the lifetime with
//! ±10% jitter, publish only a validated certificate, back off while the CA is unreachable
//! (tightening as expiry nears), and after expiry re-enroll once a fresh join token is
//! available.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use pki::timefmt::until;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::credentials::{Credential, Identity};
use crate::enroll::Enroller;
use crate::events::Events;
use crate::refresh::Refresh;

/// Jitter bound as a fraction of the lifetime.
pub(crate) const JITTER: f64 = 0.1;

/// How often the token file is re-read while the certificate is expired.
pub(crate) const TOKEN_POLL: Duration = Duration::from_secs(1);

/// First retry delay after a failed renewal; doubles per attempt.
const RETRY_BASE: Duration = Duration::from_secs(1);

/// A uniformly random jitter in [-JITTER, JITTER].
pub(crate) fn random_jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.0;
    }
    let unit = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    (unit * 2.0 - 1.0) * JITTER
}

/// When `cred` should be renewed.
pub(crate) fn next_rotation(cred: &Credential, rotate_at: f64, jitter: f64) -> OffsetDateTime {
    pki::renewal::renewal_time(cred.info.not_before, cred.info.not_after, rotate_at, jitter)
}

/// The rotation loop of an enrolled service.
pub(crate) struct Rotation {
    enroller: Arc<Enroller>,
    identity: Arc<Identity>,
    events: Arc<Events>,
    clock: Arc<dyn Clock>,
    rotate_at: f64,
    jitter: f64,
    /// Failed attempts at renewing the current certificate.
    attempt: u32,
    told_about_token: bool,
    /// The next planned rotation, for `Mesh::next_rotation`.
    next: watch::Sender<Option<OffsetDateTime>>,
}

impl Rotation {
    pub(crate) fn new(
        enroller: Arc<Enroller>,
        identity: Arc<Identity>,
        events: Arc<Events>,
        clock: Arc<dyn Clock>,
        rotate_at: f64,
        jitter: f64,
    ) -> Rotation {
        let first = next_rotation(&identity.current(), rotate_at, jitter);
        Rotation {
            enroller,
            identity,
            events,
            clock,
            rotate_at,
            jitter,
            attempt: 0,
            told_about_token: false,
            next: watch::channel(Some(first)).0,
        }
    }

    /// Follows the next planned rotation.
    pub(crate) fn next_rotation(&self) -> watch::Receiver<Option<OffsetDateTime>> {
        self.next.subscribe()
    }
}

impl Refresh for Rotation {
    async fn round(&mut self) -> Duration {
        let current = self.identity.current();
        let now = self.clock.now();
        let due = next_rotation(&current, self.rotate_at, self.jitter);
        if now < due {
            return until(due, now);
        }
        let expired = now >= current.info.not_after;
        if expired && !self.enroller.fresh_token_available() {
            // Renewal is impossible with an expired certificate. Wait for the operator to put
            // a new token in the token file; reading a small file is cheap.
            if !self.told_about_token {
                self.events.rotation_failed(
                    &format!(
                        "the certificate expired at {}; renewal needs a fresh join token \
                         (write one to --join-token-file)",
                        pki::timefmt::rfc3339(current.info.not_after)
                    ),
                    TOKEN_POLL,
                    Duration::ZERO,
                );
                self.told_about_token = true;
            }
            return TOKEN_POLL;
        }
        let (result, how) = if expired {
            (
                self.enroller.enroll().await,
                "re-enrolled with a fresh join token",
            )
        } else {
            (self.enroller.renew(&current).await, "renewed")
        };
        match result {
            Ok(next) => {
                self.jitter = random_jitter();
                let next_at = next_rotation(&next, self.rotate_at, self.jitter);
                let old = self.identity.publish(next);
                self.events
                    .rotated(&old, &self.identity.current(), Some(next_at), how);
                self.next.send_replace(Some(next_at));
                self.attempt = 0;
                self.told_about_token = false;
                until(next_at, self.clock.now())
            }
            Err(e) => {
                let left = until(current.info.not_after, self.clock.now());
                let delay = retry_delay(self.attempt, expired, left);
                self.events.rotation_failed(&e.to_string(), delay, left);
                self.attempt = self.attempt.saturating_add(1);
                delay
            }
        }
    }
}

/// The wait before the next attempt: doubling from one second, never more than a quarter of
/// the lifetime left (so attempts tighten toward expiry), at most 5 s once expired.
fn retry_delay(attempt: u32, expired: bool, left: Duration) -> Duration {
    if expired {
        return (RETRY_BASE * 2u32.saturating_pow(attempt.min(5))).min(Duration::from_secs(5));
    }
    let base = time::Duration::try_from(RETRY_BASE).unwrap_or(time::Duration::SECOND);
    let left = time::Duration::try_from(left).unwrap_or(time::Duration::ZERO);
    Duration::try_from(pki::renewal::retry_delay(attempt, base, left)).unwrap_or(RETRY_BASE)
}

#[cfg(test)]
mod tests;
