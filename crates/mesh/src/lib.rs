#![warn(missing_docs)]

//! `mesh`: the services of mtls-mesh as a library. A service (`mtls-server`, `mtls-client`, the
//! mTLS proxy, your own program) describes where its certificate comes from in a
//! [`ServiceConfig`], starts a [`Mesh`], and serves or calls over mutual TLS 1.3 with it. The
//! library enrolls with mtls-ca (join token, fresh key in memory, CSR), renews at half the
//! lifetime with jitter, refreshes the CA's CRL and trust bundle, reloads static files, fails
//! closed on a stale CRL, and closes connections whose peer certificate expires or is revoked.
//! It has no command line and never prints; it logs with `tracing`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mesh::{CaRoot, CredentialSource, Enrollment, Fingerprint, Mesh, Role, ServiceConfig};
//! use mesh::{HttpsUrl, TokenSource};
//!
//! let enrollment = Enrollment::new(
//!     HttpsUrl::parse("https://localhost:8443")?,
//!     CaRoot::Fingerprint(Fingerprint::parse("<sha256 printed by mtls-ca>")?),
//!     pki::SpiffeId::parse("spiffe://mesh.local/service/api")?,
//!     TokenSource::File("api.token".into()),
//! );
//! let config = ServiceConfig::new(Role::Server, CredentialSource::Enrolled(enrollment));
//! let mesh = Mesh::start(config).await?;
//! // An axum Router (or any tower Service) over mTLS, the caller in each request's extensions:
//! let app = axum::Router::new().route(
//!     "/hello",
//!     axum::routing::get(|axum::Extension(peer): axum::Extension<mesh::Peer>| async move {
//!         format!("hello {}", peer.identity())
//!     }),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9443").await?;
//! mesh::serve_http(listener, &mesh, app, Default::default(), std::future::pending()).await?;
//! mesh.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The pieces, for other protocols: [`Mesh::server_config`] and [`Mesh::client_config`] give
//! rustls configurations that follow rotation and revocation; [`Mesh::identify`] and
//! [`Mesh::close_when_invalid`] plug a raw byte stream protocol into `wire::Listener`;
//! [`MeshClient`] is an HTTPS client that reconnects after a rotation; [`MeshConnector`] opens
//! raw mTLS connections (a proxy's outbound side) and watches the server's certificate. docs/architecture.md
//! describes the whole API.

mod ca_client;
pub mod client;
pub mod clock;
pub mod config;
pub mod credentials;
mod crl_freshness;
mod enroll;
pub mod error;
mod events;
pub mod federation;
pub mod federation_fetch;
pub mod health;
pub mod https;
mod mesh;
mod metrics;
mod peer_anchor;
mod peer_watch;
mod refresh;
pub mod server;
mod stop;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod trust;
mod trust_bundle;

pub use ca_client::refusal_of as ca_refusal_of;
pub use client::{MeshClient, MeshConnector, Upstream};
pub use config::{
    CaRoot, CredentialSource, Enrollment, Fingerprint, Mode, PinSource, Pinned, RevocationOptions,
    Role, RotateAt, ServiceConfig, StaticFiles, TlsOptions, TokenSource, WorkloadApi,
};
pub use credentials::Credential;
pub use enroll::make_csr;
pub use error::{MeshError, Result};
pub use https::HttpsUrl;
pub use mesh::Mesh;
pub use server::{serve_http, AllowList, Peer, ServeOptions};
