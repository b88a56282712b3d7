//! Server-side verification of client certificates: webpki path validation against the current
//! roots (clientAuth EKU, validity, CA-as-leaf refused), then an O(1) revocation lookup and the
//! CRL freshness rule, then the SPIFFE ID requirement.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Result, TrustError};
use crate::tls::federated::FederatedPeer;
use crate::tls::identity_error::{svid_violation, PeerIdentityError};
use crate::trust::{Roots, TrustState};
use pki::svid::SvidRules;
use wire::tls::TlsPolicy;

/// The verifier a mesh server uses for client certificates.
///
/// `WebPkiClientVerifier` is immutable, so the wrapper holds it behind an `ArcSwap` and builds a
/// new one when the roots change. Revocation is not given to webpki (it would re-verify the
/// CRL signature on every handshake); the wrapper looks the serial up in the trust state.
pub struct MeshClientVerifier {
    inner: ArcSwap<Inner>,
    trust: Arc<TrustState>,
    policy: TlsPolicy,
    /// Owned here because the inner verifier is swapped and cannot lend its own. They name the
    /// roots trusted when the verifier was built; they are advisory (TLS 1.3
    /// certificate_authorities) and clients holding one certificate ignore them.
    hints: Vec<DistinguishedName>,
    require_spiffe_id: bool,
}

impl std::fmt::Debug for MeshClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshClientVerifier").finish_non_exhaustive()
    }
}

/// The webpki verifier together with the roots it was built from.
struct Inner {
    roots: Arc<Roots>,
    verifier: Arc<dyn ClientCertVerifier>,
}

fn build_inner(roots: Arc<Roots>, policy: &TlsPolicy) -> Result<Inner> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.store(), policy.provider())
        .build()
        .map_err(|e| TrustError::Verifier {
            side: "client",
            reason: e.to_string(),
        })?;
    Ok(Inner { roots, verifier })
}

impl MeshClientVerifier {
    /// Verifies client certificates against `trust` (its roots and revocation list as they are
    /// at each handshake); `require_spiffe_id` refuses certificates without one.
    pub fn new(
        trust: Arc<TrustState>,
        policy: TlsPolicy,
        require_spiffe_id: bool,
    ) -> Result<Arc<MeshClientVerifier>> {
        let inner = build_inner(trust.roots(), &policy)?;
        let hints = inner.verifier.root_hint_subjects().to_vec();
        Ok(Arc::new(MeshClientVerifier {
            inner: ArcSwap::from_pointee(inner),
            trust,
            policy,
            hints,
            require_spiffe_id,
        }))
    }

    /// The path validator for the trust state's current roots, rebuilt (once) when a refresh
    /// has swapped the roots since the last handshake.
    fn current(&self) -> std::result::Result<Arc<dyn ClientCertVerifier>, Error> {
        let inner = self.inner.load();
        let roots = self.trust.roots();
        if Arc::ptr_eq(&inner.roots, &roots) {
            return Ok(inner.verifier.clone());
        }
        let fresh = build_inner(roots, &self.policy).map_err(|e| Error::General(e.to_string()))?;
        let verifier = fresh.verifier.clone();
        self.inner.store(Arc::new(fresh));
        Ok(verifier)
    }
}

/// Whether a verifier insists on a revocation list that is not too stale
/// (`crl_freshness`). Every peer verification does, except the CA client's: it must still reach
/// the CA to fetch a fresh CRL, and the CA's API certificate is not on the CRL anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrlFreshness {
    Enforce,
    Exempt,
}

/// The checks after path validation, on one parse of the end-entity certificate: not revoked,
/// a revocation answer we may still give (a CRL not stale past `--crl-max-staleness`), key
/// usage fit for a TLS 1.3 leaf (digitalSignature, no CA usages), and when required a SPIFFE
/// ID. Returns the SPIFFE ID (if any) so callers need not parse the certificate again.
pub(crate) fn post_path_checks(
    end_entity: &CertificateDer<'_>,
    trust: &TrustState,
    require_spiffe_id: bool,
    freshness: CrlFreshness,
) -> std::result::Result<Option<pki::SpiffeId>, Error> {
    let (_, cert) = X509Certificate::from_der(end_entity)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    if trust.revoked().is_cert_listed(&cert) {
        return Err(Error::InvalidCertificate(CertificateError::Revoked));
    }
    if freshness == CrlFreshness::Enforce {
        // The trust state's clock at full precision, not the whole seconds rustls hands the
        // verifier: readiness and the state log use it, so all three agree on the moment the
        // service fails closed.
        if let Some(stale) = trust.crl_status().error() {
            return Err(stale.into_rustls());
        }
    }
    // The same rules as pki::verify (and so `mtls-inspect verify`): X509-SVID MUSTs for a
    // certificate with a spiffe:// URI, the Web PKI key usage rule otherwise.
    let rules = if require_spiffe_id {
        SvidRules::requiring_spiffe_id()
    } else {
        SvidRules::new()
    };
    rules.check(&cert).map_err(svid_violation)
}

impl ClientCertVerifier for MeshClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, Error> {
        let own = self
            .current()?
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(own_error) = own {
            // Not ours: a peer of a federated domain, validated against that domain's roots
            // only, and accepted only when --allow-id names it (crate::federation).
            let Some(peer) = FederatedPeer::of(&self.trust, end_entity) else {
                return Err(own_error);
            };
            peer.client_verifier(&self.policy)?.verify_client_cert(
                end_entity,
                intermediates,
                now,
            )?;
            post_path_checks(end_entity, &self.trust, true, CrlFreshness::Enforce)?;
            let callers = self.trust.federated_callers();
            if !callers.permits(&peer.id) {
                return Err(PeerIdentityError::FederatedCallerNotAllowed {
                    presented: peer.id.to_string(),
                    trust_domain: peer.id.trust_domain().to_string(),
                    allowed: callers.patterns().to_vec(),
                }
                .into_rustls());
            }
            return Ok(ClientCertVerified::assertion());
        }
        post_path_checks(
            end_entity,
            &self.trust,
            self.require_spiffe_id,
            CrlFreshness::Enforce,
        )?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, Error> {
        self.policy.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, Error> {
        self.policy.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.policy.supported_schemes()
    }
}
