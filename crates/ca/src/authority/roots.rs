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

    /// Records why the roots served cannot follow the store's rotation state (None: they do);
    /// `/healthz` reports it until it is cleared.
    pub fn set_roots_behind(&self, reason: Option<String>) {
        *self.roots_behind.lock().unwrap_or_else(|p| p.into_inner()) = reason;
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
