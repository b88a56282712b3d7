//! `GET /api/v1/certs`: every issued certificate with its status, for the admin identity.

use axum::extract::{Extension, State};
use axum::Json;
use time::OffsetDateTime;

use super::{blocking, ApiError, AppState, PeerCert};

pub async fn list(
    State(authority): State<AppState>,
    Extension(peer): Extension<PeerCert>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let records = blocking(move || authority.list(peer.der(), now)).await?;
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
