//! Client of the CA HTTP API (docs/ca-api.md, docs/design.md §4): sign with a join token, renew
//! over mTLS, fetch the CRL and the trust bundle. Every call opens a fresh TLS 1.3 connection
//! verified against the service's current roots, so a renewal never rides on a connection that
//! presented an older certificate. The server must prove the CA's own identity
//! `spiffe://<td>/ca` besides its chain and host name; nothing (no join token, no CSR) is sent to
//! anyone else. With several CA URLs, a call goes to the first that answers; an answer, a
//! refusal included, is final (every replica serves the same store).

pub(crate) mod bootstrap;
mod verifier;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use wire::tls::{CertResolver, TlsPolicy, ALPN_HTTP1};

use crate::error::{HttpError, MeshError, Result, TrustError, Unanswered};
use crate::https::{self, HttpsUrl, Response};
use crate::tls::MeshServerVerifier;
use crate::trust::TrustState;
use verifier::CaVerifier;

pub(crate) use bootstrap::fetch_root_by_fingerprint;

/// Largest response accepted from the CA.
const MAX_RESPONSE: usize = 4 << 20;

/// A boxed future borrowing its receiver.
pub(crate) type CaFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// What the services ask of the CA. `CaClient` talks HTTPS to mtls-ca; the unit tests of
/// enrollment, rotation and refresh use an in-process fake.
pub(crate) trait CaApi: Send + Sync + 'static {
    /// `POST /api/v1/sign` with a join token.
    fn sign<'a>(
        &'a self,
        csr_pem: &'a str,
        token: &'a str,
        requested_id: &'a pki::SpiffeId,
        ttl: Option<Duration>,
    ) -> CaFuture<'a, SignResponse>;

    /// `POST /api/v1/renew`, authenticated by presenting `current`.
    fn renew<'a>(
        &'a self,
        csr_pem: &'a str,
        ttl: Option<Duration>,
        current: Arc<CertifiedKey>,
    ) -> CaFuture<'a, SignResponse>;

    /// `GET /api/v1/crl`: the DER CRL (its signature is checked by the caller).
    fn crl(&self) -> CaFuture<'_, Vec<u8>>;

    /// `GET /api/v1/crl?issuer=<sha256>`: the DER CRL signed by the root with this
    /// fingerprint, or None when the CA signs none as that root (404: during a root rotation
    /// only the active and the old root sign one). A CA without this endpoint has none.
    fn crl_of<'a>(&'a self, root_fingerprint: &'a str) -> CaFuture<'a, Option<Vec<u8>>> {
        let _ = root_fingerprint;
        Box::pin(async { Ok(None) })
    }

    /// `GET /api/v1/bundle`: the roots the CA wants trusted, with the cross-certificates that
    /// vouch for new ones (PEM). The caller decides what to accept (`trust_bundle`).
    fn bundle(&self) -> CaFuture<'_, Vec<u8>>;

    /// `GET /api/v1/bundle/federated`: the SPIFFE bundle of each federated trust domain
    /// (JSON); None from a CA without federation (an older one, or a fake).
    fn federated_bundles(&self) -> CaFuture<'_, Option<Vec<u8>>> {
        Box::pin(async { Ok(None) })
    }
}

/// The CA's answer to sign and renew.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct SignResponse {
    pub(crate) certificate: String,
    /// The issuer chain up to the root; its intermediates go after the leaf.
    #[serde(default)]
    pub(crate) chain: Vec<String>,
    #[allow(dead_code)] // documented field; the certificate itself is authoritative
    pub(crate) expires_at: String,
    pub(crate) serial: String,
    #[allow(dead_code)] // documented field; the certificate itself is authoritative
    pub(crate) spiffe_id: String,
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

/// The `code` and `message` of a CA refusal (`{"error":{"code","message"}}`, docs/ca-api.md),
/// or `http` and the start of the body when the answer is not that JSON. The one reader of
/// CA errors, for this client and the agent's.
pub fn refusal_of(body: &[u8]) -> (String, String) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => (
            "http".into(),
            String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
        ),
    }
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// The HTTPS client of the CA's API.
#[derive(Clone)]
pub(crate) struct CaClient {
    urls: Arc<Vec<HttpsUrl>>,
    /// The URL that answered last; calls start there.
    preferred: Arc<AtomicUsize>,
    trust: Arc<TrustState>,
    policy: TlsPolicy,
    /// `spiffe://<td>/ca` for the trust domain of the service's own ID.
    ca_id: pki::SpiffeId,
    timeout: Duration,
}

fn ttl_string(ttl: Option<Duration>) -> Option<String> {
    ttl.map(|d| format!("{}s", d.as_secs().max(1)))
}

/// True when another CA URL may answer where this one did not: nothing answered at all.
fn unanswered(err: &MeshError) -> bool {
    matches!(err, MeshError::Ca { .. })
}

