//! HTTP mode (`--http`): the inbound listener speaks HTTP/1.1 or HTTP/2 (by ALPN) to callers
//! and HTTP/1.1 to the application. Every request is checked against the policy (per path
//! prefix when the policy has path rules); an allowed request is forwarded with the verified
//! caller in `X-Client-Spiffe-Id` and `X-Forwarded-Client-Cert` (`xfcc.rs`), after whatever
//! the client sent under those names was removed. A refused request gets 403 and, when no
//! other path could be allowed, its connection is closed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mesh::server::PeerIdentify;
use mesh::{Mesh, Peer};
use wire::http::{CloseConnection, HttpApp, RequestBody};
use wire::{BoxFuture, CloseReason, HandshakeError, Identified, Identify, Rejected};

use super::xfcc;
use crate::config::Destination;
use crate::metrics::ProxyMetrics;
use crate::policy::{is_normal_path, Decision, PolicyHandle};
use crate::record::{PeerFacts, Record};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Bodies in both directions: boxed once per request, counted per frame.
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A caller and the record of its connection.
pub struct HttpPeer {
    /// The verified caller.
    pub peer: Peer,
    record: Arc<Record>,
}

/// The HTTP application of the inbound listener.
pub struct HttpInbound {
    mesh: Arc<Mesh>,
    identify: PeerIdentify,
    policy: Arc<PolicyHandle>,
    metrics: Arc<ProxyMetrics>,
    listener: SocketAddr,
    to: Destination,
    /// The proxy's own SPIFFE ID (XFCC `By`); it does not change across rotations.
    by: Option<String>,
    client: Client<HttpConnector, Body>,
}

impl HttpInbound {
    /// Forwards the requests of the listener on `listener` to the application at `to`.
    pub fn new(
        mesh: Arc<Mesh>,
        policy: Arc<PolicyHandle>,
        metrics: Arc<ProxyMetrics>,
        listener: SocketAddr,
        to: Destination,
        connect_timeout: Duration,
    ) -> HttpInbound {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let by = mesh
            .credential()
            .info()
            .uris
            .iter()
            .find(|u| u.starts_with("spiffe://"))
            .cloned();
        HttpInbound {
            identify: mesh.identify(),
            mesh,
            policy,
            metrics,
            listener,
            to,
            by,
            client,
        }
    }
}

impl Identify for HttpInbound {
    type Peer = HttpPeer;

    fn identify(
        &self,
        addr: SocketAddr,
        tls: &rustls::ServerConnection,
    ) -> Result<Identified<HttpPeer>, Rejected> {
        let Identified {
            peer,
            authenticated,
            identity,
        } = self.identify.identify(addr, tls)?;
        let record = Record::new(
            "inbound",
            self.listener,
            addr,
            PeerFacts::of_peer(&peer),
            self.metrics.clone(),
        );
        Ok(Identified {
            peer: HttpPeer { peer, record },
            authenticated,
            identity,
        })
    }

    fn handshake_failed(&self, addr: SocketAddr, error: &HandshakeError) {
        self.identify.handshake_failed(addr, error);
    }
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and are not forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

impl HttpInbound {
    fn refuse(
        &self,
        peer: &Peer,
        path: &str,
        status: StatusCode,
        code: &'static str,
        why: String,
        close: bool,
    ) -> Response<Body> {
        self.metrics.refused("inbound", code);
        tracing::warn!(event = "request_refused", peer_addr = %peer.addr(), spiffe_id = %peer.identity(),
            path = %path, reason = code, "refusing {path} from {}: {why}", peer.identity());
        let mut response = json_error(status, code, &why);
        if close {
            CloseConnection::mark(&mut response, code, why);
        }
        response
    }

    /// The request as the application gets it: absolute URI to the app, HTTP/1.1, the
    /// caller's Host kept, hop-by-hop headers dropped, the caller headers set.
    fn rewrite(&self, peer: &HttpPeer, req: Request<RequestBody>) -> Result<Request<Body>, String> {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        if !parts.headers.contains_key(HOST) {
            if let Some(authority) = parts.uri.authority() {
                let host = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
                parts.headers.insert(HOST, host);
            }
        }
        parts.uri = Uri::try_from(format!("http://{}{path}", self.to.authority()))
            .map_err(|e| e.to_string())?;
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        let uri = peer.peer.id_string();
        xfcc::set_caller_headers(
            &mut parts.headers,
            self.by.as_deref(),
            &peer.peer.certificate_sha256(),
            uri.as_deref(),
        );
        let record = peer.record.clone();
        let body = body
            .map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    record.bytes.add_from_client(data.len() as u64);
                }
                frame
            })
            .map_err(BoxError::from)
            .boxed_unsync();
        Ok(Request::from_parts(parts, body))
    }
}

impl HttpApp for HttpInbound {
    type Body = Body;

    fn call(&self, peer: &Arc<HttpPeer>, req: Request<RequestBody>) -> BoxFuture<Response<Body>> {
        let path = req.uri().path().to_string();
        let policy = self.policy.current();
        if policy.has_path_rules() && !is_normal_path(&path) {
            let why = format!(
                "{path:?} is not a path in normal form (no `.`/`..` segments, `//`, backslashes or encoded `.`, `/`, `\\`): per-path rules could not be applied"
            );
            let r = self.refuse(
                &peer.peer,
                &path,
                StatusCode::BAD_REQUEST,
                "bad_path",
                why,
                false,
            );
            return Box::pin(std::future::ready(r));
        }
        if let Decision::Refused(why) = policy.check(peer.peer.spiffe_id(), Some(&path)) {
            // Without path rules no other request of this caller could pass: close.
            let close = !policy.has_path_rules();
            let r = self.refuse(
                &peer.peer,
                &path,
                StatusCode::FORBIDDEN,
                "forbidden",
                why,
                close,
            );
            return Box::pin(std::future::ready(r));
        }
        let forwarded = match self.rewrite(peer, req) {
            Ok(r) => r,
            Err(e) => {
                let r = self.refuse(
                    &peer.peer,
                    &path,
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    e,
                    false,
                );
                return Box::pin(std::future::ready(r));
            }
        };
        let client = self.client.clone();
        let (peer, metrics, to) = (peer.clone(), self.metrics.clone(), self.to.clone());
        Box::pin(async move {
            match client.request(forwarded).await {
                Ok(response) => {
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    let record = peer.record.clone();
                    let body = body
                        .map_frame(move |frame| {
                            if let Some(data) = frame.data_ref() {
                                record.bytes.add_to_client(data.len() as u64);
                            }
                            frame
                        })
                        .map_err(BoxError::from)
                        .boxed_unsync();
                    Response::from_parts(parts, body)
                }
                Err(e) => {
                    metrics.refused("inbound", "app_unreachable");
                    let why = format!("cannot reach the application at {to}: {e}");
                    tracing::warn!(event = "app_unreachable", peer_addr = %peer.peer.addr(), to = %to,
                        "answering {path} from {} with 502: {why}", peer.peer.identity());
                    json_error(
                        StatusCode::BAD_GATEWAY,
                        "app_unreachable",
                        "the application behind the proxy did not answer",
                    )
                }
            }
        })
    }

    fn peer_invalid(&self, peer: &Arc<HttpPeer>) -> BoxFuture<CloseReason> {
        Box::pin(self.mesh.close_when_invalid(&peer.peer))
    }

    fn connection_ended(&self, peer: &Arc<HttpPeer>, reason: Option<&CloseReason>) {
        match reason {
            Some(r) => peer.record.end(r.code, &r.detail),
            None => peer
                .record
                .end("closed", "the client closed the connection"),
        }
    }
}
