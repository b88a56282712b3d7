//! The certificate resolver that hot-swaps: every new handshake gets the certificate published
//! last; handshakes already under way and open connections keep the one they started with.
//! Rotation and file reloads publish here (docs/design.md, crate traps: rustls).

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

/// One resolver for both roles: a server presents its certificate in every handshake, a client
/// whenever the server asks for one.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    /// A resolver presenting `initial` until [`CertResolver::swap`] publishes another.
    pub fn new(initial: Arc<CertifiedKey>) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            current: ArcSwap::new(initial),
        })
    }

    /// Publishes `next` for every handshake that starts from now on.
    pub fn swap(&self, next: Arc<CertifiedKey>) {
        self.current.store(next);
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ResolvesClientCert for CertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let key = self.current.load_full();
        // Offer the certificate only when the server can verify our key's signature scheme;
        // otherwise the handshake would fail later with a less helpful error.
        key.key.choose_scheme(sigschemes)?;
        Some(key)
    }

    fn has_certs(&self) -> bool {
        true
    }
}
