//! `POST /ocsp` and `GET /ocsp/{base64}` (RFC 6960 appendix A, docs/ca-api.md "OCSP"):
//! unauthenticated, like the CRL. Errors of the request itself are OCSP error statuses inside
//! a 200 answer, as OCSP clients expect; only an oversized body is refused at the HTTP level.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::response::IntoResponse;

use super::{read_body, ApiError, AppState};

/// Where the request starts in a GET's path (the route is `/ocsp/{*request}`).
const GET_PREFIX: &str = "/ocsp/";

pub async fn post(
    State(authority): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let request = read_body(&authority, &headers, body).await?;
    Ok(answer(authority, Ok(request.to_vec())).await)
}

pub async fn get(State(authority): State<AppState>, uri: Uri) -> impl IntoResponse {
    // The path as it arrived, not axum's percent-decoded segments: the one decoder
    // (`pki::ocsp::decode_get_path`, fuzzed as `ocsp_get_path`) undoes the URL-encoding itself,
    // and a client that did not escape '/' spread the base64 over several segments.
    let encoded = uri.path().strip_prefix(GET_PREFIX).unwrap_or_default();
    answer(authority, pki::ocsp::decode_get_path(encoded)).await
}

async fn answer(
    authority: AppState,
    request: Result<Vec<u8>, pki::ocsp::OcspError>,
) -> impl IntoResponse {
    let der = tokio::task::spawn_blocking(move || match request {
        Ok(request) => authority.ocsp(&request),
        Err(refused) => authority.ocsp_refused(&refused),
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "OCSP task failed");
        pki::ocsp::OcspError::Sign(e.to_string()).response_der()
    });
    ([(header::CONTENT_TYPE, "application/ocsp-response")], der)
}
