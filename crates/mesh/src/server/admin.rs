//! The admin listener: plain HTTP on a loopback address, for probes and scrapers.
//! `/healthz` (alive), `/readyz` (ready | degraded -> 200, unhealthy -> 503, with the reason and
//! the revocation list's state), `/metrics`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::error::{ConfigError, MeshError, Result};
use crate::health::Readiness;
use crate::mesh::MeshView;

/// Binds the admin listener; only loopback addresses are accepted (it has no authentication).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(ConfigError::AdminNotLoopback { addr }.into());
    }
    TcpListener::bind(addr)
        .await
        .map_err(|e| MeshError::io(format!("binding the admin listener on {addr}"), e))
}

/// Serves `/healthz`, `/readyz` and `/metrics` of `mesh` on `listener` until the future is
/// dropped (spawn it).
pub fn serve(
    listener: TcpListener,
    mesh: &crate::Mesh,
) -> impl Future<Output = ()> + Send + 'static {
    let view = mesh.view();
    async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let view = view.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let view = view.clone();
                    async move { Ok::<_, Infallible>(route(req, &view)) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    }
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn route(req: Request<Incoming>, view: &MeshView) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => json_response(StatusCode::OK, json!({"status": "alive"})),
        "/readyz" => {
            let health = view.health();
            let cred = view.credential();
            let status = if health.state == Readiness::Unhealthy {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            let mut body = json!({
                "status": health.state.as_str(),
                "serial": cred.serial(),
                "not_after": pki::timefmt::rfc3339(cred.not_after()),
                "lifetime_left": (health.lifetime_left * 1000.0).round() / 1000.0,
            });
            if let Some(trust) = view.trust().filter(|t| t.has_crl_policy()) {
                body["crl"] = json!({
                    "state": health.crl.as_str(),
                    "next_update": trust.crl_next_update().map(pki::timefmt::rfc3339),
                });
            }
            if let Some(reason) = health.reason {
                body["reason"] = json!(reason);
            }
            json_response(status, body)
        }
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(view.metrics())));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        other => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "not_found", "message": format!("no admin endpoint {other}; try /healthz, /readyz or /metrics")}}),
        ),
    }
}
