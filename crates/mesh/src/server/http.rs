//! Any `tower::Service` (an axum `Router`, for instance) served over mTLS on the wire layer
//! (crates/wire: admission limits, header/idle/request timeouts, graceful drain): the handshake
//! requires a client certificate the service's verifier accepts; the allow-list refuses other
//! callers with 403 and closes their connection; every request carries the verified [`Peer`] in
//! its extensions; a connection whose peer certificate expires or is revoked is closed after
//! the request in flight.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http_body_util::{Either, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tower::ServiceExt;
use wire::http::{CloseConnection, HttpApp, RequestBody};
use wire::{BoxFuture, CloseReason, DrainReport, Identified, Identify, Limits, Rejected};

use crate::error::Result;
use crate::events::Events;
use crate::mesh::Mesh;
use crate::server::identify::PeerIdentify;
use crate::server::{AllowList, Peer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How an HTTP service is served.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Connection limits and timeouts.
    pub limits: Limits,
    /// The callers allowed (empty: every verified caller).
    pub allow: AllowList,
}

impl Default for ServeOptions {
    /// The limits of `mtls-server` (docs/cli.md): 10,000 connections, 1,000 per identity, no
    /// per-source limit and no reserve (every peer has a verified certificate); every verified
    /// caller allowed.
    fn default() -> Self {
        ServeOptions {
            limits: server_limits(10_000, 1_000),
            allow: AllowList::default(),
        }
    }
}

/// The limits of a mesh HTTP server with `max_connections` and `max_per_identity`; the other
/// values are the wire layer's defaults.
pub fn server_limits(max_connections: usize, max_per_identity: usize) -> Limits {
    Limits {
        max_connections,
        // Every peer has a verified certificate (client authentication is mandatory), so
        // there is nothing to keep room from and no anonymous source to count.
        max_per_source: None,
        authenticated_reserve: 0,
        max_per_identity: Some(max_per_identity),
        ..Limits::default()
    }
}

/// Serves `service` on `listener` with `mesh`'s certificate and trust until `shutdown`
/// resolves, then drains: requests in flight finish (up to `options.limits.drain`), idle
/// connections close at once. Handlers find the caller with `req.extensions().get::<Peer>()`.
pub async fn serve_http<S, B>(
    listener: TcpListener,
    mesh: &Mesh,
    service: S,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<DrainReport>
where
    S: tower::Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    mesh.accept_federated_callers(&options.allow);
    let tls = Arc::new(mesh.server_config(wire::tls::ALPN_HTTP)?);
    let counters = mesh.events().metrics.connections.clone();
    let app = Arc::new(App {
        identify: mesh.identify(),
        service,
        allow: options.allow,
        events: mesh.events().clone(),
        mesh: mesh.watcher(),
    });
    Ok(wire::http::serve(listener, tls, options.limits, counters, app, shutdown).await)
}

/// The service as the wire layer sees it.
struct App<S> {
    identify: PeerIdentify,
    service: S,
    allow: AllowList,
    events: Arc<Events>,
    mesh: crate::mesh::PeerWatcher,
}

impl<S: Send + Sync + 'static> Identify for App<S> {
    type Peer = Peer;

    fn identify(
        &self,
        addr: std::net::SocketAddr,
        tls: &rustls::ServerConnection,
    ) -> std::result::Result<Identified<Peer>, Rejected> {
        self.identify.identify(addr, tls)
    }

    fn handshake_failed(&self, addr: std::net::SocketAddr, error: &wire::HandshakeError) {
        self.identify.handshake_failed(addr, error)
    }
}

fn log_request(peer: &Peer, method: &hyper::Method, path: &str, status: StatusCode) {
    let who = peer.identity();
    let code = status.as_u16();
    // Refusals are worth a line at the default level; successes are logged per connection,
    // and a line per successful request would cost more than the request at keep-alive rates.
    if status.is_success() {
        tracing::debug!(event = "request", peer_addr = %peer.addr(), caller = %who, method = %method,
            path = %path, status = code, "{method} {path} from {who} -> {code}");
    } else {
        tracing::info!(event = "request", peer_addr = %peer.addr(), caller = %who, method = %method,
            path = %path, status = code, "{method} {path} from {who} -> {code}");
    }
}

/// `{"error":{"code":..,"message":..}}`, the shape every mtls-mesh API uses.
fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

impl<S, B> HttpApp for App<S>
where
    S: tower::Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Body = Either<B, Full<Bytes>>;

    fn call(
        &self,
        peer: &Arc<Peer>,
        mut req: Request<RequestBody>,
    ) -> BoxFuture<Response<Self::Body>> {
        self.events.metrics.requests.fetch_add(1, Ordering::Relaxed);
        let peer: Peer = (**peer).clone();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        if !self.allow.permits(peer.spiffe_id()) {
            let who = peer
                .id_string()
                .unwrap_or_else(|| "a caller without a SPIFFE ID".into());
            let mut response = json_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                &format!(
                    "{who} is not allowed to call this service (allowed: {})",
                    self.allow.patterns().join(", ")
                ),
            );
            // The identity of a connection never changes, so every further request would be
            // refused too: close it rather than let a refused caller hold a connection.
            CloseConnection::mark(
                &mut response,
                "forbidden",
                format!("{who} is not allowed by --allow-id"),
            );
            log_request(&peer, &method, &path, response.status());
            return Box::pin(std::future::ready(response.map(Either::Right)));
        }
        req.extensions_mut().insert(peer.clone());
        let service = self.service.clone();
        Box::pin(async move {
            let response = match service.oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            log_request(&peer, &method, &path, response.status());
            response.map(Either::Left)
        })
    }

    fn peer_invalid(&self, peer: &Arc<Peer>) -> BoxFuture<CloseReason> {
        Box::pin(self.mesh.closed_when_invalid(peer))
    }
}
