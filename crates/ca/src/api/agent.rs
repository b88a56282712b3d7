//! The agent API (docs/ca-api.md "Agent API"), over mTLS with an agent's certificate:
//! `GET /api/v1/agent/entries`, `POST /api/v1/agent/svid`, `POST /api/v1/agent/jwt`.

use super::{blocking, read_json, ApiError, AppState, PeerCert};
use crate::authority::{AgentEntries, Issued, IssuedJwt};
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SvidBody {
    pub(super) entry_id: String,
    pub(super) csr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JwtBody {
    pub(super) entry_id: String,
    pub(super) audience: Vec<String>,
    pub(super) ttl: Option<String>,
}

pub async fn entries(
    State(authority): State<AppState>,
    Extension(peer): Extension<PeerCert>,
) -> Result<Json<AgentEntries>, ApiError> {
    Ok(Json(
        blocking(move || authority.agent_entries(peer.der())).await?,
    ))
}

pub async fn svid(
    State(authority): State<AppState>,
    Extension(peer): Extension<PeerCert>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Issued>, ApiError> {
    let body: SvidBody = read_json(&authority, &headers, body).await?;
    Ok(Json(
        blocking(move || authority.agent_svid(peer.der(), &body.entry_id, &body.csr)).await?,
    ))
}

pub async fn jwt(
    State(authority): State<AppState>,
    Extension(peer): Extension<PeerCert>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IssuedJwt>, ApiError> {
    let body: JwtBody = read_json(&authority, &headers, body).await?;
    Ok(Json(
        blocking(move || {
            authority.agent_jwt(
                peer.der(),
                &body.entry_id,
                &body.audience,
                body.ttl.as_deref(),
            )
        })
        .await?,
    ))
}
