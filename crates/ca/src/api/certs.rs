//! `GET /api/v1/certs`: every issued certificate with its status, for the admin identity.

use super::{blocking, ApiError, AppState, PeerCert};
use axum::extract::{Extension, State};
use axum::Json;

pub async fn list(
    State(authority): State<AppState>,
    Extension(peer): Extension<PeerCert>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let listing = authority.clone();
    let records = blocking(move || listing.list(peer.der())).await?;
    let now = authority.now();
    let certs: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["status"] = serde_json::Value::from(r.status(now));
            v
        })
        .collect();
    Ok(Json(serde_json::json!({ "certificates": certs })))
}
