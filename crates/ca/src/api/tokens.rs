//! `POST /api/v1/tokens`: a one-time join token for the admin identity, over mTLS;
//! `GET /api/v1/tokens` lists them and `DELETE /api/v1/tokens/ID` revokes an unused one
//! (docs/ca-api.md "Join tokens").

use super::{blocking, read_json, ApiError, AppState, PeerCert};
use crate::authority::TokenRequest;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    pub(super) spiffe_id: String,
    #[serde(default)]
    pub(super) dns: Vec<String>,
    #[serde(default)]
    pub(super) ip: Vec<String>,
    pub(super) ttl: Option<String>,
}

pub async fn create(
    State(authority): State<AppState>,
    Extension(peer): Extension<PeerCert>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body: TokenBody = read_json(&authority, &headers, body).await?;
    let request = TokenRequest {
        spiffe_id: body.spiffe_id,
        dns: body.dns,
        ip: body.ip,
        ttl: body.ttl,
    };
    let made = blocking(move || authority.create_join_token(peer.der(), &request)).await?;
    Ok(Json(serde_json::json!({
        "token": made.token,
        "expires_at": pki::timefmt::rfc3339(made.expires_at),
    })))
}

pub async fn list(
    State(authority): State<AppState>,
    Extension(peer): Extension<PeerCert>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = authority.now();
    let tokens = blocking(move || authority.list_join_tokens(peer.der())).await?;
    let list: Vec<serde_json::Value> = tokens.iter().map(|t| t.view(now)).collect();
    Ok(Json(serde_json::json!({ "tokens": list })))
}

pub async fn revoke(
    State(authority): State<AppState>,
    Extension(peer): Extension<PeerCert>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = authority.now();
    let token = blocking(move || authority.revoke_join_token(peer.der(), &id)).await?;
    Ok(Json(token.view(now)))
}
