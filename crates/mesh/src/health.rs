//! Readiness (docs/rotation.md): from the certificate's remaining lifetime (ready, degraded
//! under 10% of the lifetime left, unhealthy once expired) and from the revocation list in use
//! (degraded past its nextUpdate, unhealthy once the service fails closed past
//! `--crl-max-staleness`, `crl_freshness`). The worse of the two wins.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::clock::Clock;
use crate::credentials::{Credential, Identity};
use crate::crl_freshness::CrlStatus;
use crate::trust::TrustState;

/// Below this share of the lifetime left, readiness reports `degraded`.
pub const DEGRADED_BELOW: f64 = 0.10;

/// Whether a service can do its job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Readiness {
    /// Certificate and revocation list are fine.
    Ready,
    /// Working, but renewal is overdue or the revocation list is past its nextUpdate.
    Degraded,
    /// The certificate expired, or the revocation list is too stale to answer: every
    /// handshake fails.
    Unhealthy,
}

impl Readiness {
    /// `ready`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::Degraded => "degraded",
            Readiness::Unhealthy => "unhealthy",
        }
    }
}

/// Readiness of a service presenting `cred` at `now`, with the share of lifetime left.
pub(crate) fn readiness(cred: &Credential, now: OffsetDateTime) -> (Readiness, f64) {
    let left = pki::renewal::remaining_fraction(now, cred.info.not_before, cred.info.not_after);
    let state = if now >= cred.info.not_after {
        Readiness::Unhealthy
    } else if left < DEGRADED_BELOW {
        Readiness::Degraded
    } else {
        Readiness::Ready
    };
    (state, left)
}

/// What the revocation list's state does to readiness.
pub(crate) fn crl_readiness(status: &CrlStatus) -> Readiness {
    match status {
        CrlStatus::Fresh => Readiness::Ready,
        CrlStatus::Stale { .. } => Readiness::Degraded,
        CrlStatus::FailingClosed { .. } => Readiness::Unhealthy,
    }
}

/// The whole picture for `/readyz` and the health log.
#[derive(Clone, Debug)]
pub struct Health {
    /// The verdict: the worse of the certificate's and the revocation list's.
    pub state: Readiness,
    /// Share of the certificate's lifetime left.
    pub lifetime_left: f64,
    /// The revocation list's state (fresh without a CRL policy).
    pub crl: CrlStatus,
    /// Why the service is not `ready` (None when it is).
    pub reason: Option<String>,
}

/// Readiness of a service presenting `cred` and trusting `trust`, at `now`.
pub(crate) fn assess(cred: &Credential, trust: Option<&TrustState>, now: OffsetDateTime) -> Health {
    let (cert_state, left) = readiness(cred, now);
    let crl = trust.map_or(CrlStatus::Fresh, |t| t.crl_status_at(now));
    let mut reasons = Vec::new();
    match cert_state {
        Readiness::Ready => {}
        Readiness::Degraded => reasons.push(format!(
            "certificate {} has {:.0}% of its lifetime left (renewal overdue; is the CA \
             reachable?)",
            cred.info.serial_hex,
            left * 100.0
        )),
        Readiness::Unhealthy => reasons.push(format!(
            "certificate {} expired at {}",
            cred.info.serial_hex,
            pki::timefmt::rfc3339(cred.info.not_after)
        )),
    }
    reasons.extend(crl.reason());
    Health {
        state: cert_state.max(crl_readiness(&crl)),
        lifetime_left: left,
        crl,
        reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
    }
}

/// When the readiness of `cred` changes next (None once it is unhealthy: only a new certificate
/// changes it then).
fn next_transition(cred: &Credential, state: Readiness) -> Option<OffsetDateTime> {
    let lifetime = cred.info.not_after - cred.info.not_before;
    match state {
        Readiness::Ready => Some(cred.info.not_after - lifetime * DEGRADED_BELOW),
        Readiness::Degraded => Some(cred.info.not_after),
        Readiness::Unhealthy => None,
    }
}

/// Logs the revocation list's state when it changes.
fn log_crl_status(status: &CrlStatus) {
    match status {
        CrlStatus::Fresh => tracing::info!(
            event = "crl_fresh",
            state = status.as_str(),
            "revocation list fresh again; handshakes are checked against it normally"
        ),
        CrlStatus::Stale { .. } => tracing::warn!(
            event = "crl_stale",
            state = status.as_str(),
            "{}",
            status.reason().unwrap_or_default()
        ),
        CrlStatus::FailingClosed { .. } => tracing::error!(
            event = "crl_stale",
            state = status.as_str(),
            "{}",
            status.reason().unwrap_or_default()
        ),
    }
}

/// Logs every readiness change (ready -> degraded -> unhealthy and back after a rotation or a
/// fresh CRL) and every change of the revocation list's state, at the moment it happens: no
/// polling. Wakes at the next planned transition, on a new certificate and on a new CRL.
pub(crate) async fn log_transitions(
    identity: Arc<Identity>,
    trust: Option<Arc<TrustState>>,
    clock: Arc<dyn Clock>,
) {
    let mut cert_changes = identity.subscribe();
    let mut crl_changes = trust.as_ref().map(|t| t.subscribe_crl());
    let mut last: Option<Readiness> = None;
    let mut last_crl = CrlStatus::Fresh;
    loop {
        let cred = identity.current();
        let now = clock.now();
        let health = assess(&cred, trust.as_deref(), now);
        if health.crl.as_str() != last_crl.as_str() {
            log_crl_status(&health.crl);
            last_crl = health.crl;
        }
        if last != Some(health.state) {
            let msg = format!(
                "readiness {}: certificate {} has {:.0}% of its lifetime left (expires {}){}",
                health.state.as_str(),
                cred.info.serial_hex,
                health.lifetime_left * 100.0,
                pki::timefmt::rfc3339(cred.info.not_after),
                // The certificate's part is said already; add the revocation list's.
                health
                    .crl
                    .reason()
                    .map(|r| format!("; {r}"))
                    .unwrap_or_default()
            );
            match health.state {
                Readiness::Ready => {
                    tracing::info!(event = "readiness", status = health.state.as_str(), "{msg}")
                }
                _ => tracing::warn!(event = "readiness", status = health.state.as_str(), "{msg}"),
            }
            last = Some(health.state);
        }
        let (cert_state, _) = readiness(&cred, now);
        let wake = [
            next_transition(&cred, cert_state),
            trust.as_ref().and_then(|t| t.crl_next_change(now)),
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            changed = cert_changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            changed = async {
                match crl_changes.as_mut() {
                    Some(rx) => rx.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if changed.is_err() {
                    return;
                }
            }
            _ = async {
                match wake {
                    // A few milliseconds late, so the new state holds when we look again.
                    Some(t) => tokio::time::sleep(pki::timefmt::until(t, clock.now()) + std::time::Duration::from_millis(5)).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}
