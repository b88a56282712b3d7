//! A Rust service that embeds mesh: its own axum routes over mTLS 1.3, with enrollment (join
//! token), rotation at half the lifetime, CRL refresh and revocation, all by the library.
//!
//! cargo run -p mesh --example axum_service -- CA_URL CA_FINGERPRINT SPIFFE_ID TOKEN_FILE \
//!     [LISTEN (127.0.0.1:9443)] [TTL (the CA's default)]
//! mtls-client ... --server https://localhost:9443 --path /hello

use std::time::Duration;

use axum::{routing::get, Extension, Router};
use mesh::{CaRoot, CredentialSource, Enrollment, Fingerprint, HttpsUrl, Mesh, Peer};
use mesh::{Role, ServiceConfig, TokenSource};

/// Handlers learn who called from the verified certificate, never from headers.
async fn hello(Extension(peer): Extension<Peer>) -> String {
    format!("hello {} (serial {})\n", peer.identity(), peer.serial())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The library logs with tracing: rotations, CRL updates, refused handshakes.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ca_url, fingerprint, spiffe_id, token_file, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: axum_service CA_URL CA_FINGERPRINT SPIFFE_ID TOKEN_FILE [LISTEN] [TTL]".into(),
        );
    };
    let mut enrollment = Enrollment::new(
        HttpsUrl::parse(ca_url)?,
        CaRoot::Fingerprint(Fingerprint::parse(fingerprint)?),
        pki::SpiffeId::parse(spiffe_id)?,
        TokenSource::File(token_file.into()),
    );
    enrollment.ttl = rest.get(1).map(|t| pki::duration::parse(t)).transpose()?;
    let mut config = ServiceConfig::new(Role::Server, CredentialSource::Enrolled(enrollment));
    config.revocation.crl_refresh = Duration::from_secs(1);
    let mesh = Mesh::start(config).await?;

    let app = Router::new().route("/hello", get(hello));
    let listen = rest.first().map_or("127.0.0.1:9443", String::as_str);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on https://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    mesh::serve_http(listener, &mesh, app, Default::default(), shutdown).await?;
    mesh.shutdown().await;
    Ok(())
}
