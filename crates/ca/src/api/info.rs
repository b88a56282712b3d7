//! Unauthenticated endpoints: root, bundle, CRL, health and metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use time::OffsetDateTime;

use super::{blocking, ApiError, AppState};

pub async fn ca(State(authority): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        authority.ca().cert_pem(),
    )
}

pub async fn bundle(State(authority): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        authority.bundle_pem(),
    )
}

pub async fn crl(State(authority): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let der = blocking(move || authority.crl(OffsetDateTime::now_utc())).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/pkix-crl")],
        der.as_ref().clone(),
    ))
}

pub async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

pub async fn metrics(State(authority): State<AppState>) -> impl IntoResponse {
    let text = authority
        .metrics
        .render(authority.ca().not_after(), OffsetDateTime::now_utc());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
