//! What a service trusts right now: the root bundle and the revocation set. Both are swapped
//! atomically when a refresh brings something new; every change bumps a generation that open
//! connections watch, so a connection whose peer was just revoked can be closed. Where a CRL is
//! configured, the trust state also knows how stale a list may get (`crl_freshness`), by its
//! clock.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::crl_freshness::{self, CrlPolicy};
use crate::error::{Result, TrustError};
use crate::federation::{FederatedBundles, FederatedCallers};
use crate::peer_anchor::RootKey;
use pki::crl::RevokedSet;

pub use crate::crl_freshness::{CrlStaleError, CrlStatus};

/// A set of trusted root certificates.
#[derive(Clone, Debug)]
pub struct Roots {
    certs: Vec<CertificateDer<'static>>,
    store: Arc<RootCertStore>,
    /// Subject, key identifier and SPKI hash of each root, read once here: open connections
    /// check their peer's roots against them at every trust change (`peer_anchor`).
    keys: Arc<[RootKey]>,
}

impl Roots {
    /// Roots from DER certificates. Fails on an empty set or an unusable certificate.
    pub fn new(certs: Vec<CertificateDer<'static>>) -> Result<Roots> {
        if certs.is_empty() {
            return Err(TrustError::EmptyBundle.into());
        }
        let mut store = RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            store
                .add(cert.clone())
                .map_err(|error| TrustError::BadRoot {
                    index: i + 1,
                    error,
                })?;
        }
        let keys = certs.iter().filter_map(|c| RootKey::of(c)).collect();
        Ok(Roots {
            certs,
            store: Arc::new(store),
            keys,
        })
    }

    /// Roots from a PEM bundle (one or more CERTIFICATE blocks).
    pub fn from_pem(pem: &[u8]) -> Result<Roots> {
        Roots::new(pki::pem::parse_certificates(pem)?)
    }

    /// The roots, DER.
    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// What open connections check their peer's roots against (`peer_anchor`).
    pub(crate) fn keys(&self) -> &[RootKey] {
        &self.keys
    }

    /// The roots as rustls wants them.
    pub fn store(&self) -> Arc<RootCertStore> {
        self.store.clone()
    }

    /// Hex SHA-256 fingerprints, sorted: two bundles with the same roots compare equal.
    pub fn fingerprints(&self) -> Vec<String> {
        let mut fps: Vec<String> = self.certs.iter().map(|c| pki::sha256_hex(c)).collect();
        fps.sort();
        fps.dedup();
        fps
    }

    /// Subjects of the roots, for logs.
    pub fn subjects(&self) -> Vec<String> {
        self.certs
            .iter()
            .filter_map(|c| pki::CertInfo::from_der(c).ok())
            .map(|i| i.subject)
            .collect()
    }
}

/// How many intermediates `TrustState::learn_intermediates` keeps.
pub const KEPT_INTERMEDIATES: usize = 4;

/// The shared, swappable trust of one service.
#[derive(Debug)]
pub struct TrustState {
    roots: ArcSwap<Roots>,
    /// Intermediates of the service's own validated credentials (a two-tier CA signs the CRL
    /// with its intermediate, which the bundle of roots does not hold), newest last.
    intermediates: ArcSwap<Vec<CertificateDer<'static>>>,
    revoked: ArcSwap<RevokedSet>,
    /// The roots of each federated trust domain, apart from ours (`federation`).
    federated: ArcSwap<FederatedBundles>,
    /// The foreign SPIFFE IDs this service accepts as callers (its `--allow-id` patterns
    /// outside its own trust domain).
    federated_callers: ArcSwap<FederatedCallers>,
    generation: watch::Sender<u64>,
    /// Bumped on every new revocation list, also one with the same serials (new dates).
    crl_updates: watch::Sender<u64>,
    /// Set where a CRL is configured (enrolled mode, static mode with --crl).
    crl_policy: Option<CrlPolicy>,
    clock: Arc<dyn Clock>,
}

impl TrustState {
    /// Trust without a revocation list to keep fresh (static files without a CRL), on the
    /// system clock.
    pub fn new(roots: Roots) -> Arc<TrustState> {
        Self::build(roots, None, Arc::new(SystemClock))
    }

