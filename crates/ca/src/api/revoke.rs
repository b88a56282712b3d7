//! `POST /api/v1/revoke`: by the admin identity or the certificate's holder, over mTLS. The
//! answer also names the certificates renewed from the revoked one (revoked with it).

use super::{blocking, read_json, ApiError, AppState, PeerCert};
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeBody {
    pub(super) serial: String,
    pub(super) reason: Option<String>,
}

pub async fn revoke(
    State(authority): State<AppState>,
    Extension(peer): Extension<PeerCert>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body: RevokeBody = read_json(&authority, &headers, body).await?;
    let serial = body.serial.clone();
    let revoked =
        blocking(move || authority.revoke(peer.der(), &body.serial, body.reason.as_deref()))
            .await?;
    let serial = pki::serial::normalize_hex(&serial).unwrap_or(serial);
    let also: Vec<&String> = revoked.iter().filter(|s| **s != serial).collect();
    Ok(Json(
        serde_json::json!({"revoked": serial, "also_revoked": also}),
    ))
}
