//! Keeps the trust state current: every `interval`, fetch the CA's trust bundle and CRL. The
//! CRL signature is verified once per fetch against the trusted roots; a failed fetch or a bad
//! CRL keeps the last good state.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::ca_client::CaClient;
use crate::error::Result;
use crate::events::Events;
use crate::revocation::{verify_crl, RevokedSet};
use crate::stop::Stop;
use crate::trust::TrustState;

/// One refresh round: bundle, then CRL (so a CRL signed by a newly added root verifies).
pub async fn refresh_once(ca: &CaClient, trust: &TrustState, events: &Events) -> Result<()> {
    let roots = ca.bundle().await?;
    let subjects = roots.subjects();
    if trust.set_roots(roots) {
        tracing::info!(event = "trust_bundle_updated", roots = ?subjects, "trust bundle updated: {subjects:?}");
    }
    let der = ca.crl().await?;
    let crl = verify_crl(&der, trust.roots().certs())?;
    let count = crl.serials.len();
    let current = trust.revoked();
    let changed = current
        .crls()
        .map(|c| &c.serials)
        .ne(std::iter::once(&crl.serials));
    trust.set_revoked(RevokedSet::from_crls(vec![crl]), changed);
    events.metrics.crl_fetched(OffsetDateTime::now_utc());
    if changed {
        tracing::info!(
            event = "crl_updated",
            revoked = count,
            "revocation list updated: {count} revoked certificate(s)"
        );
    }
    Ok(())
}

/// Refreshes until `stop` is requested, logging failures when they start and when they end. A
/// refresh cut short by the stop is a cancellation, not a failure: it is neither logged nor
/// counted.
pub async fn run(
    ca: CaClient,
    trust: Arc<TrustState>,
    events: Arc<Events>,
    interval: Duration,
    stop: Stop,
) {
    let mut failing = false;
    loop {
        let result = tokio::select! {
            biased;
            () = stop.wait() => return,
            r = refresh_once(&ca, &trust, &events) => r,
        };
        if stop.requested() {
            // Whatever happened, it happened while we were being stopped (the runtime may be
            // tearing down the connection under us).
            return;
        }
        match result {
            Ok(()) => {
                if failing {
                    tracing::info!(
                        event = "refresh_recovered",
                        "CA reachable again; trust bundle and CRL refreshed"
                    );
                }
                failing = false;
            }
            Err(e) => {
                events
                    .metrics
                    .crl_fetch_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if !failing {
                    tracing::warn!(event = "refresh_failed", error = %e, "cannot refresh the trust bundle / CRL: {e}; keeping the last good ones");
                }
                failing = true;
            }
        }
        tokio::select! {
            biased;
            () = stop.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
