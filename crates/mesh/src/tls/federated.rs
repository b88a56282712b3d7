//! Path validation for a peer of a federated trust domain (`crate::federation`). Both
//! verifiers try our own roots first, unchanged; only a chain that does not reach them comes
//! here. The peer's SPIFFE ID, read from its certificate before any validation, names the one
//! trust domain whose roots may vouch for it: a federated root is never asked about our own
//! trust domain's IDs (the federated set cannot hold our domain) nor about a third domain's.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::Error;
use rustls_pki_types::CertificateDer;

use crate::trust::{Roots, TrustState};
use wire::tls::TlsPolicy;

/// A peer claiming an identity of a federated trust domain, and that domain's roots.
pub(crate) struct FederatedPeer {
    pub(crate) id: pki::SpiffeId,
    pub(crate) roots: Arc<Roots>,
}

impl FederatedPeer {
    /// The federated domain `end_entity` claims to belong to, when that domain is federated.
    /// None for a certificate without exactly one SPIFFE ID, or of a domain not federated
    /// (ours included): the caller then reports its own path validation error.
    pub(crate) fn of(trust: &TrustState, end_entity: &CertificateDer<'_>) -> Option<FederatedPeer> {
        let federated = trust.federated();
        if federated.is_empty() {
            return None;
        }
        let id = pki::CertInfo::from_der(end_entity).ok()?.spiffe_id()?;
        let roots = federated.roots_for(id.trust_domain())?.clone();
        Some(FederatedPeer { id, roots })
    }

    /// A client-certificate validator over this domain's roots only.
    pub(crate) fn client_verifier(
        &self,
        policy: &TlsPolicy,
    ) -> Result<Arc<dyn ClientCertVerifier>, Error> {
        WebPkiClientVerifier::builder_with_provider(self.roots.store(), policy.provider())
            .build()
            .map_err(|e| Error::General(format!("federated client verifier: {e}")))
    }

    /// A server-certificate validator over this domain's roots only.
    pub(crate) fn server_verifier(
        &self,
        policy: &TlsPolicy,
    ) -> Result<Arc<WebPkiServerVerifier>, Error> {
        WebPkiServerVerifier::builder_with_provider(self.roots.store(), policy.provider())
            .build()
            .map_err(|e| Error::General(format!("federated server verifier: {e}")))
    }
}

#[cfg(test)]
mod tests;
