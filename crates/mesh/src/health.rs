//! Readiness from the certificate's remaining lifetime (DESIGN §3): ready, degraded under 10%
//! of the lifetime left (renewal is overdue, probably because the CA is unreachable), unhealthy
//! once expired.

use time::OffsetDateTime;

use crate::credentials::Credential;

/// Below this share of the lifetime left, readiness reports `degraded`.
pub const DEGRADED_BELOW: f64 = 0.10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Degraded,
    Unhealthy,
}

impl Readiness {
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::Degraded => "degraded",
            Readiness::Unhealthy => "unhealthy",
        }
    }
}

/// Readiness of a service presenting `cred` at `now`, with the share of lifetime left.
pub fn readiness(cred: &Credential, now: OffsetDateTime) -> (Readiness, f64) {
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

/// Logs every readiness change (ready -> degraded -> unhealthy and back after a rotation), at
/// the moment it happens: no polling.
pub async fn log_transitions(identity: std::sync::Arc<crate::credentials::Identity>) {
    let mut changes = identity.subscribe();
    let mut last: Option<Readiness> = None;
    loop {
        let cred = identity.current();
        let now = OffsetDateTime::now_utc();
        let (state, left) = readiness(&cred, now);
        if last != Some(state) {
            let msg = format!(
                "readiness {}: certificate {} has {:.0}% of its lifetime left (expires {})",
                state.as_str(),
                cred.info.serial_hex,
                left * 100.0,
                crate::timefmt::rfc3339(cred.info.not_after)
            );
            match state {
                Readiness::Ready => {
                    tracing::info!(event = "readiness", status = state.as_str(), "{msg}")
                }
                _ => tracing::warn!(event = "readiness", status = state.as_str(), "{msg}"),
            }
            last = Some(state);
        }
        let wake = next_transition(&cred, state);
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = async {
                match wake {
                    // A few milliseconds late, so the new state holds when we look again.
                    Some(t) => tokio::time::sleep(crate::timefmt::until(t, OffsetDateTime::now_utc()) + std::time::Duration::from_millis(5)).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}
