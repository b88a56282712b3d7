//! What a service trusts right now: the root bundle and the revocation set. Both are swapped
//! atomically when a refresh brings something new; every change bumps a generation that open
//! connections watch, so a connection whose peer was just revoked can be closed.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;

use crate::error::{MeshError, Result};
use crate::revocation::RevokedSet;

/// A set of trusted root certificates.
#[derive(Clone, Debug)]
pub struct Roots {
    certs: Vec<CertificateDer<'static>>,
    store: Arc<RootCertStore>,
}

impl Roots {
    /// Roots from DER certificates. Fails on an empty set or an unusable certificate.
    pub fn new(certs: Vec<CertificateDer<'static>>) -> Result<Roots> {
        if certs.is_empty() {
            return Err(MeshError::Trust(
                "the trust bundle holds no certificate".into(),
            ));
        }
        let mut store = RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            store.add(cert.clone()).map_err(|e| {
                MeshError::Trust(format!("trust bundle certificate #{}: {e}", i + 1))
            })?;
        }
        Ok(Roots {
            certs,
            store: Arc::new(store),
        })
    }

    /// Roots from a PEM bundle (one or more CERTIFICATE blocks).
    pub fn from_pem(pem: &[u8]) -> Result<Roots> {
        Roots::new(pki::pem::parse_certificates(pem)?)
    }

    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

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

/// The shared, swappable trust of one service.
#[derive(Debug)]
pub struct TrustState {
    roots: ArcSwap<Roots>,
    revoked: ArcSwap<RevokedSet>,
    generation: watch::Sender<u64>,
}

impl TrustState {
    pub fn new(roots: Roots) -> Arc<TrustState> {
        Arc::new(TrustState {
            roots: ArcSwap::from_pointee(roots),
            revoked: ArcSwap::from_pointee(RevokedSet::default()),
            generation: watch::channel(0).0,
        })
    }

    pub fn roots(&self) -> Arc<Roots> {
        self.roots.load_full()
    }

    pub fn revoked(&self) -> Arc<RevokedSet> {
        self.revoked.load_full()
    }

    /// Replaces the roots when they differ from the current ones. Returns true on a change.
    pub fn set_roots(&self, roots: Roots) -> bool {
        if roots.fingerprints() == self.roots.load().fingerprints() {
            return false;
        }
        self.roots.store(Arc::new(roots));
        self.bump();
        true
    }

    /// Replaces the revocation set. `notify` wakes the open-connection watchers; pass false
    /// when only the list's dates changed, not its serials.
    pub fn set_revoked(&self, revoked: RevokedSet, notify: bool) {
        self.revoked.store(Arc::new(revoked));
        if notify {
            self.bump();
        }
    }

    /// A receiver that sees every change of roots or revocations.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}
