//! Unauthenticated endpoints: root, bundle, CRL, health and metrics.

use super::{blocking, ApiError, AppState};
use axum::extract::State;
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

pub async fn crl(State(authority): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let der = blocking(move || authority.crl()).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/pkix-crl")],
        der.as_ref().clone(),
    ))
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
