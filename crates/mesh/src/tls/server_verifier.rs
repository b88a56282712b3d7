//! Client-side verification of servers: webpki path validation and server name (DNS/IP SAN)
//! against the current roots, the revocation lookup and CRL freshness rule, and optionally the
//! server's SPIFFE ID. The CA client uses the same verifier requiring the CA's own identity
//! `spiffe://<td>/ca`, so a workload whose certificate happens to be valid for the CA's host
//! name cannot stand in for the CA (docs/security.md).

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{DigitallySignedStruct, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::{Result, TrustError};
use crate::tls::client_verifier::{post_path_checks, CrlFreshness};
use crate::tls::federated::FederatedPeer;
use crate::tls::identity_error::PeerIdentityError;
use crate::trust::{Roots, TrustState};
use wire::tls::TlsPolicy;

/// The verifier a mesh client uses for servers.
pub struct MeshServerVerifier {
    inner: ArcSwap<Inner>,
    trust: Arc<TrustState>,
    policy: TlsPolicy,
    expected: Expected,
    freshness: CrlFreshness,
}

/// Whose identity the server must prove, beyond its chain and host name.
#[derive(Debug)]
enum Expected {
    Anyone,
    /// `--server-id`.
    Server(pki::SpiffeId),
    /// The CA's reserved identity `spiffe://<td>/ca`.
    Ca(pki::SpiffeId),
}

impl std::fmt::Debug for MeshServerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshServerVerifier")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

/// The webpki verifier together with the roots it was built from.
struct Inner {
    roots: Arc<Roots>,
    verifier: Arc<WebPkiServerVerifier>,
}

fn build_inner(roots: Arc<Roots>, policy: &TlsPolicy) -> Result<Inner> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots.store(), policy.provider())
        .build()
        .map_err(|e| TrustError::Verifier {
            side: "server",
            reason: e.to_string(),
        })?;
    Ok(Inner { roots, verifier })
}

impl MeshServerVerifier {
    /// `expected_id`: when set, the server's certificate must carry exactly this SPIFFE ID.
    pub fn new(
        trust: Arc<TrustState>,
        policy: TlsPolicy,
        expected_id: Option<pki::SpiffeId>,
    ) -> Result<Arc<MeshServerVerifier>> {
        let expected = match expected_id {
            Some(id) => Expected::Server(id),
            None => Expected::Anyone,
        };
        Self::build(trust, policy, expected, CrlFreshness::Enforce)
    }

    /// The verifier of every CA client: the server must present the CA's identity
    /// `ca_id` (`spiffe://<td>/ca`, which the CA never issues to anyone else). It is exempt from
    /// the CRL freshness rule: fetching a fresh CRL is how a stale one is cured.
    pub(crate) fn for_ca(
        trust: Arc<TrustState>,
        policy: TlsPolicy,
        ca_id: pki::SpiffeId,
    ) -> Result<Arc<MeshServerVerifier>> {
        Self::build(trust, policy, Expected::Ca(ca_id), CrlFreshness::Exempt)
    }

    fn build(
        trust: Arc<TrustState>,
        policy: TlsPolicy,
        expected: Expected,
        freshness: CrlFreshness,
    ) -> Result<Arc<MeshServerVerifier>> {
        let inner = build_inner(trust.roots(), &policy)?;
        Ok(Arc::new(MeshServerVerifier {
            inner: ArcSwap::from_pointee(inner),
            trust,
            policy,
            expected,
            freshness,
        }))
    }

    /// The path validator for the trust state's current roots, rebuilt (once) when a refresh
    /// has swapped the roots since the last handshake.
    fn current(&self) -> std::result::Result<Arc<WebPkiServerVerifier>, Error> {
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

impl MeshServerVerifier {
    /// A server whose chain does not reach our own roots: accepted only when it belongs to a
    /// federated domain, chains to that domain's roots, and `--server-id` names an identity of
    /// that domain (the exact ID is compared afterwards, as for our own servers).
    fn verify_federated(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
        own_error: Error,
    ) -> std::result::Result<(), Error> {
        let Some(peer) = FederatedPeer::of(&self.trust, end_entity) else {
            return Err(name_mismatch(own_error, end_entity, server_name));
        };
        match &self.expected {
            Expected::Server(expected) if expected.trust_domain() == peer.id.trust_domain() => {}
            _ => {
                return Err(PeerIdentityError::FederatedServerNotNamed {
                    presented: peer.id.to_string(),
                    trust_domain: peer.id.trust_domain().to_string(),
                }
                .into_rustls())
            }
        }
        peer.server_verifier(&self.policy)?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| name_mismatch(e, end_entity, server_name))?;
        Ok(())
    }
}

/// webpki's name mismatch lists the certificate's names in its own debug form; ours lists them
/// from the parsed certificate (DNS, IP, then URI SANs), so the words for the failure
/// (`describe`) can show them as they are. The variant stays rustls' own, so the alert the
/// server receives stays `bad_certificate`.
fn name_mismatch(
    err: Error,
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
) -> Error {
    match err {
        Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        ) => {
            let presented = pki::CertInfo::from_der(end_entity)
                .map(|i| {
                    i.dns
                        .into_iter()
                        .chain(i.ips.iter().map(|ip| ip.to_string()))
                        .chain(i.uris)
                        .collect()
                })
                .unwrap_or_default();
            Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                expected: server_name.to_owned(),
                presented,
            })
        }
        other => other,
    }
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, Error> {
        let own = self.current()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Err(own_error) = own {
            self.verify_federated(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
                own_error,
            )?;
        }
        let presented = post_path_checks(end_entity, &self.trust, false, self.freshness)?;
        let presented_str = || match &presented {
            Some(id) => id.to_string(),
            None => "a certificate without a SPIFFE ID".into(),
        };
        match &self.expected {
            Expected::Anyone => {}
            Expected::Server(expected) if presented.as_ref() != Some(expected) => {
                return Err(PeerIdentityError::UnexpectedServerId {
                    expected: expected.to_string(),
                    presented: presented_str(),
                }
                .into_rustls())
            }
            Expected::Ca(expected) if presented.as_ref() != Some(expected) => {
                return Err(PeerIdentityError::NotTheCa {
                    expected: expected.to_string(),
                    presented: presented_str(),
                }
                .into_rustls())
            }
            Expected::Server(_) | Expected::Ca(_) => {}
        }
        Ok(ServerCertVerified::assertion())
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
