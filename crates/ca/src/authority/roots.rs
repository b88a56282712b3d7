//! The roots an authority serves with, swapped whole while it runs when the store's root
//! rotation state moves (`root_follow.rs`, docs/operations.md "Root rotation"): every request
//! reads one [`RootSet`] and so sees one phase, never half of two.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pki::CaMaterial;
use rustls_pki_types::CertificateDer;

use super::Authority;

/// What an authority signs with and publishes.
#[derive(Clone)]
pub struct RootSet {
    /// Signs leaves, the CRL and the CA's own certificates.
    pub active: Arc<CaMaterial>,
    /// After `root activate`, before `root retire`: the old root, which signs the CRL and the
    /// OCSP answers for its own leaves (a CRL or an OCSP answer speaks for its issuer only).
    pub previous: Option<Arc<CaMaterial>>,
    /// What `/api/v1/bundle` publishes after the active root: other roots, each with its
    /// cross-certificate (`root_serving.rs`, `--bundle-extra`).
    pub bundle_extra: Vec<CertificateDer<'static>>,
}

impl RootSet {
    /// The CA materials whose leaves this CA answers for (OCSP, CRLs): the active one first.
    pub fn answering(&self) -> Vec<Arc<CaMaterial>> {
        std::iter::once(self.active.clone())
            .chain(self.previous.clone())
            .collect()
    }
}

impl Authority {
    /// The roots served now.
    pub fn roots(&self) -> Arc<RootSet> {
        self.roots.load_full()
    }

    /// Serves `next` from the next request on (one atomic swap: a request in flight finishes
    /// with the set it read). Cached OCSP answers are dropped, a delegated OCSP responder is
    /// certified again by the new active root, and the SPIFFE bundle's sequence grows so
    /// relying parties see a new bundle. CRL caches carry their signer and are re-signed on
    /// first use.
    pub fn switch_roots(&self, next: RootSet) {
        let now = self.clock.now();
        self.roots.store(Arc::new(next));
        self.reset_ocsp();
        let at_least = now.unix_timestamp().max(0) as u64;
        let _ = self
            .bundle_sequence
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |seq| {
                Some(std::cmp::max(seq + 1, at_least))
            });
    }

    /// Signs with `renewed`, the active intermediate's renewal (same key and root, checked by
    /// the caller), from the next request on: the same one swap as [`Authority::switch_roots`],
    /// with the rest of the set kept. The intermediate-life warnings start again for it.
    pub fn switch_intermediate(&self, renewed: Arc<CaMaterial>) {
        let current = self.roots();
        self.switch_roots(RootSet {
            active: renewed,
            previous: current.previous.clone(),
            bundle_extra: current.bundle_extra.clone(),
        });
        self.life_warnings.reset();
    }

    /// Records why the roots served cannot follow the store's rotation state (None: they do);
    /// `/healthz` reports it until it is cleared.
    pub fn set_roots_behind(&self, reason: Option<String>) {
        *self.roots_behind.lock().unwrap_or_else(|p| p.into_inner()) = reason;
    }

    /// Records what makes the data directory unsafe while the CA runs (None: nothing);
    /// `/healthz` reports it until it is cleared. The CA keeps signing meanwhile.
    pub fn set_datadir_unsafe(&self, reason: Option<String>) {
        *self
            .datadir_unsafe
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = reason;
    }

    /// Err with the reason while the data directory is unsafe.
    pub(super) fn datadir_safe(&self) -> Result<(), String> {
        match &*self
            .datadir_unsafe
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    /// Err with the reason while the roots served lag behind the store's rotation state.
    pub(super) fn roots_current(&self) -> Result<(), String> {
        match &*self.roots_behind.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    /// The issuer chain (PEM) to hand out with `leaf_der`: the active CA's, or the old root's
    /// during a rotation when the leaf was signed by it.
    pub(super) fn chain_of(&self, leaf_der: &[u8]) -> Vec<String> {
        let roots = self.roots.load();
        if let Some(old) = &roots.previous {
            // Names, not signatures: the new root has a subject of its own (root_rotation.rs).
            let issuer = pki::CertInfo::from_der(leaf_der).map(|c| c.issuer);
            let old_subject = pki::CertInfo::from_der(old.cert_der()).map(|c| c.subject);
            if let (Ok(issuer), Ok(subject)) = (issuer, old_subject) {
                if issuer == subject {
                    return old.chain_pem();
                }
            }
        }
        roots.active.chain_pem()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use std::sync::Arc;

    use pki::clock::ManualClock;
    use pki::{CaMaterial, IssuancePolicy, TrustDomain};
    use time::{Duration, OffsetDateTime};

    use super::RootSet;
    use crate::authority::{Authority, AuthorityConfig};
    use crate::store::MemoryStore;

    /// A switch takes effect whole for the next request: the CRL cached under the old signer
    /// is not served again, the bundle starts with the new root, the SPIFFE bundle's sequence
    /// grows, and the health verdict carries the reason while the roots lag behind.
    #[test]
    fn a_switch_replaces_signer_bundle_and_crl_at_once() {
        let now = OffsetDateTime::now_utc();
        let clock = Arc::new(ManualClock::new(now));
        let store = Arc::new(MemoryStore::new(
            &[("trust_domain", "mesh.local")],
            clock.clone(),
        ));
        let old = Arc::new(CaMaterial::generate_root("Old Root", now).unwrap());
        let new = Arc::new(CaMaterial::generate_root("New Root", now).unwrap());
        let a = Authority::new(
            old.clone(),
            vec![],
            store,
            AuthorityConfig {
                trust_domain: TrustDomain::parse("mesh.local").unwrap(),
                default_ttl: Duration::hours(1),
                max_ttl: Duration::hours(24),
                admin_id: None,
                policy: IssuancePolicy::default(),
            },
            clock,
        );
        let before = a.crl().unwrap();
        pki::crl::verify_crl(&before, std::slice::from_ref(old.cert_der())).unwrap();
        let sequence = a.spiffe_bundle().unwrap()["spiffe_sequence"]
            .as_u64()
            .unwrap();

        a.switch_roots(RootSet {
            active: new.clone(),
            previous: Some(old.clone()),
            bundle_extra: vec![old.cert_der().clone()],
        });
        let after = a.crl().unwrap();
        pki::crl::verify_crl(&after, std::slice::from_ref(new.cert_der()))
            .expect("the cached CRL of the old signer is not served after the switch");
        let old_crl = a.crl_of_root(&old.root_fingerprint()).unwrap().unwrap();
        pki::crl::verify_crl(&old_crl, std::slice::from_ref(old.cert_der())).unwrap();
        assert!(a.bundle_pem().starts_with(&new.root_pem()));
        assert_eq!(a.ca().root_fingerprint(), new.root_fingerprint());
        let grown = a.spiffe_bundle().unwrap()["spiffe_sequence"]
            .as_u64()
            .unwrap();
        assert!(grown > sequence, "{grown} > {sequence}");

        a.set_roots_behind(Some("roots/x.key is missing".into()));
        assert_eq!(a.health(), Err("roots/x.key is missing".into()));
        a.set_roots_behind(None);
        assert_eq!(a.health(), Ok(()));
    }
}
