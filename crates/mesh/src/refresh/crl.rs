//! Keeps the trust state of an enrolled service current: every `interval`, fetch the CA's trust
//! bundle and CRL. A new root is accepted only when a root trusted now vouches for it
//! (`trust_bundle`); a refused bundle keeps the current roots. The CRL signature is verified
//! once per fetch against the trusted roots and the intermediates of the service's own
//! validated certificates (`TrustState::crl_issuers`, `pki::crl`); a failed fetch or a bad CRL keeps the
//! last good state, which goes stale and then fails closed by the CRL freshness rule
//! (`crl_freshness`) if the CA stays out of reach.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pki::crl::{verify_crl, RevokedSet, VerifiedCrl};
use time::OffsetDateTime;

use crate::ca_client::CaApi;
use crate::clock::Clock;
use crate::error::Result;
use crate::events::Events;
use crate::refresh::Refresh;
use crate::trust::TrustState;
use crate::trust_bundle::accept_bundle;

/// The CRL and trust bundle refresher of one service.
pub(crate) struct Refresher {
    ca: Arc<dyn CaApi>,
    trust: Arc<TrustState>,
    events: Arc<Events>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    /// SHA-256 of the last bundle refused, so one bad bundle served again and again is logged
    /// once (it is counted every time).
    last_refused: Option<String>,
    /// The last round failed (logged when failures start and when they end).
    failing: bool,
    /// Our own trust domain, where the federated bundles are refreshed too.
    federation: Option<pki::TrustDomain>,
}

impl Refresher {
    pub(crate) fn new(
        ca: Arc<dyn CaApi>,
        trust: Arc<TrustState>,
        events: Arc<Events>,
        interval: Duration,
    ) -> Refresher {
        let clock = trust.clock().clone();
        Refresher {
            ca,
            trust,
            events,
            clock,
            interval,
            last_refused: None,
            failing: false,
            federation: None,
        }
    }

    /// Also refreshes the federated bundles (`refresh::federated`) of a service of trust
    /// domain `own`.
    pub(crate) fn with_federation(mut self, own: pki::TrustDomain) -> Refresher {
        self.federation = Some(own);
        self
    }

    /// One refresh: bundle, then CRL (so a CRL signed by a newly added root verifies). A
    /// refused bundle does not end the round: the CRL is still checked against the roots kept.
    pub(crate) async fn refresh_once(&mut self) -> Result<()> {
        let bundle = self.ca.bundle().await?;
        self.apply_bundle(&bundle, self.clock.now());
        let der = self.ca.crl().await?;
        let crl = verify_crl(&der, &self.trust.crl_issuers())?;
        let count = crl.serials.len();
        let number = hex::encode(&crl.crl_number);
        let current = self.trust.revoked();
        let mut crls = self
            .other_root_crls(&crl.issuer_fingerprint, &current)
            .await;
        crls.push(crl);
        let next = RevokedSet::from_crls(crls);
        let changed = !same_serials(&current, &next);
        self.trust.set_revoked(next, changed);
        self.events.metrics.crl_fetched(self.clock.now());
        tracing::debug!(
            event = "crl_fetched",
            revoked = count,
            crl_number = %number,
            "revocation list fetched: CRL number {number}, {count} revoked certificate(s)"
        );
        if changed {
            tracing::info!(
                event = "crl_updated",
                revoked = count,
                crl_number = %number,
                "revocation list updated: {count} revoked certificate(s)"
            );
        }
        if let Some(own) = &self.federation {
            if let Some(body) = self.ca.federated_bundles().await? {
                super::federated::apply(&self.trust, own, &body);
            }
        }
        Ok(())
    }

    /// The CRLs of the trusted roots other than `main_issuer` (hex SHA-256): during a root
    /// rotation the old root still signs one for its own leaves, and a CRL covers only its
    /// issuer's certificates. A root the CA signs no CRL as (404) gets none; when the fetch or
    /// the check fails, the CRL held for that root is kept, so it ages and the freshness rule
    /// (`crl_freshness`) fails closed as it does for the main CRL.
    async fn other_root_crls(&self, main_issuer: &str, held: &RevokedSet) -> Vec<VerifiedCrl> {
        let mut out = Vec::new();
        let roots = self.trust.roots();
        for root in roots.certs() {
            let fingerprint = pki::sha256_hex(root);
            if fingerprint == main_issuer {
                continue;
            }
            let fetched = match self.ca.crl_of(&fingerprint).await {
                Ok(None) => continue,
                Ok(Some(der)) => {
                    verify_crl(&der, std::slice::from_ref(root)).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            match fetched {
                Ok(crl) => out.push(crl),
                Err(error) => {
                    tracing::warn!(
                        event = "crl_fetch_failed",
                        root = %fingerprint,
                        error = %error,
                        "cannot refresh the CRL of the root {fingerprint}: {error}; keeping the last good one"
                    );
                    out.extend(
                        held.crls()
                            .filter(|c| c.issuer_fingerprint == fingerprint)
                            .cloned(),
                    );
                }
            }
        }
        out
    }

    /// Takes the roots of `bundle` that `accept_bundle` allows, or keeps the current ones and
    /// reports the refusal. Returns true when the bundle was accepted.
    fn apply_bundle(&mut self, bundle: &[u8], now: OffsetDateTime) -> bool {
        match accept_bundle(&self.trust.roots(), bundle, now) {
            Ok(roots) => {
                self.last_refused = None;
                let subjects = roots.subjects();
                if self.trust.set_roots(roots) {
                    tracing::info!(event = "trust_bundle_updated", roots = ?subjects, "trust bundle updated: {subjects:?}");
                }
                true
            }
            Err(refusal) => {
                let digest = pki::sha256_hex(bundle);
                let first_time = self.last_refused.as_deref() != Some(digest.as_str());
                self.events.bundle_refused(&refusal, first_time);
                self.last_refused = Some(digest);
                false
            }
        }
    }
}

impl Refresh for Refresher {
    /// Refreshes once, logging failures when they start and when they end.
    async fn round(&mut self) -> Duration {
        match self.refresh_once().await {
            Ok(()) => {
                if self.failing {
                    tracing::info!(
                        event = "refresh_recovered",
                        "CA reachable again; trust bundle and CRL refreshed"
                    );
                }
                self.failing = false;
            }
            Err(e) => {
                self.events
                    .metrics
                    .crl_fetch_failures
                    .fetch_add(1, Ordering::Relaxed);
                if !self.failing {
                    tracing::warn!(event = "refresh_failed", error = %e, "cannot refresh the trust bundle / CRL: {e}; keeping the last good ones");
                }
                self.failing = true;
            }
        }
        self.interval
    }
}

/// True when both sets hold the same issuers with the same revoked serials (only dates or
/// CRL numbers may differ).
fn same_serials(a: &RevokedSet, b: &RevokedSet) -> bool {
    a.crls().count() == b.crls().count()
        && a.crls().all(|x| {
            b.crls()
                .any(|y| y.issuer_raw == x.issuer_raw && y.serials == x.serials)
        })
}

#[cfg(test)]
mod tests;
