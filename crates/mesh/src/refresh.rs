//! Keeps the trust state current: every `interval`, fetch the CA's trust bundle and CRL. A new
//! root is accepted only when a root trusted now vouches for it (`trust_bundle`); a refused
//! bundle keeps the current roots. The CRL signature is verified once per fetch against the
//! trusted roots; a failed fetch or a bad CRL keeps the last good state.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::ca_client::CaClient;
use crate::error::Result;
use crate::events::Events;
use crate::stop::Stop;
use crate::trust::TrustState;
use crate::trust_bundle::accept_bundle;
use pki::crl::{verify_crl, RevokedSet};

/// The refresher of one service.
pub struct Refresher {
    ca: CaClient,
    trust: Arc<TrustState>,
    events: Arc<Events>,
    /// SHA-256 of the last bundle refused, so one bad bundle served again and again is logged
    /// once (it is counted every time).
    last_refused: Option<String>,
}

impl Refresher {
    pub fn new(ca: CaClient, trust: Arc<TrustState>, events: Arc<Events>) -> Refresher {
        Refresher {
            ca,
            trust,
            events,
            last_refused: None,
        }
    }

    /// One refresh round: bundle, then CRL (so a CRL signed by a newly added root verifies).
    /// A refused bundle does not end the round: the CRL is still checked against the roots
    /// kept.
    pub async fn refresh_once(&mut self) -> Result<()> {
        let bundle = self.ca.bundle().await?;
        self.apply_bundle(&bundle, OffsetDateTime::now_utc());
        let der = self.ca.crl().await?;
        let crl = verify_crl(&der, self.trust.roots().certs())?;
        let count = crl.serials.len();
        let current = self.trust.revoked();
        let changed = current
            .crls()
            .map(|c| &c.serials)
            .ne(std::iter::once(&crl.serials));
        self.trust
            .set_revoked(RevokedSet::from_crls(vec![crl]), changed);
        self.events.metrics.crl_fetched(OffsetDateTime::now_utc());
        if changed {
            tracing::info!(
                event = "crl_updated",
                revoked = count,
                "revocation list updated: {count} revoked certificate(s)"
            );
        }
        Ok(())
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

    /// Refreshes until `stop` is requested, logging failures when they start and when they end.
    /// A refresh cut short by the stop is a cancellation, not a failure: it is neither logged
    /// nor counted.
    pub async fn run(mut self, interval: Duration, stop: Stop) {
        let mut failing = false;
        loop {
            let result = tokio::select! {
                biased;
                () = stop.wait() => return,
                r = self.refresh_once() => r,
            };
            if stop.requested() {
                // Whatever happened, it happened while we were being stopped (the runtime may
                // be tearing down the connection under us).
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
                    self.events
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::https::HttpsUrl;
    use crate::tls::TlsPolicy;
    use crate::trust::Roots;
    use pki::CaMaterial;

    fn pem(certs: &[&[u8]]) -> Vec<u8> {
        certs
            .iter()
            .map(|c| pki::pem::encode("CERTIFICATE", c))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn a_refused_bundle_keeps_the_roots_and_is_counted_every_time() {
        let now = OffsetDateTime::now_utc();
        let ours = CaMaterial::generate_root("Mesh Root", now).unwrap();
        let injected = CaMaterial::generate_root("Injected Root", now).unwrap();
        let next = CaMaterial::generate_root("Next Mesh Root", now).unwrap();
        let trust = TrustState::new(Roots::new(vec![ours.cert_der().clone()]).unwrap());
        let events = Events::new();
        let td = pki::TrustDomain::parse("mesh.local").unwrap();
        let ca = CaClient::new(
            HttpsUrl::parse("https://localhost:1").unwrap(),
            trust.clone(),
            TlsPolicy::default(),
            &td,
        );
        let mut refresher = Refresher::new(ca, trust.clone(), events.clone());
        let before = trust.roots().fingerprints();

        let bad = pem(&[ours.cert_der(), injected.cert_der()]);
        assert!(!refresher.apply_bundle(&bad, now));
        assert!(!refresher.apply_bundle(&bad, now));
        assert_eq!(trust.roots().fingerprints(), before);
        assert_eq!(events.metrics.bundles_refused("unvouched_root"), 2);
        let dropped = pem(&[injected.cert_der()]);
        assert!(!refresher.apply_bundle(&dropped, now));
        assert_eq!(events.metrics.bundles_refused("drops_all_roots"), 1);
        assert_eq!(trust.roots().fingerprints(), before);
        let text = events.metrics.render(None, Some(&trust));
        assert!(
            text.contains("mesh_trust_bundle_refused_total{reason=\"unvouched_root\"} 2"),
            "{text}"
        );

        // A root vouched for by ours is taken.
        let cross = ours.cross_sign(next.cert_der(), now).unwrap();
        assert!(refresher.apply_bundle(&pem(&[ours.cert_der(), next.cert_der(), &cross]), now));
        assert_eq!(trust.roots().certs().len(), 2);
    }
}
