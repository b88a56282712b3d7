//! The SPIFFE Workload API service (proto/workload.proto): every call is attested first (the
//! caller's selectors, `attest`), and the caller gets only what the registration entries whose
//! selectors it all shows allow. The X.509 answers come from the cache (never waiting for the
//! CA); JWT-SVIDs are asked of the CA per call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use pki::selector::Selector;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

use crate::attest::{self, HashCache, NameCache, Observed, PeerCred};
use crate::ca::Entry;
use crate::cache::{Snapshot, SvidCache};
use crate::proto::spiffe_workload_api_server::SpiffeWorkloadApi;
use crate::proto::{
    JwtBundlesRequest, JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse,
    ValidateJwtsvidRequest, ValidateJwtsvidResponse, WitBundlesRequest, WitBundlesResponse,
    WitsvidRequest, WitsvidResponse, X509BundlesRequest, X509BundlesResponse, X509svid,
    X509svidRequest, X509svidResponse,
};

pub use workload::SECURITY_HEADER;

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The service.
pub struct WorkloadApi {
    cache: Arc<SvidCache>,
    trust_domain: String,
    proc_root: PathBuf,
    hashes: Arc<HashCache>,
    names: Arc<NameCache>,
}

impl WorkloadApi {
    /// The service over `cache`, for the agent's trust domain.
    pub fn new(cache: Arc<SvidCache>, trust_domain: &pki::TrustDomain) -> WorkloadApi {
        let names = Arc::new(NameCache::new(cache.clock().clone()));
        WorkloadApi {
            cache,
            trust_domain: format!("spiffe://{}", trust_domain.as_str()),
            proc_root: attest::proc_root(),
            hashes: Arc::new(HashCache::default()),
            names,
        }
    }

    /// Attests the caller of `request` and returns its selectors.
    async fn selectors_of<T>(&self, request: &Request<T>) -> Result<Vec<Selector>, Status> {
        let cred = request
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|info| info.peer_cred)
            .map(|c| PeerCred {
                pid: c.pid(),
                uid: c.uid(),
                gid: c.gid(),
            })
            .ok_or_else(|| {
                Status::permission_denied("the caller's Unix socket credentials are unavailable")
            })?;
        // The /proc reads alone on this thread when the rest is cached; a hash to compute or a
        // name to look up goes to the blocking pool.
        let attested = match attest::attest_cached(cred, &self.proc_root, &self.hashes, &self.names)
        {
            Ok(Some(observed)) => Ok(observed),
            Ok(None) => {
                let proc_root = self.proc_root.clone();
                let hashes = self.hashes.clone();
                let names = self.names.clone();
                tokio::task::spawn_blocking(move || {
                    attest::attest(cred, &proc_root, &hashes, &names)
                })
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "the attestation task failed");
                    Status::internal("attestation failed")
                })?
            }
            Err(e) => Err(e),
        };
        let observed = attested
            .map_err(|e| {
                tracing::warn!(event = "attestation_failed", pid = ?cred.pid, uid = cred.uid, error = %e, "workload not attested: {e}");
                Status::permission_denied(format!("workload not attested: {e}"))
            })?;
        Ok(selectors(&observed))
    }
}

/// The selectors of what attestation saw.
pub fn selectors(o: &Observed) -> Vec<Selector> {
    let mut s = vec![Selector::Uid(o.uid), Selector::Gid(o.gid)];
    if let Some(u) = &o.user {
        s.push(Selector::User(u.clone()));
    }
    if let Some(g) = &o.group {
        s.push(Selector::Group(g.clone()));
    }
    if let Some(p) = &o.path {
        s.push(Selector::Path(p.clone()));
    }
    s.push(Selector::Sha256(o.sha256.clone()));
    s
}

fn matching<'a>(snapshot: &'a Snapshot, observed: &[Selector]) -> Vec<&'a Entry> {
    snapshot
        .entries
        .iter()
        .filter(|e| pki::selector::entry_matches(&e.selectors, observed))
        .collect()
}

fn denied(observed: &[Selector]) -> Status {
    let seen: Vec<String> = observed.iter().map(|s| s.to_string()).collect();
    Status::permission_denied(format!(
        "no registration entry of this agent matches this workload; observed selectors: {} \
         (create one with `mtls-ca entry create --parent <this agent> --selector ...`)",
        seen.join(", ")
    ))
}

fn concat(ders: &[Vec<u8>]) -> Vec<u8> {
    ders.concat()
}

