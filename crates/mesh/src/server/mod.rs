//! The mTLS HTTP server on the wire layer (crates/wire: admission limits, timeouts, drain):
//! the handshake requires a client certificate; this file logs who connected or why the
//! handshake failed, serves the API, and closes any connection whose peer certificate
//! expires or is revoked while it is open (after the request in flight).

pub mod admin;
pub mod allow;
pub mod handlers;
pub mod peer;

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use wire::http::{HttpApp, RequestBody};
use wire::{BoxFuture, CloseReason, DrainReport, HandshakeError, Identified, Identify, Rejected};

use crate::credentials::Identity;
use crate::events::Events;
use crate::tls::describe::{rustls_error, server_reason_code, server_side_reason};
use crate::tls::HandshakeSummary;
use crate::trust::TrustState;

pub use allow::AllowList;
pub use peer::Peer;

/// State shared by every connection of one server.
pub struct ServerShared {
    pub tls: Arc<ServerConfig>,
    pub identity: Arc<Identity>,
    /// None in pinned mode (no CA, no revocation).
    pub trust: Option<Arc<TrustState>>,
    pub allow: AllowList,
    pub events: Arc<Events>,
    /// Connection limits and timeouts (docs/cli.md, mtls-server).
    pub limits: wire::Limits,
}

/// Serves until `shutdown` resolves, then drains: in-flight requests finish (up to
/// `limits.drain`), idle connections close at once.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<ServerShared>,
    shutdown: impl std::future::Future<Output = ()>,
) -> DrainReport {
    let counters = shared.events.metrics.connections.clone();
    let (tls, limits) = (shared.tls.clone(), shared.limits.clone());
    let app = Arc::new(MeshApi { shared });
    wire::http::serve(listener, tls, limits, counters, app, shutdown).await
}

/// The server as the wire layer sees it.
struct MeshApi {
    shared: Arc<ServerShared>,
}

impl Identify for MeshApi {
    type Peer = Peer;

    fn identify(
        &self,
        addr: SocketAddr,
        tls: &rustls::ServerConnection,
    ) -> Result<Identified<Peer>, Rejected> {
        let metrics = &self.shared.events.metrics;
        let Some(peer) = tls
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| Peer::from_verified(addr, c))
        else {
            // Cannot happen: client authentication is mandatory, so a finished handshake has a
            // verified certificate. Refuse rather than serve an unidentified caller.
            metrics.handshake("no_certificate");
            tracing::warn!(event = "handshake_failed", peer_addr = %addr, code = "no_certificate", "handshake from {addr} finished without a usable client certificate");
            return Err(Rejected {
                code: "no_certificate",
            });
        };
        let summary = HandshakeSummary::of(tls);
        metrics.handshake("ok");
        tracing::info!(
            event = "handshake_ok",
            peer_addr = %addr,
            spiffe_id = %peer.id_string().unwrap_or_else(|| "-".into()),
            subject = %peer.subject,
            issuer = %peer.issuer,
            serial = %peer.serial,
            client_key = %peer.client_key,
            version = %summary.version,
            suite = %summary.suite,
            group = %summary.group,
            "connection from {addr}: {} (serial {}), {} {} {}",
            peer.id_string().unwrap_or_else(|| peer.subject.clone()),
            peer.serial,
            summary.version,
            summary.suite,
            summary.group,
        );
        // The per-identity limit counts by SPIFFE ID, else by subject (pinned peers).
        let identity = peer.id_string().unwrap_or_else(|| peer.subject.clone());
        Ok(Identified {
            peer,
            authenticated: true,
            identity: Some(identity),
        })
    }

    fn handshake_failed(&self, addr: SocketAddr, error: &HandshakeError) {
        let metrics = &self.shared.events.metrics;
        match error {
            HandshakeError::Timeout(_) => {
                metrics.handshake("timeout");
                tracing::warn!(event = "handshake_failed", peer_addr = %addr, code = "timeout", reason = "handshake timed out", "handshake from {addr} failed: timed out");
            }
            HandshakeError::Failed(e) => {
                let (code, reason) = match rustls_error(e) {
                    Some(err) => (server_reason_code(err), server_side_reason(err)),
                    None => ("io", crate::tls::describe::io_reason(e, true)),
                };
                metrics.handshake(code);
                tracing::warn!(event = "handshake_failed", peer_addr = %addr, code, reason = %reason, "handshake from {addr} failed: {reason}");
            }
        }
    }
}

impl HttpApp for MeshApi {
    type Body = Full<Bytes>;

    fn call(
        &self,
        peer: &Arc<Peer>,
        req: hyper::Request<RequestBody>,
    ) -> BoxFuture<hyper::Response<Full<Bytes>>> {
        Box::pin(handlers::handle(req, peer.clone(), self.shared.clone()))
    }

    fn peer_invalid(&self, peer: &Arc<Peer>) -> BoxFuture<CloseReason> {
        let peer = peer.clone();
        let trust = self.shared.trust.clone();
        Box::pin(async move {
            let serial = peer.serial.clone();
            let reason = crate::peer_watch::close_when_invalid((&*peer).into(), trust).await;
            CloseReason::new(reason, format!("peer certificate {serial} {reason}"))
        })
    }
}