    /// Trust whose revocation list must stay fresh (`crl_freshness`).
    pub(crate) fn with_crl_policy(
        roots: Roots,
        policy: CrlPolicy,
        clock: Arc<dyn Clock>,
    ) -> Arc<TrustState> {
        Self::build(roots, Some(policy), clock)
    }

    /// Trust without a revocation list to keep fresh, on `clock`.
    pub(crate) fn with_clock(roots: Roots, clock: Arc<dyn Clock>) -> Arc<TrustState> {
        Self::build(roots, None, clock)
    }

    fn build(
        roots: Roots,
        crl_policy: Option<CrlPolicy>,
        clock: Arc<dyn Clock>,
    ) -> Arc<TrustState> {
        Arc::new(TrustState {
            roots: ArcSwap::from_pointee(roots),
            intermediates: ArcSwap::from_pointee(Vec::new()),
            revoked: ArcSwap::from_pointee(RevokedSet::default()),
            federated: ArcSwap::from_pointee(FederatedBundles::default()),
            federated_callers: ArcSwap::from_pointee(FederatedCallers::default()),
            generation: watch::channel(0).0,
            crl_updates: watch::channel(0).0,
            crl_policy,
            clock,
        })
    }

    /// True where a CRL is configured and must stay fresh.
    pub fn has_crl_policy(&self) -> bool {
        self.crl_policy.is_some()
    }

    /// The clock the trust state judges freshness by.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// When the revocation list in use stops being authoritative: the earliest nextUpdate of
    /// the CRLs held (None when they have none, or no CRL policy applies); before the first CRL
    /// arrived, the policy's stand-in (the process start).
    pub fn crl_next_update(&self) -> Option<OffsetDateTime> {
        let policy = self.crl_policy?;
        let revoked = self.revoked.load();
        if revoked.is_empty() {
            return Some(policy.no_crl_since);
        }
        revoked.crls().filter_map(|c| c.next_update).min()
    }

    /// Fresh, stale or failing closed, now by the trust state's clock.
    pub fn crl_status(&self) -> CrlStatus {
        self.crl_status_at(self.clock.now())
    }

    /// Fresh, stale or failing closed, at `now` (always fresh without a CRL policy).
    pub fn crl_status_at(&self, now: OffsetDateTime) -> CrlStatus {
        match self.crl_policy {
            Some(policy) => {
                crl_freshness::status(self.crl_next_update(), policy.max_staleness, now)
            }
            None => CrlStatus::Fresh,
        }
    }

    /// When `crl_status` changes next unless a new CRL arrives first.
    pub(crate) fn crl_next_change(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let policy = self.crl_policy?;
        crl_freshness::next_change(self.crl_next_update(), policy.max_staleness, now)
    }

    /// A receiver that sees every new revocation list.
    pub(crate) fn subscribe_crl(&self) -> watch::Receiver<u64> {
        self.crl_updates.subscribe()
    }

    /// The roots trusted now.
    pub fn roots(&self) -> Arc<Roots> {
        self.roots.load_full()
    }

