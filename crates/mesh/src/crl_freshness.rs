//! Whether the revocation list in use can still answer "is this peer revoked?".
//!
//! A CRL says until when it is authoritative (nextUpdate). Whoever can block a service's traffic
//! to the CA could otherwise keep a revoked certificate working forever by keeping the service
//! on an old list. So: up to nextUpdate the list is fresh; past it the service keeps using it but
//! reports `degraded`; past nextUpdate + `--crl-max-staleness` it fails closed and refuses every
//! handshake that needs a revocation answer, until a fresh CRL arrives (docs/security.md).
//! A CRL without nextUpdate never goes stale; before the first CRL of an enrolled service
//! arrives, the process start stands in for nextUpdate.

use thiserror::Error;
use time::{Duration, OffsetDateTime};

use pki::timefmt::rfc3339;

/// How a service treats an old CRL. Set where a CRL is configured (enrolled mode, static mode
/// with `--crl`); without one there is no revocation answer to lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CrlPolicy {
    /// How long past nextUpdate a CRL is still used (readiness `degraded`) before the service
    /// fails closed.
    pub(crate) max_staleness: Duration,
    /// Stands in for nextUpdate while no CRL has been obtained yet (the process start).
    pub(crate) no_crl_since: OffsetDateTime,
}

/// The state of the revocation list in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrlStatus {
    /// No CRL policy, a CRL without nextUpdate, or now is not past nextUpdate.
    Fresh,
    /// Past nextUpdate but within the max staleness: still used, readiness `degraded`.
    Stale {
        /// The CRL's nextUpdate.
        next_update: OffsetDateTime,
        /// When the service will refuse every handshake.
        fail_closed_at: OffsetDateTime,
    },
    /// Past nextUpdate + max staleness: every handshake needing a revocation answer is refused,
    /// readiness `unhealthy`.
    FailingClosed {
        /// The CRL's nextUpdate.
        next_update: OffsetDateTime,
        /// The configured grace.
        max_staleness: Duration,
    },
}

impl CrlStatus {
    /// The `mesh_crl_stale` gauge: 0 fresh, 1 stale (degraded), 2 failing closed.
    pub fn gauge(&self) -> u8 {
        match self {
            CrlStatus::Fresh => 0,
            CrlStatus::Stale { .. } => 1,
            CrlStatus::FailingClosed { .. } => 2,
        }
    }

    /// `fresh`, `stale` or `failing_closed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CrlStatus::Fresh => "fresh",
            CrlStatus::Stale { .. } => "stale",
            CrlStatus::FailingClosed { .. } => "failing_closed",
        }
    }

    /// The state in words, for logs and `/readyz`; None when fresh.
    pub fn reason(&self) -> Option<String> {
        match self {
            CrlStatus::Fresh => None,
            CrlStatus::Stale {
                next_update,
                fail_closed_at,
            } => Some(format!(
                "revocation list stale: its nextUpdate {} has passed; still in use, but every \
                 handshake will be refused from {} (--crl-max-staleness) unless a fresh CRL \
                 arrives",
                rfc3339(*next_update),
                rfc3339(*fail_closed_at)
            )),
            CrlStatus::FailingClosed { .. } => Some(format!(
                "{}; every handshake is refused",
                self.error().map(|e| e.to_string()).unwrap_or_default()
            )),
        }
    }

    /// The handshake error while failing closed.
    pub fn error(&self) -> Option<CrlStaleError> {
        match self {
            CrlStatus::FailingClosed {
                next_update,
                max_staleness,
            } => Some(CrlStaleError {
                next_update: rfc3339(*next_update),
                max_staleness: pki::timefmt::human(*max_staleness),
            }),
            _ => None,
        }
    }
}

/// The decision. `next_update` is when the CRL in use stops being authoritative (None: never).
pub(crate) fn status(
    next_update: Option<OffsetDateTime>,
    max_staleness: Duration,
    now: OffsetDateTime,
) -> CrlStatus {
    let Some(next_update) = next_update else {
        return CrlStatus::Fresh;
    };
    let fail_closed_at = next_update + max_staleness;
    if now > fail_closed_at {
        CrlStatus::FailingClosed {
            next_update,
            max_staleness,
        }
    } else if now > next_update {
        CrlStatus::Stale {
            next_update,
            fail_closed_at,
        }
    } else {
        CrlStatus::Fresh
    }
}

