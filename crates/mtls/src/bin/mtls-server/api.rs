//! The demo API of `mtls-server`: `GET /api/status` and `POST /api/echo`, as a tower service
//! the mesh library serves (`mesh::serve_http`: mTLS, `--allow-id`, limits, the verified caller
//! in each request's extensions).

use std::convert::Infallible;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use mesh::Peer;
use serde_json::json;
use wire::http::RequestBody;

/// Largest echo body accepted.
pub const MAX_BODY: usize = 64 * 1024;

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

/// The API as a tower service.
pub fn service() -> impl tower::Service<
    Request<RequestBody>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(
        |req: Request<RequestBody>| async move { Ok::<_, Infallible>(route(req).await) },
    )
}

async fn route(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    // The HTTP layer puts the verified caller into every request; a request without one never
    // reaches a handler.
    let Some(peer) = req.extensions().get::<Peer>().cloned() else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no verified caller on the request",
        );
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/api/status") => json_response(
            StatusCode::OK,
            json!({
                "status": "healthy",
                "caller": peer.id_string(),
                "client_key": peer.client_key(),
            }),
        ),
        (&Method::POST, "/api/echo") => echo(req, &peer).await,
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
            "server_time": pki::timefmt::rfc3339(time::OffsetDateTime::now_utc()),
            "client_addr": peer.addr().to_string(),
            "caller": peer.id_string(),
        }),
    )
}
