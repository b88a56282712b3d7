//! The refresher on tokio's paused clock against the in-process CA: a revocation reaches the
//! trust state at the next round, a CA out of reach makes the CRL stale (degraded) and then
//! fails closed, and everything recovers at the first good round.

use std::time::Duration;

use time::OffsetDateTime;

use super::*;
use crate::crl_freshness::CrlStatus;
use crate::health::{assess, Readiness};
use crate::refresh::run;
use crate::stop::Stop;
use crate::testing::World;
use crate::tls::{post_path_checks, CrlFreshness};
use pki::CaMaterial;

const INTERVAL: Duration = Duration::from_secs(5);

fn pem(certs: &[&[u8]]) -> Vec<u8> {
    certs
        .iter()
        .map(|c| pki::pem::encode("CERTIFICATE", c))
        .collect::<String>()
        .into_bytes()
}

#[tokio::test(start_paused = true)]
async fn a_stale_crl_degrades_then_fails_closed_and_recovers() {
    let w = World::new(time::Duration::hours(24));
    let max_staleness = time::Duration::minutes(30);
    let trust = w.trust_with_crl_policy(max_staleness);
    let events = Events::new();
    let peer = w.credential();
    let refresher = Refresher::new(w.ca.clone(), trust.clone(), events.clone(), INTERVAL);
    let stop = Stop::new();
    let mut changes = trust.subscribe();
    let task = stop.spawn(run(refresher, stop.clone()));
    let checks =
        |trust: &TrustState| post_path_checks(&peer.chain[0], trust, false, CrlFreshness::Enforce);

    // The first round publishes the CA's CRL.
    next_change(&mut changes).await;
    assert_eq!(trust.crl_status(), CrlStatus::Fresh);
    assert!(checks(&trust).is_ok());
    let next_update = trust.crl_next_update().expect("a nextUpdate");

    // A revocation reaches the service at the next round.
    w.ca.revoke(&peer.info.serial_hex);
    let revoked_at = w.clock.now();
    next_change(&mut changes).await;
    assert!(w.clock.now() - revoked_at <= time::Duration::try_from(INTERVAL).unwrap());
    assert!(trust.revoked().is_cert_revoked(&peer.chain[0]));
    let err = checks(&trust).unwrap_err();
    assert!(matches!(
        err,
        rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
    ));

    // The CA goes away: the last CRL stays in use until its nextUpdate ...
    w.ca.set_down(true);
    let last_good = trust.crl_next_update().expect("a nextUpdate");
    assert!(last_good >= next_update);
    sleep_until(&w, last_good - time::Duration::SECOND).await;
    assert_eq!(trust.crl_status(), CrlStatus::Fresh);
    // ... then is stale (degraded, still used) ...
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(matches!(trust.crl_status(), CrlStatus::Stale { .. }));
    let health = assess(&w.credential(), Some(&trust), w.clock.now());
    assert_eq!(health.state, Readiness::Degraded);
    assert!(health.reason.unwrap().contains("revocation list stale"));
    // ... and past nextUpdate + max staleness every handshake is refused.
    sleep_until(&w, last_good + max_staleness - time::Duration::SECOND).await;
    assert!(matches!(trust.crl_status(), CrlStatus::Stale { .. }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(matches!(
        trust.crl_status(),
        CrlStatus::FailingClosed { .. }
    ));
    assert_eq!(
        assess(&w.credential(), Some(&trust), w.clock.now()).state,
        Readiness::Unhealthy
    );
    let fresh_peer = w.credential();
    let refused =
        post_path_checks(&fresh_peer.chain[0], &trust, false, CrlFreshness::Enforce).unwrap_err();
    assert!(
        crate::tls::server_reason_code(&refused) == "crl_stale",
        "{refused:?}"
    );
    // The CA client itself is exempt: fetching a fresh CRL is the cure.
    assert!(post_path_checks(&fresh_peer.chain[0], &trust, false, CrlFreshness::Exempt).is_ok());
    let failures = events.metrics.crl_fetch_failures.load(Ordering::Relaxed);
    assert!(failures > 300, "{failures} failed rounds counted");

    // The CA comes back: the first good round heals everything.
    // (A CRL with the same entries changes no revocation, so wait for the CRL install itself.)
    let mut installs = trust.subscribe_crl();
    installs.borrow_and_update();
    w.ca.set_down(false);
    let back_at = w.clock.now();
    next_change(&mut installs).await;
    assert!(w.clock.now() - back_at <= time::Duration::try_from(INTERVAL).unwrap());
    assert_eq!(trust.crl_status(), CrlStatus::Fresh);
    assert!(post_path_checks(&fresh_peer.chain[0], &trust, false, CrlFreshness::Enforce).is_ok());
    assert_eq!(
        assess(&w.credential(), Some(&trust), w.clock.now()).state,
        Readiness::Ready
    );
    crate::stop::stop_and_join(&stop, vec![task], Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn before_the_first_crl_the_start_stands_in_for_next_update() {
    let w = World::new(time::Duration::hours(24));
    let trust = w.trust_with_crl_policy(time::Duration::minutes(30));
    w.ca.set_down(true);
    let refresher = Refresher::new(w.ca.clone(), trust.clone(), Events::new(), INTERVAL);
    let stop = Stop::new();
    let task = stop.spawn(run(refresher, stop.clone()));
    // Staleness is a function of time: the paused clock crosses each deadline.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(matches!(trust.crl_status(), CrlStatus::Stale { .. }));
    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    assert!(matches!(
        trust.crl_status(),
        CrlStatus::FailingClosed { .. }
    ));
    let mut installs = trust.subscribe_crl();
    installs.borrow_and_update();
    w.ca.set_down(false);
    let back_at = w.clock.now();
    next_change(&mut installs).await;
    assert!(w.clock.now() - back_at <= time::Duration::try_from(INTERVAL).unwrap());
    assert_eq!(trust.crl_status(), CrlStatus::Fresh);
    crate::stop::stop_and_join(&stop, vec![task], Duration::from_secs(1)).await;
}

/// Waits (on the paused clock) for the trust state to publish a change (a revocation set, or a
/// CRL installed); a refresh round that should have published one and did not fails the test
/// after two intervals.
async fn next_change(changes: &mut tokio::sync::watch::Receiver<u64>) {
    tokio::time::timeout(INTERVAL * 2, changes.changed())
        .await
        .expect("no trust change within two refresh intervals")
        .expect("the trust state is alive");
}

/// Moves the paused clock to `t`: staleness is a function of time, so the test crosses each
/// deadline rather than waiting for an event.
async fn sleep_until(w: &World, t: OffsetDateTime) {
    tokio::time::sleep(pki::timefmt::until(t, w.clock.now())).await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_bundle_keeps_the_roots_and_is_counted_every_time() {
    let w = World::new(time::Duration::hours(1));
    let now = w.clock.now();
    let ours = &w.ca.root;
    let injected = CaMaterial::generate_root("Injected Root", now).unwrap();
    let next = CaMaterial::generate_root("Next Mesh Root", now).unwrap();
    let events = Events::new();
    let mut refresher = Refresher::new(w.ca.clone(), w.trust.clone(), events.clone(), INTERVAL);
    let before = w.trust.roots().fingerprints();

    let bad = pem(&[ours.cert_der(), injected.cert_der()]);
    assert!(!refresher.apply_bundle(&bad, now));
    assert!(!refresher.apply_bundle(&bad, now));
    assert_eq!(w.trust.roots().fingerprints(), before);
    assert_eq!(events.metrics.bundles_refused("unvouched_root"), 2);
    let dropped = pem(&[injected.cert_der()]);
    assert!(!refresher.apply_bundle(&dropped, now));
    assert_eq!(events.metrics.bundles_refused("drops_all_roots"), 1);
    assert_eq!(w.trust.roots().fingerprints(), before);
    let text = events
        .metrics
        .render(&crate::metrics::Gauges::default(), now);
    assert!(
        text.contains("mesh_trust_bundle_refused_total{reason=\"unvouched_root\"} 2"),
        "{text}"
    );

    // A root vouched for by ours is taken.
    let cross = ours.cross_sign(next.cert_der(), now).unwrap();
    assert!(refresher.apply_bundle(&pem(&[ours.cert_der(), next.cert_der(), &cross]), now));
    assert_eq!(w.trust.roots().certs().len(), 2);
}

/// A CA after `mtls-ca root activate`: its default CRL is the new root's, the bundle holds both
/// roots (the new one vouched for by the old), and the old root (`FakeCa`) still signs the CRL
/// for its own leaves, served as `crl_of(<old root's fingerprint>)`.
struct ActivatedCa {
    old: std::sync::Arc<crate::testing::FakeCa>,
    new: CaMaterial,
    clock: Arc<dyn Clock>,
    number: std::sync::atomic::AtomicU64,
}

impl crate::ca_client::CaApi for ActivatedCa {
    fn sign<'a>(
        &'a self,
        _csr_pem: &'a str,
        _token: &'a str,
        _requested_id: &'a pki::SpiffeId,
        _ttl: Option<Duration>,
    ) -> crate::ca_client::CaFuture<'a, crate::ca_client::SignResponse> {
        // Never called by the refresher; an error (not a panic) if it ever is.
        Box::pin(async {
            Err(
                crate::testing::Fail::Refused(501, "the refresher does not sign")
                    .error("/api/v1/sign"),
            )
        })
    }

    fn renew<'a>(
        &'a self,
        _csr_pem: &'a str,
        _ttl: Option<Duration>,
        _current: Arc<rustls::sign::CertifiedKey>,
    ) -> crate::ca_client::CaFuture<'a, crate::ca_client::SignResponse> {
        // Never called by the refresher; an error (not a panic) if it ever is.
        Box::pin(async {
            Err(
                crate::testing::Fail::Refused(501, "the refresher does not renew")
                    .error("/api/v1/renew"),
            )
        })
    }

    fn crl(&self) -> crate::ca_client::CaFuture<'_, Vec<u8>> {
        Box::pin(async move {
            let now = self.clock.now();
            let number = self.number.fetch_add(1, Ordering::Relaxed) + 1;
            Ok(
                pki::crl::sign_crl(&self.new, &[], number, now, now + time::Duration::HOUR)
                    .expect("CRL"),
            )
        })
    }

    fn crl_of<'a>(
        &'a self,
        root_fingerprint: &'a str,
    ) -> crate::ca_client::CaFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            if root_fingerprint == self.old.root.fingerprint() {
                self.old.crl().await.map(Some)
            } else {
                Ok(None)
            }
        })
    }

    fn bundle(&self) -> crate::ca_client::CaFuture<'_, Vec<u8>> {
        Box::pin(async move {
            let now = self.clock.now();
            let cross = self.old.root.cross_sign(self.new.cert_der(), now).unwrap();
            Ok(pem(&[
                self.new.cert_der(),
                self.old.root.cert_der(),
                &cross,
            ]))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn during_a_root_rotation_the_old_roots_own_crl_is_fetched_and_kept() {
    let w = World::new(time::Duration::hours(1));
    let now = w.clock.now();
    let peer = w.credential(); // a leaf of the old root
    let ca = Arc::new(ActivatedCa {
        old: w.ca.clone(),
        new: CaMaterial::generate_root("mtls-mesh Root CA 2", now).unwrap(),
        clock: w.clock.clone(),
        number: Default::default(),
    });
    let events = Events::new();
    let mut refresher = Refresher::new(ca.clone(), w.trust.clone(), events, INTERVAL);

    w.ca.revoke(&peer.info.serial_hex);
    refresher.refresh_once().await.unwrap();
    assert_eq!(w.trust.roots().certs().len(), 2, "the new root is trusted");
    // The default CRL (the new root's) cannot cover the old root's leaf; its own CRL does.
    assert!(w.trust.revoked().is_cert_revoked(&peer.chain[0]));
    assert_eq!(w.trust.revoked().crls().count(), 2);

    // The old root's CRL cannot be fetched: the last good one is kept (and ages), not dropped.
    w.ca.set_down(true);
    refresher.refresh_once().await.unwrap();
    assert!(w.trust.revoked().is_cert_revoked(&peer.chain[0]));
}
