//! The read-only dashboard at `GET /dashboard` (docs/dashboard.md): one server-rendered HTML
//! page for the `--admin-id` identity only, on the mTLS API port. No JavaScript and no
//! external assets; every value escaped by the template (maud); a Content-Security-Policy
//! that allows nothing but the page's own stylesheet.

mod page;
mod timeline;

use std::sync::LazyLock;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;

use crate::api::{blocking, ApiError, AppState, PeerCert};

/// The page's only stylesheet, inlined in a `<style>` element.
const STYLE: &str = include_str!("style.css");

/// Nothing loads but this page's own stylesheet (by its hash): no scripts, images, fonts,
/// frames or connections, no `<base>`, forms post back to the CA only, and no framing.
pub static CONTENT_SECURITY_POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, STYLE.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    );
    // Base64 and ASCII only, so this cannot fail; if it did, the stricter policy (the page
    // unstyled) is served rather than none.
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
});

/// The query string: `?id=SPIFFE-ID` shows one identity; empty or absent shows all.
#[derive(Deserialize)]
pub struct Filter {
    id: Option<String>,
}

/// `GET /dashboard[?id=...]`: the page for the admin identity; 401/403 (as HTML) otherwise.
pub async fn page(
    State(authority): State<AppState>,
    Extension(peer): Extension<PeerCert>,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Response {
    // A malformed query string (bad percent-encoding, `id` twice) gets a page with the same
    // headers as every other answer, not the framework's plain-text 400.
    let Ok(Query(filter)) = filter else {
        let status = StatusCode::BAD_REQUEST;
        let message = "the query string must be empty or id=SPIFFE-ID (once, URL-encoded)";
        return html(status, page::refused(status, message, STYLE));
    };
    let id = filter.id.filter(|id| !id.is_empty());
    let gathered = blocking(move || authority.overview(peer.der(), id.as_deref())).await;
    match gathered {
        Ok(overview) => html(StatusCode::OK, page::render(&overview, STYLE)),
        Err(ApiError(e)) => {
            // The status (and Retry-After, for an unreachable store) as the JSON API answers,
            // with the message as a page instead of JSON.
            let message = e.message.clone();
            let mut response = ApiError(e).into_response();
            let status = response.status();
            let page = html(status, page::refused(status, &message, STYLE));
            let (parts, body) = page.into_parts();
            *response.body_mut() = body;
            response.headers_mut().extend(parts.headers);
            response
        }
    }
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY.clone(),
    );
    // The page lists issued identities: never cached, never sniffed, never framed or referred.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
