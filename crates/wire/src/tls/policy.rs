//! The one TLS policy of mtls-mesh (docs/design.md §2): TLS 1.3 only; TLS_AES_256_GCM_SHA384
//! then TLS_AES_128_GCM_SHA256 in the server's order; key exchange on secp384r1 and secp521r1
//! unless more groups are asked for; ECDSA-only signatures (`pki::sigalg::ECDSA_ONLY`, the table
//! `pki::verify` and the CRL checks use too); no session resumption, no tickets, no 0-RTT.
//!
//! Every listener and client of the project builds its rustls configuration here: the CA's API,
//! the services, the proxy, the load generator, and the inspector. The inspector's probe of
//! servers outside the mesh is the one client that needs more (every TLS 1.3 suite, secp256r1,
//! RSA and Ed25519 signatures: [`TlsPolicy::probe`]); it is built from the same pieces, with the
//! same protocol version and resumption rules.

use std::sync::Arc;

use pki::sigalg::AlgorithmPolicy;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, ResolvesServerCert};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use rustls_pki_types::CertificateDer;

use crate::tls::error::TlsConfigError;
use crate::tls::groups::KxGroup;

/// ALPN of an HTTP server: HTTP/2 preferred, HTTP/1.1 otherwise.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];
/// ALPN of an HTTP/1.1 client (the CA client, `mtls-client`, the load generator).
pub const ALPN_HTTP1: &[&[u8]] = &[b"http/1.1"];
/// No ALPN (raw byte streams, probes).
pub const ALPN_NONE: &[&[u8]] = &[];

/// ECDSA only: the mesh refuses RSA and EdDSA peers (docs/design.md §2). Certificate chains are
/// checked with `pki::sigalg::ECDSA_ONLY`, the one table shared with `pki::verify` (so
/// `mtls-inspect verify` judges like the services) and `pki::crl`. For TLS 1.3 the curve is
/// fixed by the scheme, so P-384/SHA-384 is offered first.
static ECDSA_ONLY: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: pki::sigalg::ECDSA_ONLY,
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[webpki::aws_lc_rs::ECDSA_P384_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[webpki::aws_lc_rs::ECDSA_P256_SHA256],
        ),
        (
            SignatureScheme::ECDSA_NISTP521_SHA512,
            &[webpki::aws_lc_rs::ECDSA_P521_SHA512],
        ),
    ],
};

/// Which TLS 1.3 cipher suites are offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suites {
    /// TLS_AES_256_GCM_SHA384, then TLS_AES_128_GCM_SHA256.
    Mesh,
    /// The mesh suites, then TLS_CHACHA20_POLY1305_SHA256 (the probe of foreign servers).
    AllTls13,
}

/// The TLS settings of one endpoint. Cheap to clone. `TlsPolicy::default()` is the mesh's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPolicy {
    groups: Vec<KxGroup>,
    suites: Suites,
    signatures: AlgorithmPolicy,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy::mesh()
    }
}

impl TlsPolicy {
    /// The mesh policy: secp384r1 and secp521r1, the two AES-GCM suites, ECDSA only.
    pub fn mesh() -> TlsPolicy {
        TlsPolicy {
            groups: KxGroup::MESH.to_vec(),
            suites: Suites::Mesh,
            signatures: AlgorithmPolicy::EcdsaOnly,
        }
    }

    /// The mesh policy plus `extra` groups, offered after the NIST curves (`--groups`). Only
    /// [`KxGroup::MESH_EXTRA`] may be added; duplicates are dropped.
    pub fn with_extra_groups(mut self, extra: &[KxGroup]) -> Result<TlsPolicy, TlsConfigError> {
        for g in extra {
            if !KxGroup::MESH_EXTRA.contains(g) && !KxGroup::MESH.contains(g) {
                return Err(TlsConfigError::GroupNotAllowed {
                    group: g.name(),
                    allowed: KxGroup::list(&KxGroup::MESH_EXTRA),
                });
            }
            if !self.groups.contains(g) {
                self.groups.push(*g);
            }
        }
        Ok(self)
    }

    /// This policy offering exactly `groups`, in that order, any of [`KxGroup::ALL`]: for
    /// clients that measure or probe servers outside the mesh (`mtls-bench --groups`).
    pub fn with_groups(mut self, groups: &[KxGroup]) -> Result<TlsPolicy, TlsConfigError> {
        if groups.is_empty() {
            return Err(TlsConfigError::NoGroups);
        }
        self.groups.clear();
        for g in groups {
            if !self.groups.contains(g) {
                self.groups.push(*g);
            }
        }
        Ok(self)
    }