impl CaClient {
    /// `trust` must already hold the CA root (from a file or the fingerprint bootstrap);
    /// `trust_domain` is the one of the service's own SPIFFE ID, whose CA identity
    /// (`spiffe://<td>/ca`) the server must present. `urls` must not be empty.
    pub(crate) fn new(
        urls: Vec<HttpsUrl>,
        trust: Arc<TrustState>,
        policy: TlsPolicy,
        trust_domain: &pki::TrustDomain,
    ) -> CaClient {
        CaClient {
            urls: Arc::new(urls),
            preferred: Arc::new(AtomicUsize::new(0)),
            trust,
            policy,
            ca_id: trust_domain.ca_id(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Calls `endpoint` on the preferred URL, then on the others in order while none answers.
    async fn call(
        &self,
        method: Method,
        endpoint: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
        client_cert: Option<Arc<CertifiedKey>>,
    ) -> Result<Response> {
        let count = self.urls.len().max(1);
        let first = self.preferred.load(Ordering::Relaxed) % count;
        let mut last = None;
        for i in 0..self.urls.len() {
            let index = (first + i) % count;
            let url = &self.urls[index];
            match self
                .call_one(
                    url,
                    method.clone(),
                    endpoint,
                    headers,
                    body.clone(),
                    client_cert.clone(),
                )
                .await
            {
                Err(e) if unanswered(&e) => {
                    if self.urls.len() > 1 {
                        tracing::debug!(event = "ca_unanswered", url = %url, error = %e, "{e}; trying the next CA URL");
                    }
                    last = Some(e);
                }
                other => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return other;
                }
            }
        }
        Err(last.unwrap_or(MeshError::Config(crate::error::ConfigError::NoCaUrl)))
    }

    async fn call_one(
        &self,
        url: &HttpsUrl,
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
        let config = Arc::new(
            self.policy
                .client_config(verifier.clone(), resolver, ALPN_HTTP1)?,
        );
        let path = format!("{}{endpoint}", url.path);
        let full = format!("{url}{endpoint}");
        let work = async {
            let mut conn = https::connect(config, url, self.timeout).await?;
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
                error: Unanswered::Timeout(self.timeout),
            })?
            .map_err(|e| match verifier.not_the_ca() {
                // Not a transport problem: someone else answers at the CA's address. Reported
                // as a trust failure, which is never retried.
                Some(error) => TrustError::NotTheCa {
                    url: full.clone(),
                    error,
                }
                .into(),
                None => match e {
                    MeshError::Connect(c) => MeshError::Ca {
                        url: full.clone(),
                        error: Unanswered::Connect(c),
                    },
                    MeshError::Http(h) => MeshError::Ca {
                        url: full.clone(),
                        error: Unanswered::Http(h),
                    },
                    other => other,
                },
            })?;
        if response.status.is_success() {
            return Ok(response);
        }
        let (code, message) = refusal_of(&response.body);
        Err(MeshError::CaRefused {
            status: response.status.as_u16(),
            code,
            message,
        })
    }

    fn parse_sign(response: Response) -> Result<SignResponse> {
        serde_json::from_slice(&response.body).map_err(|e| MeshError::CaRefused {
            status: response.status.as_u16(),
            code: "bad_response".into(),
            message: format!("the CA's answer is not the documented JSON: {e}"),
        })
    }
}

impl CaApi for CaClient {
    fn sign<'a>(
        &'a self,
        csr_pem: &'a str,
        token: &'a str,
        requested_id: &'a pki::SpiffeId,
        ttl: Option<Duration>,
    ) -> CaFuture<'a, SignResponse> {
        Box::pin(async move {
            let id = requested_id.to_string();
            let body = serde_json::to_vec(&SignRequest {
                csr: csr_pem,
                requested_id: &id,
                ttl: ttl_string(ttl),
            })
            .map_err(HttpError::Encode)?;
            // The token is sent only in the Authorization header and never logged.
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
        })
    }

    fn renew<'a>(
        &'a self,
        csr_pem: &'a str,
        ttl: Option<Duration>,
        current: Arc<CertifiedKey>,
    ) -> CaFuture<'a, SignResponse> {
        Box::pin(async move {
            let body = serde_json::to_vec(&RenewRequest {
                csr: csr_pem,
                ttl: ttl_string(ttl),
            })
            .map_err(HttpError::Encode)?;
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
        })
    }

    fn crl(&self) -> CaFuture<'_, Vec<u8>> {
        Box::pin(async move {
            Ok(self
                .call(Method::GET, "/api/v1/crl", &[], None, None)
                .await?
                .body
                .to_vec())
        })
    }

    fn crl_of<'a>(&'a self, root_fingerprint: &'a str) -> CaFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let endpoint = format!("/api/v1/crl?issuer={root_fingerprint}");
            match self.call(Method::GET, &endpoint, &[], None, None).await {
                Ok(response) => Ok(Some(response.body.to_vec())),
                Err(MeshError::CaRefused { status: 404, .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn bundle(&self) -> CaFuture<'_, Vec<u8>> {
        Box::pin(async move {
            Ok(self
                .call(Method::GET, "/api/v1/bundle", &[], None, None)
                .await?
                .body
                .to_vec())
        })
    }

    fn federated_bundles(&self) -> CaFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            match self
                .call(Method::GET, "/api/v1/bundle/federated", &[], None, None)
                .await
            {
                Ok(response) => Ok(Some(response.body.to_vec())),
                // A CA from before federation: nothing federated.
                Err(MeshError::CaRefused { status: 404, .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }
}
