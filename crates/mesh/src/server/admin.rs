//! The admin listener: plain HTTP on a loopback address, for probes and scrapers.
//! `/healthz` (alive), `/readyz` (ready | degraded -> 200, unhealthy -> 503, with the reason and
//! the revocation list's state), `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::credentials::Identity;
use crate::error::{MeshError, Result};
use crate::events::Events;
use crate::health::{assess, Readiness};
use crate::server::handlers::{error_response, json_response};
use crate::trust::TrustState;

pub struct AdminState {
    pub identity: Arc<Identity>,
    pub trust: Option<Arc<TrustState>>,
    pub events: Arc<Events>,
}

/// Binds the admin listener; only loopback addresses are accepted (it has no authentication).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(MeshError::Config(format!(
            "--admin-listen {addr}: the admin endpoint is plain HTTP without authentication and \
             must listen on a loopback address (127.0.0.1 or ::1)"
        )));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|e| MeshError::io(format!("binding the admin listener on {addr}"), e))
}

pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(req, &state)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn route(req: Request<Incoming>, state: &AdminState) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => json_response(StatusCode::OK, json!({"status": "alive"})),
        "/readyz" => {
            let cred = state.identity.current();
            let now = time::OffsetDateTime::now_utc();
            let health = assess(&cred, state.trust.as_deref(), now);
            let status = if health.state == Readiness::Unhealthy {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            let mut body = json!({
                "status": health.state.as_str(),
                "serial": cred.info.serial_hex,
                "not_after": crate::timefmt::rfc3339(cred.info.not_after),
                "lifetime_left": (health.lifetime_left * 1000.0).round() / 1000.0,
            });
            if let Some(trust) = state.trust.as_deref().filter(|t| t.crl_policy().is_some()) {
                body["crl"] = json!({
                    "state": health.crl.as_str(),
                    "next_update": trust.crl_next_update().map(crate::timefmt::rfc3339),
                });
            }
            if let Some(reason) = health.reason {
                body["reason"] = json!(reason);
            }
            json_response(status, body)
        }
        "/metrics" => {
            let body = state
                .events
                .metrics
                .render(Some(&state.identity), state.trust.as_deref());
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        other => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no admin endpoint {other}; try /healthz, /readyz or /metrics"),
        ),
    }
}
