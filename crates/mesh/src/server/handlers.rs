//! The API: `GET /api/status` and `POST /api/echo`, behind the `--allow-id` check.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use wire::http::{CloseConnection, RequestBody};

use crate::server::peer::Peer;
use crate::server::ServerShared;

/// Largest echo body accepted.
pub const MAX_BODY: usize = 64 * 1024;

pub fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

pub async fn handle(
    req: Request<RequestBody>,
    peer: Arc<Peer>,
    shared: Arc<ServerShared>,
) -> Response<Full<Bytes>> {
    shared
        .events
        .metrics
        .requests
        .fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = route(req, &peer, &shared).await;
    let status = response.status().as_u16();
    let who = peer.id_string().unwrap_or_else(|| peer.subject.clone());
    // Refusals are worth a line at the default level; successes are logged per connection,
    // and a line per successful request would cost more than the request at keep-alive rates.
    if response.status().is_success() {
        tracing::debug!(event = "request", peer_addr = %peer.addr, caller = %who, method = %method,
            path = %path, status, "{method} {path} from {who} -> {status}");
    } else {
        tracing::info!(event = "request", peer_addr = %peer.addr, caller = %who, method = %method,
            path = %path, status, "{method} {path} from {who} -> {status}");
    }
    response
}

async fn route(
    req: Request<RequestBody>,
    peer: &Peer,
    shared: &ServerShared,
) -> Response<Full<Bytes>> {
    if !shared.allow.permits(peer.spiffe_id.as_ref()) {
        let who = peer
            .id_string()
            .unwrap_or_else(|| "a caller without a SPIFFE ID".into());
        let mut response = error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "{who} is not allowed to call this service (allowed: {})",
                shared.allow.patterns().join(", ")
            ),
        );
        // The identity of a connection never changes, so every further request would be
        // refused too: close it rather than let a refused caller hold a connection.
        CloseConnection::mark(
            &mut response,
            "forbidden",
            format!("{who} is not allowed by --allow-id"),
        );
        return response;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/api/status") => json_response(
            StatusCode::OK,
            json!({
                "status": "healthy",
                "caller": peer.id_string(),
                "client_key": peer.client_key,
            }),
        ),
        (&Method::POST, "/api/echo") => echo(req, peer).await,
        (_, "/api/status") | (_, "/api/echo") => error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET /api/status or POST /api/echo",
        ),
        (_, other) => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no endpoint {other}; try GET /api/status or POST /api/echo"),
        ),
    }
}

async fn echo(req: Request<RequestBody>, peer: &Peer) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("the body must be at most {MAX_BODY} bytes"),
            )
        }
    };
    json_response(
        StatusCode::OK,
        json!({
            "echo": String::from_utf8_lossy(&body),
            "server_time": crate::timefmt::rfc3339(time::OffsetDateTime::now_utc()),
            "client_addr": peer.addr.to_string(),
            "caller": peer.id_string(),
        }),
    )
}
