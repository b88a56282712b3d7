//! The admin listener: plain HTTP for probes and scrapers, on a loopback address unless the
//! program's operator allowed more ([`Exposure::Remote`]; it serves health and metrics only).
//! `/healthz` (alive), `/readyz` (ready | degraded -> 200, unhealthy -> 503, with the reason and
//! the revocation list's state), `/metrics`.

use std::convert::Infallible;
use std::future::Future;
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

use crate::error::{ConfigError, MeshError, Result};
use crate::health::Readiness;
use crate::mesh::MeshView;

/// Where the admin listener may listen: it has no authentication, so loopback unless the
/// operator asked for more (e.g. `mtls-server --admin-allow-remote`, for Kubernetes probes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Loopback addresses only (127.0.0.0/8, ::1).
    LoopbackOnly,
    /// Any address: health and metrics are readable by whoever can reach it.
    Remote,
}

impl Exposure {
    /// The one rule of every program's admin listener: `addr` may be a non-loopback address
    /// only when the operator allowed it (`allowed`, by the flag or file key `permission`).
    /// Err is the reason, naming `permission`.
    pub fn check(
        addr: SocketAddr,
        allowed: bool,
        permission: &str,
    ) -> std::result::Result<Exposure, String> {
        match allowed {
            true => Ok(Exposure::Remote),
            false if addr.ip().is_loopback() => Ok(Exposure::LoopbackOnly),
            false => Err(format!(
                "the admin endpoint is plain HTTP without authentication; it listens on a \
                 loopback address (127.0.0.1 or ::1) unless {permission} is given (for \
                 Kubernetes probes or a Prometheus scrape: it serves health and metrics only)"
            )),
        }
    }

    /// Logs the `admin_remote` warning when the listener at `addr` is reachable beyond
    /// loopback; `permission` names what allowed it.
    pub fn warn_if_remote(addr: SocketAddr, permission: &str) {
        if !addr.ip().is_loopback() {
            tracing::warn!(event = "admin_remote", addr = %addr,
                "the admin listener http://{addr} is not on loopback ({permission}): anyone who \
                 can reach it reads health and metrics");
        }
    }
}

/// Binds the admin listener; a non-loopback address only with [`Exposure::Remote`].
pub async fn bind(addr: SocketAddr, exposure: Exposure) -> Result<TcpListener> {
    if exposure == Exposure::LoopbackOnly && !addr.ip().is_loopback() {
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
    serve_with_metrics(listener, mesh, String::new)
}

/// [`serve`], with what `extra` returns appended to `/metrics`: a program's own counters in the
/// Prometheus text format (a proxy's refusals by reason, for instance).
pub fn serve_with_metrics(
    listener: TcpListener,
    mesh: &crate::Mesh,
    extra: impl Fn() -> String + Send + Sync + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let view = Admin {
        mesh: mesh.view(),
        extra: Arc::new(extra),
    };
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

/// What the admin endpoints read.
#[derive(Clone)]
struct Admin {
    mesh: MeshView,
    extra: Arc<dyn Fn() -> String + Send + Sync>,
}

fn route(req: Request<Incoming>, admin: &Admin) -> Response<Full<Bytes>> {
    let view = &admin.mesh;
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
            let mut text = view.metrics();
            text.push_str(&(admin.extra)());
            let mut r = Response::new(Full::new(Bytes::from(text)));
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::clock::TokioClock;
    use crate::testing::{static_files_config, FakeCa};
    use crate::Mesh;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.unwrap();
        out
    }

    use super::*;

    #[tokio::test]
    async fn metrics_carry_the_program_counters_and_readiness_the_certificate() {
        let clock = Arc::new(TokioClock::new());
        let ca = FakeCa::new(clock.clone(), time::Duration::hours(1));
        let dir = tempfile::tempdir().unwrap();
        let mesh = Mesh::start_with_clock(static_files_config(&ca, dir.path()), clock)
            .await
            .unwrap();
        let listener = bind("127.0.0.1:0".parse().unwrap(), Exposure::LoopbackOnly)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve_with_metrics(listener, &mesh, || {
            "# TYPE proxy_refused_total counter\nproxy_refused_total 3\n".to_string()
        }));
        let metrics = get(addr, "/metrics").await;
        assert!(
            metrics.contains("mesh_certificate_expiry_seconds"),
            "{metrics}"
        );
        assert!(metrics.contains("proxy_refused_total 3"), "{metrics}");
        let ready = get(addr, "/readyz").await;
        assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
        assert!(ready.contains(&format!("\"serial\":\"{}\"", mesh.credential().serial())));
        assert!(get(addr, "/nope").await.contains("404"));
        let refused = bind("0.0.0.0:0".parse().unwrap(), Exposure::LoopbackOnly)
            .await
            .unwrap_err();
        assert!(refused
            .to_string()
            .contains("must listen on a loopback address"));
        // Only the operator's explicit choice opens it beyond loopback.
        let remote = bind("0.0.0.0:0".parse().unwrap(), Exposure::Remote)
            .await
            .unwrap();
        assert!(remote.local_addr().unwrap().ip().is_unspecified());
        task.abort();
        mesh.shutdown().await;
    }
}
