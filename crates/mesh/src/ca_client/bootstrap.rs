//! Root bootstrap by fingerprint, without trust on first use.
//!
//! With `--ca-fingerprint` the client has no root yet, so it cannot authenticate the CA's TLS
//! certificate. It fetches `GET /api/v1/ca` over a TLS connection whose server certificate is
//! not checked, then accepts the downloaded root only if its SHA-256 equals the fingerprint the
//! operator gave. A man in the middle can serve any bytes but cannot produce a certificate with
//! that hash, so the root is authenticated by its content; every later request verifies the CA
//! normally against it.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::{MeshError, Result};
use crate::https::{self, HttpsUrl};
use crate::tls::TlsPolicy;
use crate::trust::Roots;

/// Accepts any server certificate (handshake signatures are still checked). Used for exactly
/// one request whose response is verified by hash.
#[derive(Debug)]
struct UnauthenticatedFetch(TlsPolicy);

impl ServerCertVerifier for UnauthenticatedFetch {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_algorithms().supported_schemes()
    }
}

/// Downloads the CA root and checks it against `fingerprint` (hex SHA-256 of the root DER, any
/// common spelling).
pub async fn fetch_root_by_fingerprint(
    url: &HttpsUrl,
    fingerprint: &str,
    policy: &TlsPolicy,
    timeout: Duration,
) -> Result<Roots> {
    let expected = pki::certinfo::normalize_fingerprint(fingerprint).ok_or_else(|| {
        MeshError::Config(format!(
            "--ca-fingerprint {fingerprint:?} is not a SHA-256 fingerprint (64 hex digits, as \
             mtls-ca prints at start)"
        ))
    })?;
    let config = policy.client_config(Arc::new(UnauthenticatedFetch(policy.clone())), None)?;
    let mut conn = https::connect(Arc::new(config), url, timeout).await?;
    let path = format!("{}/api/v1/ca", url.path);
    let response = conn.request(Method::GET, &path, &[], None, 1 << 20).await?;
    if !response.status.is_success() {
        return Err(MeshError::Ca {
            url: format!("{url}{}", "/api/v1/ca"),
            message: format!("HTTP {}", response.status),
        });
    }
    let certs = pki::pem::parse_certificates(&response.body)?;
    let root = certs
        .into_iter()
        .find(|c| pki::sha256_hex(c) == expected)
        .ok_or_else(|| {
            MeshError::Trust(format!(
                "the CA at {url} served a root whose SHA-256 fingerprint is not {expected}; \
                 refusing it (wrong --ca-fingerprint, or someone is intercepting the connection)"
            ))
        })?;
    Roots::new(vec![root])
}
