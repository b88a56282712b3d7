//! The CA's agent endpoints (docs/ca-api.md): registration entries, SVIDs and JWT-SVIDs for
//! them, the SPIFFE bundle and the CRL. [`HttpCa`] calls them over mTLS with the agent's own
//! node identity through `mesh::MeshClient` (which follows the agent's rotation and checks the
//! CA's certificate and `spiffe://<td>/ca` identity); the cache's unit tests use a fake.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use mesh::{HttpsUrl, Mesh, MeshClient};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::error::CaCallError;

/// A boxed future borrowing its receiver.
pub type CaFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CaCallError>> + Send + 'a>>;

/// One registration entry whose parent is this agent.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Entry {
    /// The entry's id at the CA.
    pub id: String,
    /// The identity a matching workload gets.
    pub spiffe_id: String,
    /// The agent (this one).
    pub parent_id: String,
    /// All must be observed for a workload to match.
    pub selectors: Vec<pki::selector::Selector>,
    /// Lifetime of the entry's SVIDs.
    pub ttl_seconds: u64,
    /// DNS names of the entry's SVIDs.
    #[serde(default)]
    pub dns: Vec<String>,
}

/// `GET /api/v1/agent/entries`.
#[derive(Clone, Debug, Deserialize)]
pub struct Entries {
    /// Changes whenever any entry is created or deleted.
    pub revision: u64,
    /// The entries whose parent is this agent.
    pub entries: Vec<Entry>,
}

/// `POST /api/v1/agent/svid` (the same answer as `POST /api/v1/sign`).
#[derive(Clone, Debug, Deserialize)]
pub struct SvidAnswer {
    /// The leaf (PEM).
    pub certificate: String,
    /// Intermediates (PEM), if any.
    #[serde(default)]
    pub chain: Vec<String>,
}

/// `POST /api/v1/agent/jwt`.
#[derive(Clone, Debug, Deserialize)]
pub struct JwtAnswer {
    /// The compact JWS.
    pub token: String,
}

#[derive(Serialize)]
struct SvidRequest<'a> {
    entry_id: &'a str,
    csr: &'a str,
}

#[derive(Serialize)]
struct JwtRequest<'a> {
    entry_id: &'a str,
    audience: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
}

/// What the agent asks of the CA.
pub trait AgentCa: Send + Sync + 'static {
    /// The entries whose parent is this agent.
    fn entries(&self) -> CaFuture<'_, Entries>;
    /// An X.509-SVID for `entry_id` from a PEM CSR.
    fn svid<'a>(&'a self, entry_id: &'a str, csr_pem: &'a str) -> CaFuture<'a, SvidAnswer>;
    /// A JWT-SVID for `entry_id`.
    fn jwt<'a>(
        &'a self,
        entry_id: &'a str,
        audience: &'a [String],
        ttl: Option<Duration>,
    ) -> CaFuture<'a, JwtAnswer>;
    /// The SPIFFE bundle (JWK set, JSON).
    fn spiffe_bundle(&self) -> CaFuture<'_, Vec<u8>>;
    /// The CRL (DER).
    fn crl(&self) -> CaFuture<'_, Vec<u8>>;
    /// `GET /api/v1/bundle/federated`: the SPIFFE bundle of each federated trust domain
    /// (JSON); None from a CA without federation.
    fn federated_bundles(&self) -> CaFuture<'_, Option<Vec<u8>>> {
        Box::pin(async { Ok(None) })
    }
}

/// The CA's HTTPS API, called with the agent's node certificate. With several URLs, a call goes
/// to the first that answers (replicas serve the same store).
pub struct HttpCa {
    clients: Vec<(HttpsUrl, Mutex<MeshClient>)>,
}

/// Bounds each connection and each answer.
const CA_TIMEOUT: Duration = Duration::from_secs(10);

impl HttpCa {
    /// A client of `urls` presenting `mesh`'s certificate; the server must prove
    /// `spiffe://<td>/ca` of the agent's trust domain.
    pub fn new(urls: &[HttpsUrl], mesh: &Mesh, agent_id: &pki::SpiffeId) -> mesh::Result<HttpCa> {
        let ca_id = agent_id.trust_domain().ca_id();
        let clients = urls
            .iter()
            .map(|u| {
                MeshClient::new(u.clone(), mesh, Some(ca_id.clone()), CA_TIMEOUT)
                    .map(|c| (u.clone(), Mutex::new(c)))
            })
            .collect::<mesh::Result<Vec<_>>>()?;
        Ok(HttpCa { clients })
    }

    async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, CaCallError> {
        let mut last = CaCallError::Unreachable("no CA URL configured".into());
        for (url, client) in &self.clients {
            let full = format!("{}{path}", url.path);
            let body = body.clone().map(|b| ("application/json", b));
            let mut client = client.lock().await;
            match client.request(method.clone(), &full, body).await {
                Ok(exchange) => {
                    let r = exchange.response;
                    if r.status.is_success() {
                        return Ok(r.body.to_vec());
                    }
                    let (code, message) = mesh::ca_refusal_of(&r.body);
                    return Err(CaCallError::Refused {
                        what: what.to_string(),
                        status: r.status.as_u16(),
                        code,
                        message,
                    });
                }
                Err(e) => last = CaCallError::Unreachable(format!("{url}: {e}")),
            }
        }
        Err(last)
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, CaCallError> {
        let bytes = self.call(what, method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| CaCallError::BadAnswer {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs of strings cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

impl AgentCa for HttpCa {
    fn entries(&self) -> CaFuture<'_, Entries> {
        Box::pin(self.call_json("the entry list", Method::GET, "/api/v1/agent/entries", None))
    }

    fn svid<'a>(&'a self, entry_id: &'a str, csr_pem: &'a str) -> CaFuture<'a, SvidAnswer> {
        Box::pin(async move {
            let body = to_json(&SvidRequest {
                entry_id,
                csr: csr_pem,
            });
            self.call_json(
                &format!("an SVID for entry {entry_id}"),
                Method::POST,
                "/api/v1/agent/svid",
                Some(body),
            )
            .await
        })
    }

    fn jwt<'a>(
        &'a self,
        entry_id: &'a str,
        audience: &'a [String],
        ttl: Option<Duration>,
    ) -> CaFuture<'a, JwtAnswer> {
        Box::pin(async move {
            let body = to_json(&JwtRequest {
                entry_id,
                audience,
                ttl: ttl.map(|d| format!("{}s", d.as_secs().max(1))),
            });
            self.call_json(
                &format!("a JWT-SVID for entry {entry_id}"),
                Method::POST,
                "/api/v1/agent/jwt",
                Some(body),
            )
            .await
        })
    }

    fn spiffe_bundle(&self) -> CaFuture<'_, Vec<u8>> {
        Box::pin(self.call(
            "the SPIFFE bundle",
            Method::GET,
            "/api/v1/bundle/spiffe",
            None,
        ))
    }

    fn crl(&self) -> CaFuture<'_, Vec<u8>> {
        Box::pin(self.call("the CRL", Method::GET, "/api/v1/crl", None))
    }

    fn federated_bundles(&self) -> CaFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            let answer = self
                .call(
                    "the federated bundles",
                    Method::GET,
                    "/api/v1/bundle/federated",
                    None,
                )
                .await;
            match answer {
                Ok(body) => Ok(Some(body)),
                // A CA from before federation: nothing federated.
                Err(CaCallError::Refused { status: 404, .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }
}

/// Shared handle.
pub type SharedCa = Arc<dyn AgentCa>;