    /// For probing servers outside the mesh (`mtls-inspect remote`): still TLS 1.3 only and
    /// without resumption, but every TLS 1.3 suite, the groups secp384r1 (first, so a mesh
    /// server answers without a HelloRetryRequest), X25519, secp521r1, secp256r1 and
    /// X25519MLKEM768, and the Web PKI signature algorithms (RSA, Ed25519). The chain a probe
    /// receives is judged by `pki::verify`, not by this policy.
    pub fn probe() -> TlsPolicy {
        TlsPolicy {
            groups: vec![
                KxGroup::Secp384r1,
                KxGroup::X25519,
                KxGroup::Secp521r1,
                KxGroup::Secp256r1,
                KxGroup::X25519MlKem768,
            ],
            suites: Suites::AllTls13,
            signatures: AlgorithmPolicy::WebPki,
        }
    }

    /// The key exchange groups, in preference order.
    pub fn groups(&self) -> &[KxGroup] {
        &self.groups
    }

    /// The names of the groups, in preference order (for reports).
    pub fn group_names(&self) -> Vec<&'static str> {
        self.groups.iter().map(|g| g.name()).collect()
    }

    /// The signature algorithm policy handshakes and chains are checked with.
    pub fn algorithm_policy(&self) -> AlgorithmPolicy {
        self.signatures
    }

    fn kx_groups(&self) -> Vec<&'static dyn SupportedKxGroup> {
        self.groups.iter().map(|g| g.rustls()).collect()
    }

    /// The aws-lc-rs provider cut down to the policy.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        let base = aws_lc_rs::default_provider();
        let mut suites = vec![
            aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
            aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
        ];
        if self.suites == Suites::AllTls13 {
            suites.push(aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256);
        }
        Arc::new(CryptoProvider {
            cipher_suites: suites,
            kx_groups: self.kx_groups(),
            signature_verification_algorithms: self.signature_algorithms(),
            ..base
        })
    }

    /// The signature algorithms verifiers must use: ECDSA only for the mesh, the Web PKI set
    /// for [`TlsPolicy::probe`].
    pub fn signature_algorithms(&self) -> WebPkiSupportedAlgorithms {
        match self.signatures {
            AlgorithmPolicy::EcdsaOnly => ECDSA_ONLY,
            AlgorithmPolicy::WebPki => {
                aws_lc_rs::default_provider().signature_verification_algorithms
            }
        }
    }

    /// Checks a TLS 1.2 handshake signature with the policy's algorithms. Every verifier
    /// delegates here, so the accepted schemes are defined once (the configurations built here
    /// never negotiate TLS 1.2; the verifier traits require the method).
    pub fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.signature_algorithms())
    }

    /// Checks a TLS 1.3 CertificateVerify signature with the policy's algorithms.
    pub fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.signature_algorithms())
    }

    /// The signature schemes verifiers announce.
    pub fn supported_schemes(&self) -> Vec<SignatureScheme> {
        self.signature_algorithms().supported_schemes()
    }

    /// A server configuration: client certificates checked by `verifier` (which decides whether
    /// they are required), our certificate from `resolver` (so rotation is a swap), the
    /// server's cipher suite order, and no session resumption at all: a resumed TLS 1.3
    /// handshake skips client-certificate verification, so a ticket would let a client revoked
    /// after its first handshake back in (docs/security.md). No 0-RTT either.
    pub fn server_config(
        &self,
        verifier: Arc<dyn ClientCertVerifier>,
        resolver: Arc<dyn ResolvesServerCert>,
        alpn: &[&[u8]],
    ) -> Result<ServerConfig, TlsConfigError> {
        let mut config = ServerConfig::builder_with_provider(self.provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|error| TlsConfigError::Rustls {
                side: "server",
                error,
            })?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(resolver);
        config.ignore_client_order = true;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        config.max_early_data_size = 0;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// A client configuration verifying the server with `verifier` and presenting the
    /// certificate from `resolver` when the server asks for one (None: no client certificate).
    /// No resumption: after a rotation a resumed session would still carry the identity of the
    /// old certificate, and a resumed handshake does not check the server's certificate again.
    pub fn client_config(
        &self,
        verifier: Arc<dyn ServerCertVerifier>,
        resolver: Option<Arc<dyn ResolvesClientCert>>,
        alpn: &[&[u8]],
    ) -> Result<ClientConfig, TlsConfigError> {
        let builder = ClientConfig::builder_with_provider(self.provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|error| TlsConfigError::Rustls {
                side: "client",
                error,
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match resolver {
            Some(r) => builder.with_client_cert_resolver(r),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.resumption = rustls::client::Resumption::disabled();
        config.enable_early_data = false;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;
    use rustls::{CipherSuite, NamedGroup};

    #[test]
    fn the_mesh_policy_is_tls13_aes_gcm_nist_curves_and_ecdsa_only() {
        let p = TlsPolicy::default().provider();
        let suites: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            suites,
            vec![
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                CipherSuite::TLS13_AES_128_GCM_SHA256
            ]
        );
        let groups: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, vec![NamedGroup::secp384r1, NamedGroup::secp521r1]);
        let schemes = TlsPolicy::default().supported_schemes();
        assert_eq!(
            schemes,
            vec![
                SignatureScheme::ECDSA_NISTP384_SHA384,
                SignatureScheme::ECDSA_NISTP256_SHA256,
                SignatureScheme::ECDSA_NISTP521_SHA512
            ]
        );
        assert_eq!(
            p.signature_verification_algorithms.all.len(),
            pki::sigalg::ECDSA_ONLY.len()
        );
    }

    #[test]
    fn extra_groups_are_appended_once_and_only_the_allowed_ones() {
        let p = TlsPolicy::mesh()
            .with_extra_groups(&[KxGroup::X25519, KxGroup::X25519MlKem768, KxGroup::X25519])
            .unwrap();
        assert_eq!(
            p.group_names(),
            vec!["secp384r1", "secp521r1", "x25519", "X25519MLKEM768"]
        );
        let err = TlsPolicy::mesh()
            .with_extra_groups(&[KxGroup::Secp256r1])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("secp256r1 cannot be added") && err.contains("x25519, X25519MLKEM768"),
            "{err}"
        );
        assert!(matches!(
            TlsPolicy::mesh().with_groups(&[]),
            Err(TlsConfigError::NoGroups)
        ));
    }

    #[test]
    fn configurations_refuse_resumption_tickets_and_early_data() {
        let policy = TlsPolicy::mesh();
        let resolver = crate::tls::CertResolver::new(test_key());
        let server = policy
            .server_config(
                rustls::server::WebPkiClientVerifier::no_client_auth(),
                resolver,
                ALPN_HTTP,
            )
            .unwrap();
        assert!(server.ignore_client_order);
        assert_eq!(server.send_tls13_tickets, 0);
        assert_eq!(server.max_early_data_size, 0);
        assert!(!server.session_storage.can_cache());
        assert_eq!(
            server.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let client = policy
            .client_config(
                Arc::new(AcceptAnything(policy.clone())),
                Some(crate::tls::CertResolver::new(test_key())),
                ALPN_HTTP1,
            )
            .unwrap();
        assert!(!client.enable_early_data);
        assert_eq!(client.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    /// A self-signed certificate and its key.
    fn test_key() -> Arc<rustls::sign::CertifiedKey> {
        use rustls_pki_types::pem::PemObject;
        let now = time::OffsetDateTime::now_utc();
        let ca = pki::CaMaterial::generate_root("Policy Test", now).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(ca.key_pem().unwrap().as_bytes())
            .unwrap();
        Arc::new(
            rustls::sign::CertifiedKey::from_der(
                vec![ca.cert_der().clone()],
                key,
                &TlsPolicy::mesh().provider(),
            )
            .unwrap(),
        )
    }

    #[derive(Debug)]
    struct AcceptAnything(TlsPolicy);

    impl ServerCertVerifier for AcceptAnything {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls_pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls_pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(m, c, d)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(m, c, d)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_schemes()
        }
    }

    #[test]
    fn the_probe_is_broader_but_still_tls13_only() {
        let p = TlsPolicy::probe();
        let provider = p.provider();
        assert!(provider
            .cipher_suites
            .iter()
            .all(|s| s.version() == &rustls::version::TLS13));
        assert_eq!(provider.cipher_suites.len(), 3);
        assert_eq!(p.groups()[0], KxGroup::Secp384r1);
        assert!(p.groups().contains(&KxGroup::Secp521r1));
        assert!(p
            .supported_schemes()
            .contains(&SignatureScheme::RSA_PSS_SHA256));
    }
}
