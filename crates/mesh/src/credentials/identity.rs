//! The credential a service presents right now, published to its TLS resolver.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use wire::tls::CertResolver;

use crate::credentials::credential::Credential;

/// Holds the current credential. `publish` swaps it for all new handshakes and bumps a
/// generation that connection pools watch, so they stop reusing connections that presented the
/// old certificate.
#[derive(Debug)]
pub(crate) struct Identity {
    current: ArcSwap<Credential>,
    resolver: Arc<CertResolver>,
    generation: watch::Sender<u64>,
}

impl Identity {
    pub(crate) fn new(initial: Credential) -> Arc<Identity> {
        let resolver = CertResolver::new(initial.certified.clone());
        Arc::new(Identity {
            current: ArcSwap::from_pointee(initial),
            resolver,
            generation: watch::channel(0).0,
        })
    }

    pub(crate) fn current(&self) -> Arc<Credential> {
        self.current.load_full()
    }

    pub(crate) fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// Swaps in `next`; returns the credential it replaced.
    pub(crate) fn publish(&self, next: Credential) -> Arc<Credential> {
        let certified = next.certified.clone();
        let old = self.current.swap(Arc::new(next));
        self.resolver.swap(certified);
        self.generation.send_modify(|g| *g += 1);
        old
    }

    /// Increases by one on every publish.
    pub(crate) fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}
