//! The CA's API on the wire layer (crates/wire): admission limits, timeouts and drain come from
//! there; this file says who a peer is (its verified client certificate, if any) and hands
//! each request to the axum router with that certificate attached.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tower::ServiceExt;
use wire::http::{HttpApp, RequestBody};
use wire::{BoxFuture, Counters, DrainReport, Identified, Identify, Limits, Rejected};

use crate::api::PeerCert;

struct CaApi {
    router: Router,
}

impl Identify for CaApi {
    type Peer = PeerCert;

    fn identify(
        &self,
        _addr: SocketAddr,
        tls: &rustls::ServerConnection,
    ) -> Result<Identified<PeerCert>, Rejected> {
        // Client certificates are optional at the CA's TLS layer (enrollment and CRL fetches
        // have none); one that was presented has been verified against the roots.
        let cert = tls
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| Arc::new(c.clone().into_owned()));
        let identity = cert
            .as_deref()
            .and_then(|c| pki::CertInfo::from_der(c).ok())
            .map(|info| {
                info.spiffe_id()
                    .map(|id| id.to_string())
                    .unwrap_or(info.subject)
            });
        Ok(Identified {
            authenticated: cert.is_some(),
            identity,
            peer: PeerCert(cert),
        })
    }
}

impl HttpApp for CaApi {
    type Body = axum::body::Body;

    fn call(
        &self,
        peer: &Arc<PeerCert>,
        req: hyper::Request<RequestBody>,
    ) -> BoxFuture<hyper::Response<axum::body::Body>> {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(PeerCert::clone(peer));
        let router = self.router.clone();
        Box::pin(async move {
            match router.oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        })
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    limits: Limits,
    counters: Arc<Counters>,
    shutdown: impl std::future::Future<Output = ()>,
) -> DrainReport {
    let app = Arc::new(CaApi { router });
    wire::http::serve(listener, config, limits, counters, app, shutdown).await
}
