//! Client of the CA HTTP API (DESIGN §4): sign with a join token, renew over mTLS, fetch the CRL
//! and the trust bundle. Every call opens a fresh TLS 1.3 connection verified against the
//! service's current roots, so a renewal never rides on a connection that presented an older
//! certificate. The server must prove the CA's own identity `spiffe://<td>/ca` besides its chain
//! and host name; nothing (no join token, no CSR) is sent to anyone else.

pub mod bootstrap;
mod verifier;

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use crate::error::{MeshError, Result};
use crate::https::{self, HttpsUrl, Response};
use crate::tls::describe::client_side_reason;
use crate::tls::{CertResolver, MeshServerVerifier, TlsPolicy};
use crate::trust::TrustState;
use verifier::CaVerifier;

pub use bootstrap::fetch_root_by_fingerprint;

/// Largest response accepted from the CA.
const MAX_RESPONSE: usize = 4 << 20;

/// The CA's answer to sign and renew.
#[derive(Clone, Debug, Deserialize)]
pub struct SignResponse {
    pub certificate: String,
    #[serde(default)]
    pub chain: Vec<String>,
    pub expires_at: String,
    pub serial: String,
    pub spiffe_id: String,
}

#[derive(Serialize)]
struct SignRequest<'a> {
    csr: &'a str,
    requested_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
}

#[derive(Serialize)]
struct RenewRequest<'a> {
    csr: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

#[derive(Clone)]
pub struct CaClient {
    url: HttpsUrl,
    trust: Arc<TrustState>,
    policy: TlsPolicy,
    /// `spiffe://<td>/ca` for the trust domain of the service's own ID.
    ca_id: pki::SpiffeId,
    timeout: Duration,
}

fn ttl_string(ttl: Option<Duration>) -> Option<String> {
    ttl.map(|d| format!("{}s", d.as_secs().max(1)))
}

impl CaClient {
    /// `trust` must already hold the CA root (from `--ca-cert` or the fingerprint bootstrap);
    /// `trust_domain` is the one of the service's own SPIFFE ID, whose CA identity
    /// (`spiffe://<td>/ca`) the server must present.
    pub fn new(
        url: HttpsUrl,
        trust: Arc<TrustState>,
        policy: TlsPolicy,
        trust_domain: &pki::TrustDomain,
    ) -> CaClient {
        CaClient {
            url,
            trust,
            policy,
            ca_id: trust_domain.ca_id(),
            timeout: Duration::from_secs(10),
        }
    }

    pub fn url(&self) -> &HttpsUrl {
        &self.url
    }

    async fn call(
        &self,
        method: Method,
        endpoint: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
        client_cert: Option<Arc<CertifiedKey>>,
    ) -> Result<Response> {
        let verifier = CaVerifier::new(MeshServerVerifier::for_ca(
            self.trust.clone(),
            self.policy.clone(),
            self.ca_id.clone(),
        )?);
        let resolver = client_cert
            .map(|k| CertResolver::new(k) as Arc<dyn rustls::client::ResolvesClientCert>);
        let config = Arc::new(self.policy.client_config(verifier.clone(), resolver)?);
        let path = format!("{}{endpoint}", self.url.path);
        let full = format!("{}{endpoint}", self.url);
        let work = async {
            let mut conn = https::connect(config, &self.url, self.timeout).await?;
            conn.request(
                method,
                &path,
                headers,
                body.map(|b| ("application/json", b)),
                MAX_RESPONSE,
            )
            .await
        };
        let response = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| MeshError::Ca {
                url: full.clone(),
                message: format!("no answer within {:?}", self.timeout),
            })?
            .map_err(|e| match verifier.not_the_ca() {
                // Not a transport problem: someone else answers at the CA's address. Reported
                // as a trust failure, which is never retried.
                Some(refusal) => MeshError::Trust(format!(
                    "refusing to talk to {full}: {}",
                    client_side_reason(&refusal)
                )),
                None => MeshError::Ca {
                    url: full.clone(),
                    message: e.to_string(),
                },
            })?;
        if response.status.is_success() {
            return Ok(response);
        }
        Err(match serde_json::from_slice::<ErrorBody>(&response.body) {
            Ok(b) => MeshError::CaRefused {
                status: response.status.as_u16(),
                code: b.error.code,
                message: b.error.message,
            },
            Err(_) => MeshError::CaRefused {
                status: response.status.as_u16(),
                code: "http".into(),
                message: String::from_utf8_lossy(&response.body[..response.body.len().min(300)])
                    .into_owned(),
            },
        })
    }

    fn parse_sign(response: Response) -> Result<SignResponse> {
        serde_json::from_slice(&response.body).map_err(|e| MeshError::CaRefused {
            status: response.status.as_u16(),
            code: "bad_response".into(),
            message: format!("the CA's answer is not the documented JSON: {e}"),
        })
    }

    /// `POST /api/v1/sign` with a join token. The token is sent only in the Authorization header
    /// and never logged.
    pub async fn sign(
        &self,
        csr_pem: &str,
        token: &str,
        requested_id: &pki::SpiffeId,
        ttl: Option<Duration>,
    ) -> Result<SignResponse> {
        let id = requested_id.to_string();
        let body = serde_json::to_vec(&SignRequest {
            csr: csr_pem,
            requested_id: &id,
            ttl: ttl_string(ttl),
        })
        .map_err(|e| MeshError::Http(e.to_string()))?;
        let response = self
            .call(
                Method::POST,
                "/api/v1/sign",
                &[("authorization", format!("Bearer {token}"))],
                Some(body),
                None,
            )
            .await?;
        Self::parse_sign(response)
    }

    /// `POST /api/v1/renew`, authenticated by presenting `current` over mTLS.
    pub async fn renew(
        &self,
        csr_pem: &str,
        ttl: Option<Duration>,
        current: Arc<CertifiedKey>,
    ) -> Result<SignResponse> {
        let body = serde_json::to_vec(&RenewRequest {
            csr: csr_pem,
            ttl: ttl_string(ttl),
        })
        .map_err(|e| MeshError::Http(e.to_string()))?;
        let response = self
            .call(
                Method::POST,
                "/api/v1/renew",
                &[],
                Some(body),
                Some(current),
            )
            .await?;
        Self::parse_sign(response)
    }

    /// `GET /api/v1/crl`: the DER CRL (its signature is checked by the caller).
    pub async fn crl(&self) -> Result<Vec<u8>> {
        Ok(self
            .call(Method::GET, "/api/v1/crl", &[], None, None)
            .await?
            .body
            .to_vec())
    }

    /// `GET /api/v1/bundle`: the roots the CA wants trusted, with the cross-certificates that
    /// vouch for new ones (PEM). The caller decides what to accept (`trust_bundle`).
    pub async fn bundle(&self) -> Result<Vec<u8>> {
        Ok(self
            .call(Method::GET, "/api/v1/bundle", &[], None, None)
            .await?
            .body
            .to_vec())
    }
}