/// When the status computed from the same `next_update` changes next (None: only a new CRL
/// changes it).
pub(crate) fn next_change(
    next_update: Option<OffsetDateTime>,
    max_staleness: Duration,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let next_update = next_update?;
    match status(Some(next_update), max_staleness, now) {
        CrlStatus::Fresh => Some(next_update),
        CrlStatus::Stale { fail_closed_at, .. } => Some(fail_closed_at),
        CrlStatus::FailingClosed { .. } => None,
    }
}

/// The refusal of a handshake while failing closed; travels inside rustls'
/// `CertificateError::Other` so the logs can name it (reason code `crl_stale`).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error(
    "revocation status unknown: the revocation list in use expired at {next_update} (nextUpdate) \
     and --crl-max-staleness {max_staleness} has passed since; refusing peers until a fresh CRL \
     arrives (enrolled: is the CA reachable? static files: replace the --crl file)"
)]
pub struct CrlStaleError {
    /// The CRL's nextUpdate, RFC 3339.
    pub next_update: String,
    /// The configured grace, in words.
    pub max_staleness: String,
}

impl CrlStaleError {
    /// Wraps the refusal for rustls.
    pub fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(self),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fresh_until_next_update_then_stale_then_failing_closed() {
        let next = datetime!(2026-11-23 14:00 UTC);
        let max = Duration::minutes(30);
        let at = |t| status(Some(next), max, t);
        assert_eq!(at(next - Duration::hours(1)), CrlStatus::Fresh);
        assert_eq!(
            at(next),
            CrlStatus::Fresh,
            "nextUpdate itself is still fresh"
        );
        let stale = CrlStatus::Stale {
            next_update: next,
            fail_closed_at: next + max,
        };
        assert_eq!(at(next + Duration::seconds(1)), stale);
        assert_eq!(at(next + max), stale, "the last moment of grace");
        let closed = at(next + max + Duration::seconds(1));
        assert_eq!(
            closed,
            CrlStatus::FailingClosed {
                next_update: next,
                max_staleness: max
            }
        );
        assert_eq!(
            (CrlStatus::Fresh.gauge(), stale.gauge(), closed.gauge()),
            (0, 1, 2)
        );
        let err = closed.error().unwrap().to_string();
        assert!(
            err.contains("2026-11-23T14:00:00Z") && err.contains("30m"),
            "{err}"
        );
        assert!(stale.reason().unwrap().contains("2026-11-23T14:30:00Z"));
        assert!(stale.error().is_none() && CrlStatus::Fresh.reason().is_none());
    }

    #[test]
    fn a_crl_without_next_update_never_goes_stale() {
        let now = datetime!(2100-01-01 0:00 UTC);
        assert_eq!(status(None, Duration::ZERO, now), CrlStatus::Fresh);
        assert_eq!(next_change(None, Duration::ZERO, now), None);
    }

    #[test]
    fn zero_staleness_fails_closed_right_after_next_update() {
        let next = datetime!(2026-11-23 14:00 UTC);
        assert_eq!(status(Some(next), Duration::ZERO, next), CrlStatus::Fresh);
        assert!(matches!(
            status(Some(next), Duration::ZERO, next + Duration::milliseconds(1)),
            CrlStatus::FailingClosed { .. }
        ));
    }

    #[test]
    fn next_change_walks_the_states() {
        let next = datetime!(2026-11-23 14:00 UTC);
        let max = Duration::minutes(30);
        let before = next - Duration::minutes(5);
        assert_eq!(next_change(Some(next), max, before), Some(next));
        assert_eq!(
            next_change(Some(next), max, next + Duration::minutes(1)),
            Some(next + max)
        );
        assert_eq!(
            next_change(Some(next), max, next + Duration::hours(1)),
            None
        );
    }
}
