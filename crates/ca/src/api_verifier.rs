//! The client-certificate verifier of the CA's API listener, whose roots can be replaced while
//! the CA runs: a root rotation adds the new root and later drops the old one
//! (`root_follow.rs`) without a restart. webpki's verifier is immutable, so this wrapper holds
//! one behind an `ArcSwap` and builds a new one for each change (crate traps: rustls).

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use wire::tls::TlsPolicy;

/// Accepts (but does not require) client certificates chaining to the current roots; the
/// endpoints that need one check it themselves.
pub struct ApiClientVerifier {
    inner: ArcSwap<Arc<dyn ClientCertVerifier>>,
    policy: TlsPolicy,
}

impl std::fmt::Debug for ApiClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClientVerifier").finish_non_exhaustive()
    }
}

fn build(
    roots: &[CertificateDer<'static>],
    policy: &TlsPolicy,
) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add(r.clone())?;
    }
    Ok(
        WebPkiClientVerifier::builder_with_provider(Arc::new(store), policy.provider())
            .allow_unauthenticated()
            .build()?,
    )
}

impl ApiClientVerifier {
    /// A verifier trusting `roots`.
    pub fn new(roots: &[CertificateDer<'static>]) -> anyhow::Result<Arc<ApiClientVerifier>> {
        let policy = TlsPolicy::mesh();
        let verifier = build(roots, &policy)?;
        Ok(Arc::new(ApiClientVerifier {
            inner: ArcSwap::from_pointee(verifier),
            policy,
        }))
    }

    /// Trusts exactly `roots` from the next handshake on; on error the current roots stay.
    pub fn set_roots(&self, roots: &[CertificateDer<'static>]) -> anyhow::Result<()> {
        self.inner.store(Arc::new(build(roots, &self.policy)?));
        Ok(())
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        self.inner.load().as_ref().clone()
    }
}

impl ClientCertVerifier for ApiClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// None: the roots change while the CA runs and the hints could not follow them (they are
    /// advisory, TLS 1.3 certificate_authorities; clients holding one certificate send it).
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}