    /// The certificates a CRL may be signed by: the roots and the intermediates learned from
    /// the service's own credentials (`learn_intermediates`).
    pub fn crl_issuers(&self) -> Vec<CertificateDer<'static>> {
        let mut out = self.roots.load().certs().to_vec();
        out.extend(self.intermediates.load().iter().cloned());
        out
    }

    /// Remembers the intermediates of a credential that was just validated against the roots
    /// (its chain after the leaf), keeping the last [`KEPT_INTERMEDIATES`]: an intermediate
    /// renewed under the same key verifies the same CRLs, and a few are enough to bridge one.
    pub(crate) fn learn_intermediates(&self, certs: &[CertificateDer<'static>]) {
        let current = self.intermediates.load();
        if certs.iter().all(|c| current.contains(c)) {
            return;
        }
        let mut next: Vec<CertificateDer<'static>> = current
            .iter()
            .filter(|c| !certs.contains(c))
            .cloned()
            .collect();
        next.extend(certs.iter().cloned());
        let excess = next.len().saturating_sub(KEPT_INTERMEDIATES);
        next.drain(..excess);
        self.intermediates.store(Arc::new(next));
    }

    /// The revocation set in use.
    pub fn revoked(&self) -> Arc<RevokedSet> {
        self.revoked.load_full()
    }

    /// Replaces the roots when they differ from the current ones. Returns true on a change.
    pub(crate) fn set_roots(&self, roots: Roots) -> bool {
        if roots.fingerprints() == self.roots.load().fingerprints() {
            return false;
        }
        self.roots.store(Arc::new(roots));
        self.bump();
        true
    }

    /// The roots of each federated trust domain.
    pub fn federated(&self) -> Arc<FederatedBundles> {
        self.federated.load_full()
    }

    /// Replaces the federated bundles when they differ from the current ones (a domain added,
    /// dropped, or its roots changed). Returns true on a change. New handshakes see the change
    /// at once; open connections whose peer no longer chains to a trusted root close on the
    /// generation bump ("untrusted", `peer_watch`).
    pub fn set_federated(&self, bundles: FederatedBundles) -> bool {
        if bundles.fingerprints() == self.federated.load().fingerprints() {
            return false;
        }
        self.federated.store(Arc::new(bundles));
        self.bump();
        true
    }

    /// The foreign callers a server accepts.
    pub fn federated_callers(&self) -> Arc<FederatedCallers> {
        self.federated_callers.load_full()
    }

    /// Sets the foreign callers a server accepts (from its `--allow-id`).
    pub fn set_federated_callers(&self, callers: FederatedCallers) {
        self.federated_callers.store(Arc::new(callers));
    }

    /// Replaces the revocation set. `notify` wakes the open-connection watchers; pass false
    /// when only the list's dates changed, not its serials.
    pub fn set_revoked(&self, revoked: RevokedSet, notify: bool) {
        self.revoked.store(Arc::new(revoked));
        self.crl_updates.send_modify(|g| *g += 1);
        if notify {
            self.bump();
        }
    }

    /// A receiver that sees every change of roots or revocations.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pki::crl::VerifiedCrl;
    use time::macros::datetime;
    use time::Duration;

    fn crl(next_update: Option<OffsetDateTime>) -> RevokedSet {
        RevokedSet::from_crls(vec![VerifiedCrl {
            issuer_raw: b"issuer".to_vec(),
            issuer: "CN=Root".into(),
            issuer_fingerprint: String::new(),
            crl_number: vec![1],
            this_update: datetime!(2026-11-23 13:00 UTC),
            next_update,
            serials: Default::default(),
        }])
    }

    fn roots() -> Roots {
        let ca = pki::CaMaterial::generate_root("Trust Test", OffsetDateTime::now_utc()).unwrap();
        Roots::new(vec![ca.cert_der().clone()]).unwrap()
    }

    #[test]
    fn staleness_follows_the_crl_in_use_and_the_start_before_the_first_one() {
        let start = datetime!(2026-11-23 12:00 UTC);
        let policy = CrlPolicy {
            max_staleness: Duration::minutes(30),
            no_crl_since: start,
        };
        let trust = TrustState::with_crl_policy(roots(), policy, Arc::new(SystemClock));
        // No CRL yet: the start stands in for nextUpdate.
        assert_eq!(trust.crl_next_update(), Some(start));
        assert!(matches!(
            trust.crl_status_at(start + Duration::minutes(31)),
            CrlStatus::FailingClosed { .. }
        ));
        let updates = trust.subscribe_crl();
        let next = datetime!(2026-11-23 14:00 UTC);
        trust.set_revoked(crl(Some(next)), false);
        assert!(
            updates.has_changed().unwrap(),
            "a new CRL wakes the health log"
        );
        assert_eq!(trust.crl_status_at(next), CrlStatus::Fresh);
        assert!(matches!(
            trust.crl_status_at(next + Duration::minutes(1)),
            CrlStatus::Stale { .. }
        ));
        assert_eq!(trust.crl_next_change(next - Duration::hours(1)), Some(next));
        // A CRL without nextUpdate never goes stale.
        trust.set_revoked(crl(None), false);
        assert_eq!(
            trust.crl_status_at(next + Duration::days(365)),
            CrlStatus::Fresh
        );
        // Without a CRL policy there is nothing to go stale.
        let plain = TrustState::new(roots());
        assert_eq!(
            plain.crl_status_at(start + Duration::days(1)),
            CrlStatus::Fresh
        );
        assert_eq!(plain.crl_next_update(), None);
    }
}