/// The X.509-SVID message for `observed`, from `snapshot`: Ok(None) while its entries match
/// but no SVID is minted yet.
fn x509_response(
    snapshot: &Snapshot,
    observed: &[Selector],
    own_td: &str,
) -> Result<Option<X509svidResponse>, Status> {
    let entries = matching(snapshot, observed);
    if entries.is_empty() {
        return Err(denied(observed));
    }
    let bundle = concat(&snapshot.roots);
    let svids: Vec<X509svid> = entries
        .iter()
        .filter_map(|e| snapshot.svids.get(&e.id))
        .map(|s| X509svid {
            spiffe_id: s.entry.spiffe_id.clone(),
            x509_svid: concat(&s.chain),
            x509_svid_key: s.key_pkcs8.clone(),
            bundle: bundle.clone(),
            hint: String::new(),
        })
        .collect();
    if svids.is_empty() {
        return Ok(None);
    }
    Ok(Some(X509svidResponse {
        svids,
        crl: snapshot.crl.iter().cloned().collect(),
        federated_bundles: federated(snapshot, own_td),
    }))
}

/// The federated trust domains' X.509 authorities by trust domain ID, never our own (only our
/// own roots vouch for it).
fn federated(snapshot: &Snapshot, own_td: &str) -> HashMap<String, Vec<u8>> {
    snapshot
        .federated
        .iter()
        .filter(|(td, _)| td.as_str() != own_td)
        .map(|(td, der)| (td.clone(), der.clone()))
        .collect()
}

/// The JWT signing keys of the SPIFFE bundle as a JWK set (the Workload API's JWT bundle).
fn jwt_key_set(snapshot: &Snapshot) -> Option<pki::jwt_svid::KeySet> {
    let bundle = snapshot.spiffe_bundle.as_ref()?;
    let value: serde_json::Value = serde_json::from_slice(bundle)
        .inspect_err(|e| tracing::warn!(error = %e, "the CA's SPIFFE bundle is not JSON"))
        .ok()?;
    pki::jwt_svid::KeySet::from_jwks(&value)
        .inspect_err(|e| tracing::warn!(error = %e, "the CA's SPIFFE bundle has unusable JWT keys"))
        .ok()
}

