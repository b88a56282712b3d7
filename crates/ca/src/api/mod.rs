//! The HTTPS JSON API (docs/ca-api.md, docs/design.md §4), one file per endpoint group.

mod agent;
mod body_check;
mod certs;
mod info;
mod ocsp;
mod revoke;
mod sign;
mod tokens;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;

use crate::authority::Authority;
use crate::error::{AuthorityError, Kind};

pub use body_check::{check_body, CheckedBody, Endpoint};

/// Request bodies larger than this are refused with 413 before they are parsed.
pub const MAX_BODY: usize = 64 * 1024;
/// Oversized bodies up to this size are read and discarded before the 413 is sent.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// The client certificate the TLS layer verified for this connection, if any.
#[derive(Clone, Default)]
pub struct PeerCert(pub Option<Arc<CertificateDer<'static>>>);

impl PeerCert {
    /// The certificate's DER, when the client presented one.
    pub fn der(&self) -> Option<&[u8]> {
        self.0.as_deref().map(|c| c.as_ref())
    }
}

/// The router's state: the authority every handler asks.
pub type AppState = Arc<Authority>;

/// The API: every endpoint of docs/ca-api.md, and a JSON 404 for anything else.
pub fn router(authority: AppState) -> Router {
    Router::new()
        .route("/api/v1/sign", post(sign::sign))
        .route("/api/v1/renew", post(sign::renew))
        .route("/api/v1/revoke", post(revoke::revoke))
        .route("/api/v1/certs", get(certs::list))
        .route("/api/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/api/v1/tokens/{id}", delete(tokens::revoke))
        .route("/api/v1/ca", get(info::ca))
        .route("/api/v1/bundle", get(info::bundle))
        .route("/api/v1/bundle/spiffe", get(info::spiffe_bundle))
        .route("/api/v1/bundle/federated", get(info::federated_bundles))
        .route("/api/v1/agent/entries", get(agent::entries))
        .route("/api/v1/agent/svid", post(agent::svid))
        .route("/api/v1/agent/jwt", post(agent::jwt))
        .route("/api/v1/crl", get(info::crl))
        .route("/ocsp", post(ocsp::post))
        .route("/ocsp/{*request}", get(ocsp::get))
        .route("/healthz", get(info::healthz))
        .route("/metrics", get(info::metrics))
        .route("/dashboard", get(crate::dashboard::page))
        .fallback(not_found)
        .with_state(authority)
}

async fn not_found() -> Response {
    ApiError(AuthorityError::new(
        Kind::NotFound,
        "not_found",
        "no such endpoint; see docs/ca-api.md",
    ))
    .into_response()
}

/// An error rendered as `{"error":{"code","message"}}` with the matching status.
pub struct ApiError(pub AuthorityError);

impl From<AuthorityError> for ApiError {
    fn from(e: AuthorityError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.kind {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = serde_json::json!({"error": {"code": self.0.code, "message": self.0.message}});
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if self.0.code == crate::error::STORE_UNREACHABLE {
            // The database may be back in a moment (a restart, a failover): say when to retry.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// Reads a JSON body of at most `MAX_BODY` bytes into `T`, with precise errors.
pub async fn read_json<T: DeserializeOwned>(
    authority: &Authority,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let bytes = read_body(authority, headers, body).await?;
    decode_json(&bytes).map_err(|e| {
        authority.metrics.reject(e.code);
        ApiError(e)
    })
}

/// Reads a whole request body of at most `MAX_BODY` bytes: 413 `body_too_large` beyond.
pub async fn read_body(
    authority: &Authority,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        authority.metrics.reject("body_too_large");
        ApiError(body_too_large())
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(too_large());
    }
    // Bodies up to DRAIN_LIMIT are read (and dropped if too large) before answering, so a
    // client still sending gets the 413 instead of a broken pipe.
    let bytes = axum::body::to_bytes(body, DRAIN_LIMIT)
        .await
        .map_err(|_| too_large())?;
    if bytes.len() > MAX_BODY {
        return Err(too_large());
    }
    Ok(bytes)
}

/// A whole request body (at most `MAX_BODY` bytes) as `T`: 413 `body_too_large` or 400
/// `bad_json` naming what serde refused.
pub(crate) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AuthorityError> {
    if bytes.len() > MAX_BODY {
        return Err(body_too_large());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        AuthorityError::bad_request(
            "bad_json",
            format!("request body is not valid JSON for this endpoint: {e}"),
        )
    })
}

fn body_too_large() -> AuthorityError {
    AuthorityError::new(
        Kind::PayloadTooLarge,
        "body_too_large",
        format!("request body exceeds the {} KiB limit", MAX_BODY / 1024),
    )
}

/// Runs blocking authority work (signing, SQLite) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthorityError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(AuthorityError::internal)?
        .map_err(ApiError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_follows_the_kind_alone() {
        let cases = [
            (Kind::BadRequest, 400),
            (Kind::Unauthenticated, 401),
            (Kind::Forbidden, 403),
            (Kind::NotFound, 404),
            (Kind::Conflict, 409),
            (Kind::PayloadTooLarge, 413),
            (Kind::Internal, 500),
            (Kind::Unavailable, 503),
        ];
        for (kind, status) in cases {
            // The code plays no part: a 400 with the code of a 413 stays a 400.
            let response =
                ApiError(AuthorityError::new(kind, "body_too_large", "m")).into_response();
            assert_eq!(response.status().as_u16(), status, "{kind:?}");
        }
    }
}
