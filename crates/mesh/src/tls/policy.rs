//! The one TLS policy of mtls-mesh, shared by the server, the client and the CA client
//! (DESIGN §2): TLS 1.3 only; TLS_AES_256_GCM_SHA384 then TLS_AES_128_GCM_SHA256 in the server's
//! order; key exchange on secp384r1 and secp521r1 unless more groups are asked for; ECDSA-only
//! signatures; no server-side session resumption.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::ResolvesClientCert;
use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, ResolvesServerCert};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use rustls_pki_types::CertificateDer;

use crate::error::MeshError;
use crate::tls::p521::SECP521R1;

/// A key exchange group that can be added to the default secp384r1 + secp521r1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraGroup {
    X25519,
    X25519MlKem768,
}

impl ExtraGroup {
    fn kx(self) -> &'static dyn SupportedKxGroup {
        match self {
            ExtraGroup::X25519 => aws_lc_rs::kx_group::X25519,
            ExtraGroup::X25519MlKem768 => aws_lc_rs::kx_group::X25519MLKEM768,
        }
    }
}

impl FromStr for ExtraGroup {
    type Err = MeshError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x25519" => Ok(ExtraGroup::X25519),
            "x25519mlkem768" | "x25519-mlkem768" => Ok(ExtraGroup::X25519MlKem768),
            other => Err(MeshError::Config(format!(
                "unknown key exchange group {other:?}: --groups accepts x25519 and X25519MLKEM768 \
                 (secp384r1 and secp521r1 are always on)"
            ))),
        }
    }
}

impl fmt::Display for ExtraGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExtraGroup::X25519 => "x25519",
            ExtraGroup::X25519MlKem768 => "X25519MLKEM768",
        })
    }
}

/// ECDSA only: the mesh refuses RSA and EdDSA peers (DESIGN §2 "All certificates ECDSA").
/// For TLS 1.3 the curve is fixed by the scheme, so P-384/SHA-384 is offered first.
static ECDSA_ONLY: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    // The one table of accepted signature algorithms, shared with pki::verify (so
    // `mtls-inspect verify` judges like the services) and pki::crl.
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

/// The TLS settings every mesh component uses. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct TlsPolicy {
    extra_groups: Vec<ExtraGroup>,
}

impl TlsPolicy {
    /// The default policy plus the given extra groups (offered after the NIST curves).
    pub fn with_extra_groups(extra_groups: Vec<ExtraGroup>) -> Self {
        let mut unique = Vec::new();
        for g in extra_groups {
            if !unique.contains(&g) {
                unique.push(g);
            }
        }
        TlsPolicy {
            extra_groups: unique,
        }
    }

    /// Parses a comma-separated `--groups` value ("x25519,X25519MLKEM768").
    pub fn parse_groups(values: &[String]) -> Result<Vec<ExtraGroup>, MeshError> {
        values
            .iter()
            .flat_map(|v| v.split(','))
            .filter(|s| !s.trim().is_empty())
            .map(ExtraGroup::from_str)
            .collect()
    }

    /// Names of the key exchange groups in preference order.
    pub fn group_names(&self) -> Vec<String> {
        self.kx_groups()
            .iter()
            .map(|g| crate::tls::describe::group_name(g.name()))
            .collect()
    }

    fn kx_groups(&self) -> Vec<&'static dyn SupportedKxGroup> {
        let mut groups = vec![aws_lc_rs::kx_group::SECP384R1, SECP521R1];
        groups.extend(self.extra_groups.iter().map(|g| g.kx()));
        groups
    }

    /// The aws-lc-rs provider cut down to the policy.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        let base = aws_lc_rs::default_provider();
        Arc::new(CryptoProvider {
            cipher_suites: vec![
                aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
                aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
            ],
            kx_groups: self.kx_groups(),
            signature_verification_algorithms: ECDSA_ONLY,
            ..base
        })
    }

    /// The signature algorithms verifiers must use.
    pub fn signature_algorithms(&self) -> WebPkiSupportedAlgorithms {
        ECDSA_ONLY
    }

    /// Checks a TLS 1.2 handshake signature with the policy's algorithms (every verifier of
    /// the mesh delegates here, so the accepted schemes are defined once).
    pub fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &ECDSA_ONLY)
    }

    /// Checks a TLS 1.3 CertificateVerify signature with the policy's algorithms.
    pub fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &ECDSA_ONLY)
    }

    /// A server configuration: client certificates required and checked by `verifier`, our
    /// certificate from `resolver` (so rotation is a swap), server cipher order, and no session
    /// resumption at all. A resumed TLS 1.3 handshake skips client-certificate verification, so
    /// a ticket would let a client revoked after its first handshake back in (docs/security.md).
    pub fn server_config(
        &self,
        verifier: Arc<dyn ClientCertVerifier>,
        resolver: Arc<dyn ResolvesServerCert>,
    ) -> Result<ServerConfig, MeshError> {
        let mut config = ServerConfig::builder_with_provider(self.provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| MeshError::Tls(format!("building the server TLS policy: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(resolver);
        config.ignore_client_order = true;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        config.max_early_data_size = 0;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// A client configuration verifying the server with `verifier` and presenting the
    /// certificate from `resolver` when the server asks for one. HTTP/1.1 only (our client and
    /// the CA client speak HTTP/1.1).
    pub fn client_config(
        &self,
        verifier: Arc<dyn ServerCertVerifier>,
        resolver: Option<Arc<dyn ResolvesClientCert>>,
    ) -> Result<ClientConfig, MeshError> {
        let builder = ClientConfig::builder_with_provider(self.provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| MeshError::Tls(format!("building the client TLS policy: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match resolver {
            Some(r) => builder.with_client_cert_resolver(r),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // No client-side resumption either: after a rotation a resumed session would still
        // carry the identity of the old certificate.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::NamedGroup;

    #[test]
    fn default_policy_is_tls13_aes_gcm_and_nist_curves() {
        let p = TlsPolicy::default().provider();
        let suites: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            suites,
            vec![
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
            ]
        );
        let groups: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, vec![NamedGroup::secp384r1, NamedGroup::secp521r1]);
    }

    #[test]
    fn extra_groups_are_appended_once() {
        let extra =
            TlsPolicy::parse_groups(&["x25519,X25519MLKEM768".into(), "x25519".into()]).unwrap();
        let p = TlsPolicy::with_extra_groups(extra);
        assert_eq!(
            p.group_names(),
            vec!["secp384r1", "secp521r1", "x25519", "X25519MLKEM768"]
        );
        let err = TlsPolicy::parse_groups(&["secp256r1".into()]).unwrap_err();
        assert!(err.to_string().contains("x25519"), "{err}");
    }
}
