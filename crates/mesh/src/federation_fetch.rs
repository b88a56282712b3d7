//! Fetching a foreign trust domain's SPIFFE bundle from its bundle endpoint on the
//! `https_spiffe` profile (SPIFFE Trust Domain and Bundle spec, section 5.2.2): the endpoint's
//! server certificate is an X509-SVID of that trust domain carrying the endpoint SPIFFE ID the
//! operator configured, validated against that domain's own bundle. The mtls-ca federation
//! refresher uses it.
//!
//! Before the first bundle is stored there is nothing to validate against: the operator gave
//! the SHA-256 of one root of the other domain instead. The first fetch then records the
//! server's chain, and accepts the answer only when the bundle holds that root AND the
//! recorded chain validates against it with the endpoint SPIFFE ID. Checking the bundle's
//! content alone would not do: a man in the middle could serve the genuine bundle with a root
//! of its own added, and the fingerprinted root would still be found.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::Method;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use pki::spiffe_bundle::SpiffeBundle;
use wire::tls::{TlsPolicy, ALPN_HTTP1};

use crate::error::{MeshError, Result};
use crate::https::{self, HttpsUrl};
use crate::tls::MeshServerVerifier;
use crate::trust::{Roots, TrustState};

/// A bundle endpoint's answer is at most this large.
const MAX_BUNDLE: usize = 1 << 20;

/// How the endpoint is authenticated.
#[derive(Clone, Debug)]
pub enum EndpointTrust {
    /// First fetch: hex SHA-256 of one root of the other domain.
    Fingerprint(String),
    /// Later fetches: the domain's roots from the last good bundle.
    Roots(Roots),
}

/// Why a fetch failed; the last good bundle stays in use.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The endpoint could not be reached, refused the TLS handshake or broke off.
    #[error("{0}")]
    Unreachable(MeshError),
    /// The endpoint answered with an HTTP error.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The endpoint.
        url: String,
        /// Its status code.
        status: u16,
    },
    /// The answer is not a usable SPIFFE bundle.
    #[error("{url}: {error}")]
    Bundle {
        /// The endpoint.
        url: String,
        /// Why.
        error: pki::spiffe_bundle::BundleError,
    },
    /// The first fetch: the bundle lacks the fingerprinted root, or the server does not chain
    /// to it with the endpoint SPIFFE ID.
    #[error("{url}: {reason}")]
    Bootstrap {
        /// The endpoint.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Records the server's chain for the bootstrap check after the answer; handshake signatures
/// are still verified.
#[derive(Debug)]
struct RecordChain {
    policy: TlsPolicy,
    chain: Mutex<Option<Vec<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for RecordChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        *self.chain.lock().unwrap_or_else(|p| p.into_inner()) = Some(chain);
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

/// Fetches the bundle at `url` (the full endpoint URL) from a server that must present
/// `endpoint_id`, authenticated as `trust` says. Returns the bundle's bytes as served and
/// the bundle parsed.
pub async fn fetch_bundle(
    url: &HttpsUrl,
    endpoint_id: &pki::SpiffeId,
    trust: &EndpointTrust,
    policy: &TlsPolicy,
    timeout: Duration,
) -> std::result::Result<(Vec<u8>, SpiffeBundle), FetchError> {
    let recorder = Arc::new(RecordChain {
        policy: policy.clone(),
        chain: Mutex::new(None),
    });
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        EndpointTrust::Fingerprint(_) => recorder.clone(),
        EndpointTrust::Roots(roots) => endpoint_verifier(roots.clone(), policy, endpoint_id)
            .map_err(FetchError::Unreachable)?,
    };
    let config = policy
        .client_config(verifier, None, ALPN_HTTP1)
        .map_err(|e| FetchError::Unreachable(e.into()))?;
    let body = async {
        let mut conn = https::connect(Arc::new(config), url, timeout).await?;
        conn.request(Method::GET, &url.path, &[], None, MAX_BUNDLE)
            .await
    }
    .await
    .map_err(FetchError::Unreachable)?;
    if !body.status.is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: body.status.as_u16(),
        });
    }
    let bundle = SpiffeBundle::parse(&body.body).map_err(|error| FetchError::Bundle {
        url: url.to_string(),
        error,
    })?;
    if let EndpointTrust::Fingerprint(expected) = trust {
        let chain = recorder
            .chain
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        bootstrap_check(url, endpoint_id, expected, &bundle, chain, policy)?;
    }
    Ok((body.body.to_vec(), bundle))
}

/// The server verifier for an endpoint of a domain whose roots we hold.
fn endpoint_verifier(
    roots: Roots,
    policy: &TlsPolicy,
    endpoint_id: &pki::SpiffeId,
) -> Result<Arc<dyn ServerCertVerifier>> {
    let verifier = MeshServerVerifier::new(
        TrustState::new(roots),
        policy.clone(),
        Some(endpoint_id.clone()),
    )?;
    Ok(verifier)
}

fn bootstrap_check(
    url: &HttpsUrl,
    endpoint_id: &pki::SpiffeId,
    expected: &str,
    bundle: &SpiffeBundle,
    chain: Option<Vec<CertificateDer<'static>>>,
    policy: &TlsPolicy,
) -> std::result::Result<(), FetchError> {
    let refuse = |reason: String| FetchError::Bootstrap {
        url: url.to_string(),
        reason,
    };
    let root = bundle
        .x509_authorities
        .iter()
        .find(|der| pki::sha256_hex(der) == expected)
        .ok_or_else(|| {
            refuse(format!(
                "the bundle holds no root with the fingerprint sha256:{expected} given at \
                 `federation add` (it holds {}); refused",
                bundle
                    .x509_authorities
                    .iter()
                    .map(|d| format!("sha256:{}", pki::sha256_hex(d)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let chain = chain
        .filter(|c| !c.is_empty())
        .ok_or_else(|| refuse("the server presented no certificate".into()))?;
    let roots = Roots::new(vec![CertificateDer::from(root.clone())])
        .map_err(|e| refuse(format!("the fingerprinted root is unusable: {e}")))?;
    let verifier =
        endpoint_verifier(roots, policy, endpoint_id).map_err(FetchError::Unreachable)?;
    let server_name = url.server_name().map_err(|e| refuse(e.to_string()))?;
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], UnixTime::now())
        .map_err(|e| {
            refuse(format!(
                "the server's certificate does not chain to the fingerprinted root as \
                 {endpoint_id}: {e}; refused (not the endpoint of that trust domain, or someone \
                 is intercepting the connection)"
            ))
        })?;
    Ok(())
}
