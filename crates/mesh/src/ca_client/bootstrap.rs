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

use wire::tls::{TlsPolicy, ALPN_HTTP1};

use crate::config::Fingerprint;
use crate::error::{MeshError, Result, TrustError};
use crate::https::{self, HttpsUrl};
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
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Downloads the CA root from the first of `urls` that answers and checks it against
/// `fingerprint`.
pub(crate) async fn fetch_root_by_fingerprint(
    urls: &[HttpsUrl],
    fingerprint: &Fingerprint,
    policy: &TlsPolicy,
    timeout: Duration,
) -> Result<Roots> {
    let mut last = None;
    for url in urls {
        match fetch_one(url, fingerprint, policy, timeout).await {
            Err(e @ (MeshError::Connect(_) | MeshError::Http(_) | MeshError::Ca { .. })) => {
                last = Some(e)
            }
            other => return other,
        }
    }
    Err(last.unwrap_or(MeshError::Config(crate::error::ConfigError::NoCaUrl)))
}

async fn fetch_one(
    url: &HttpsUrl,
    fingerprint: &Fingerprint,
    policy: &TlsPolicy,
    timeout: Duration,
) -> Result<Roots> {
    let expected = fingerprint.as_hex();
    let config = policy.client_config(
        Arc::new(UnauthenticatedFetch(policy.clone())),
        None,
        ALPN_HTTP1,
    )?;
    let mut conn = https::connect(Arc::new(config), url, timeout).await?;
    let path = format!("{}/api/v1/ca", url.path);
    let response = conn.request(Method::GET, &path, &[], None, 1 << 20).await?;
    if !response.status.is_success() {
        return Err(MeshError::CaRefused {
            status: response.status.as_u16(),
            code: "http".into(),
            message: format!("GET {url}/api/v1/ca answered {}", response.status),
        });
    }
    let certs = pki::pem::parse_certificates(&response.body)?;
    let presented: Vec<String> = certs.iter().map(|c| pki::sha256_hex(c)).collect();
    let root = certs
        .into_iter()
        .find(|c| pki::sha256_hex(c) == expected)
        .ok_or_else(|| TrustError::RootFingerprint {
            url: url.to_string(),
            expected: expected.to_string(),
            presented,
        })?;
    Roots::new(vec![root])
}
