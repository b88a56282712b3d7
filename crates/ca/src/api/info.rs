//! Unauthenticated endpoints: root, bundle, CRL, health and metrics.

use super::{blocking, ApiError, AppState};
use crate::error::{AuthorityError, Kind};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

pub async fn ca(State(authority): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        authority.ca().root_pem(),
    )
}

pub async fn bundle(State(authority): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        authority.bundle_pem(),
    )
}

/// The SPIFFE bundle: the trust bundle as a JWK set with the JWT-SVID key (docs/ca-api.md).
pub async fn spiffe_bundle(
    State(authority): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let bundle = blocking(move || authority.spiffe_bundle()).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        bundle.to_string(),
    ))
}

/// The last good SPIFFE bundle of each federated trust domain (docs/ca-api.md).
pub async fn federated_bundles(
    State(authority): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let bundles = blocking(move || authority.federated_bundles()).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        bundles.to_string(),
    ))
}

/// The query of `GET /api/v1/crl`.
#[derive(serde::Deserialize)]
pub struct CrlQuery {
    /// Hex SHA-256 of the root whose CRL is wanted (default: the active root's).
    issuer: Option<String>,
}

pub async fn crl(
    State(authority): State<AppState>,
    Query(query): Query<CrlQuery>,
) -> Result<Response, ApiError> {
    let der = match query.issuer {
        None => blocking(move || authority.crl()).await?,
        Some(fingerprint) => {
            let wanted = fingerprint.clone();
            match blocking(move || authority.crl_of_root(&wanted)).await? {
                Some(der) => der,
                None => {
                    return Err(ApiError(AuthorityError::new(
                        Kind::NotFound,
                        "unknown_issuer",
                        format!(
                            "this CA signs no CRL as the root {fingerprint}: only its active \
                             root and, during a root rotation, the old root do"
                        ),
                    )))
                }
            }
        }
    };
    Ok((
        [(header::CONTENT_TYPE, "application/pkix-crl")],
        der.as_ref().clone(),
    )
        .into_response())
}

/// 200 `{"status":"ok"}` only when the database file is still the one opened and a write
/// commits; otherwise 503 with the reason (see `Authority::health`).
pub async fn healthz(State(authority): State<AppState>) -> Response {
    let verdict = tokio::task::spawn_blocking(move || authority.health())
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "health probe task failed");
            Err("the health probe failed (see the CA log)".into())
        });
    let (status, body) = match verdict {
        Ok(()) => (StatusCode::OK, serde_json::json!({"status": "ok"})),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unhealthy", "reason": reason}),
        ),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub async fn metrics(State(authority): State<AppState>) -> impl IntoResponse {
    let text = tokio::task::spawn_blocking(move || {
        let head = authority.audit_head_seq().ok();
        let life = authority.intermediate_life().map(|l| l.used);
        authority
            .metrics
            .render(authority.ca().root_not_after(), authority.now(), head, life)
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "rendering metrics failed");
        String::new()
    });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