/// A stream of the distinct values `f` makes of each snapshot, starting with the current one;
/// `f` returning Ok(None) skips a snapshot, an error ends the stream with it. An error on the
/// current snapshot is returned at once instead, so the call fails with it rather than opening
/// a stream (a caller no entry matches is refused by the call itself). The current snapshot is
/// taken from the receiver the stream then watches, so no change between the two is missed, and
/// `f` runs once for it (every fetch pays for one message, not two).
fn snapshot_stream<T, F>(cache: &SvidCache, f: F) -> Result<Streamed<T>, Status>
where
    T: PartialEq + Clone + Send + 'static,
    F: Fn(&Snapshot) -> Result<Option<T>, Status> + Send + 'static,
{
    let mut rx = cache.subscribe();
    // Cloned out of the channel so that `f` does not run under the channel's lock.
    let current = rx.borrow_and_update().clone();
    let first = f(&current)?;
    let mut last = first.clone();
    let mut ended = false;
    let changes = WatchStream::from_changes(rx).filter_map(move |snapshot| {
        if ended {
            return None;
        }
        match f(&snapshot) {
            Ok(Some(message)) if last.as_ref() != Some(&message) => {
                last = Some(message.clone());
                Some(Ok(message))
            }
            Ok(_) => None,
            Err(status) => {
                ended = true;
                Some(Err(status))
            }
        }
    });
    // tonic ends the response at the first error it sends.
    Ok(Box::pin(tokio_stream::iter(first.map(Ok)).chain(changes)))
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = Streamed<X509svidResponse>;
    type FetchX509BundlesStream = Streamed<X509BundlesResponse>;
    type FetchJWTBundlesStream = Streamed<JwtBundlesResponse>;
    type FetchWITSVIDStream = Streamed<WitsvidResponse>;
    type FetchWITBundlesStream = Streamed<WitBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let observed = self.selectors_of(&request).await?;
        let td = self.trust_domain.clone();
        Ok(Response::new(snapshot_stream(&self.cache, move |s| {
            x509_response(s, &observed, &td)
        })?))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        // Bundles are public (the CA serves them without authentication); the caller is still
        // attested so that an unattestable caller is refused consistently.
        self.selectors_of(&request).await?;
        let td = self.trust_domain.clone();
        Ok(Response::new(snapshot_stream(&self.cache, move |s| {
            if s.roots.is_empty() {
                return Ok(None);
            }
            let mut bundles = federated(s, &td);
            bundles.insert(td.clone(), concat(&s.roots));
            Ok(Some(X509BundlesResponse {
                crl: s.crl.iter().cloned().collect(),
                bundles,
            }))
        })?))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        let observed = self.selectors_of(&request).await?;
        let req = request.into_inner();
        if req.audience.is_empty() || req.audience.iter().any(|a| a.is_empty()) {
            return Err(Status::invalid_argument(
                "audience must name at least one non-empty audience",
            ));
        }
        let snapshot = self.cache.current();
        let mut entries = matching(&snapshot, &observed);
        if entries.is_empty() {
            return Err(denied(&observed));
        }
        if !req.spiffe_id.is_empty() {
            entries.retain(|e| e.spiffe_id == req.spiffe_id);
            if entries.is_empty() {
                return Err(Status::permission_denied(format!(
                    "this workload is not entitled to {}",
                    req.spiffe_id
                )));
            }
        }
        // One JWT-SVID per identity (two entries may give the same one).
        let mut seen = std::collections::HashSet::new();
        entries.retain(|e| seen.insert(e.spiffe_id.clone()));
        let mut svids = Vec::new();
        for entry in entries {
            let answer = self
                .cache
                .ca()
                .jwt(&entry.id, &req.audience, None)
                .await
                .map_err(|e| {
                    tracing::warn!(event = "jwt_svid_failed", entry = %entry.id, error = %e, "the CA did not issue a JWT-SVID");
                    Status::unavailable(format!(
                        "the CA did not issue a JWT-SVID for {} (see the agent's log)",
                        entry.spiffe_id
                    ))
                })?;
            svids.push(Jwtsvid {
                spiffe_id: entry.spiffe_id.clone(),
                svid: answer.token,
                hint: String::new(),
            });
        }
        Ok(Response::new(JwtsvidResponse { svids }))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        self.selectors_of(&request).await?;
        let td = self.trust_domain.clone();
        Ok(Response::new(snapshot_stream(&self.cache, move |s| {
            let Some(keys) = jwt_key_set(s) else {
                return Ok(None);
            };
            let jwks = serde_json::json!({ "keys": keys.to_jwks() });
            Ok(Some(JwtBundlesResponse {
                bundles: HashMap::from([(td.clone(), jwks.to_string().into_bytes())]),
            }))
        })?))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        self.selectors_of(&request).await?;
        let req = request.into_inner();
        if req.audience.is_empty() {
            return Err(Status::invalid_argument("audience must not be empty"));
        }
        if req.svid.is_empty() {
            return Err(Status::invalid_argument("svid must not be empty"));
        }
        let snapshot = self.cache.current();
        let keys = jwt_key_set(&snapshot).ok_or_else(|| {
            Status::unavailable("no JWT bundle yet: the agent has not reached the CA")
        })?;
        let now = self.cache.clock().now();
        let claims = pki::jwt_svid::verify(&req.svid, &keys, &req.audience, now)
            .map_err(|e| Status::invalid_argument(format!("the JWT-SVID is not valid: {e}")))?;
        Ok(Response::new(ValidateJwtsvidResponse {
            spiffe_id: claims.sub.to_string(),
            claims: Some(payload_struct(&req.svid)?),
        }))
    }

    async fn fetch_witsvid(
        &self,
        _request: Request<WitsvidRequest>,
    ) -> Result<Response<Self::FetchWITSVIDStream>, Status> {
        Err(Status::unimplemented("this agent does not serve WIT-SVIDs"))
    }

    async fn fetch_wit_bundles(
        &self,
        _request: Request<WitBundlesRequest>,
    ) -> Result<Response<Self::FetchWITBundlesStream>, Status> {
        Err(Status::unimplemented("this agent does not serve WIT-SVIDs"))
    }
}

/// Every claim of a verified token's payload, as a protobuf Struct.
fn payload_struct(token: &str) -> Result<prost_types::Struct, Status> {
    use base64::Engine as _;
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&b).ok())
        // verify() parsed this payload as a JSON object a moment ago.
        .ok_or_else(|| Status::internal("the verified token's payload could not be read"))?;
    Ok(prost_types::Struct {
        fields: payload
            .into_iter()
            .map(|(k, v)| (k, to_proto_value(v)))
            .collect(),
    })
}

fn to_proto_value(v: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(to_proto_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.into_iter().map(|(k, v)| (k, to_proto_value(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}
