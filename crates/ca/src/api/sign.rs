//! `POST /api/v1/sign` (join token) and `POST /api/v1/renew` (mTLS).

use super::{blocking, read_json, ApiError, AppState, PeerCert};
use crate::authority::{Issued, SignInput};
use crate::error::AuthorityError;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignBody {
    pub(super) csr: String,
    pub(super) requested_id: String,
    pub(super) ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RenewBody {
    pub(super) csr: String,
    pub(super) ttl: Option<String>,
}

pub async fn sign(
    State(authority): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Issued>, ApiError> {
    let token = bearer_token(&headers).inspect_err(|e| authority.metrics.reject(e.0.code))?;
    let body: SignBody = read_json(&authority, &headers, body).await?;
    let issued = blocking(move || {
        let input = SignInput {
            token: &token,
            csr_pem: &body.csr,
            requested_id: &body.requested_id,
            ttl: body.ttl.as_deref(),
        };
        authority.sign(&input)
    })
    .await?;
    Ok(Json(issued))
}

pub async fn renew(
    State(authority): State<AppState>,
    Extension(peer): Extension<PeerCert>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Issued>, ApiError> {
    let body: RenewBody = read_json(&authority, &headers, body).await?;
    let issued =
        blocking(move || authority.renew(peer.der(), &body.csr, body.ttl.as_deref())).await?;
    Ok(Json(issued))
}

fn bearer_token(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError(AuthorityError::unauthenticated(
                "token_missing",
                "missing Authorization: Bearer <join token> header",
            ))
        })?
        .to_str()
        .map_err(|_| {
            ApiError(AuthorityError::unauthenticated(
                "token_missing",
                "Authorization header is not text",
            ))
        })?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_string())
        }
        _ => Err(ApiError(AuthorityError::unauthenticated(
            "token_missing",
            "Authorization header must be \"Bearer <join token>\"",
        ))),
    }
}
