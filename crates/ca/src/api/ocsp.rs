//! `POST /ocsp` and `GET /ocsp/{base64}` (RFC 6960 appendix A, docs/ca-api.md "OCSP"):
//! unauthenticated, like the CRL. Errors of the request itself are OCSP error statuses inside
//! a 200 answer, as OCSP clients expect; only an oversized body is refused at the HTTP level.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use base64::Engine;

use super::{read_body, ApiError, AppState};

/// The longest base64 request accepted in a GET path (a request names at most
/// `pki::ocsp::MAX_REQUESTS` certificates, far less than this).
const MAX_GET_REQUEST: usize = 8 * 1024;

pub async fn post(
    State(authority): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let request = read_body(&authority, &headers, body).await?;
    Ok(answer(authority, request.to_vec()).await)
}

pub async fn get(
    State(authority): State<AppState>,
    Path(encoded): Path<String>,
) -> impl IntoResponse {
    // The path is percent-decoded already; a client that did not escape '/' split the base64
    // over several segments, which the wildcard joins back.
    let request = decode(&encoded).unwrap_or_default();
    answer(authority, request).await
}

/// Standard base64 (RFC 6960 A.1) with or without padding, or its URL-safe variant.
fn decode(encoded: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if encoded.len() > MAX_GET_REQUEST {
        return None;
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(encoded).ok())
}

async fn answer(authority: AppState, request: Vec<u8>) -> impl IntoResponse {
    let der = tokio::task::spawn_blocking(move || authority.ocsp(&request))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "OCSP task failed");
            pki::ocsp::OcspError::Sign(e.to_string()).response_der()
        });
    ([(header::CONTENT_TYPE, "application/ocsp-response")], der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_paths_decode_in_every_base64_spelling_and_refuse_the_rest() {
        let der = vec![0x30, 0xfb, 0xff, 0x01];
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
        ] {
            assert_eq!(decode(&engine.encode(&der)).as_deref(), Some(&der[..]));
        }
        assert_eq!(decode("not base64 !"), None);
        assert_eq!(decode(&"A".repeat(MAX_GET_REQUEST + 4)), None);
    }
}
