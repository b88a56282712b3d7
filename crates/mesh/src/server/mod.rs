//! The mTLS HTTP server: accept, handshake (client certificate required), log who connected or
//! why the handshake failed, serve the API, and close any connection whose peer certificate
//! expires or is revoked while it is open (after the request in flight).

pub mod admin;
pub mod allow;
pub mod handlers;
pub mod peer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::credentials::Identity;
use crate::events::Events;
use crate::tls::describe::{rustls_error, server_reason_code, server_side_reason};
use crate::tls::HandshakeSummary;
use crate::trust::TrustState;

pub use allow::AllowList;
pub use peer::Peer;

/// A handshake that has not finished after this long is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by every connection of one server.
pub struct ServerShared {
    pub tls: Arc<ServerConfig>,
    pub identity: Arc<Identity>,
    /// None in pinned mode (no CA, no revocation).
    pub trust: Option<Arc<TrustState>>,
    pub allow: AllowList,
    pub events: Arc<Events>,
}

/// Accepts connections until the listener fails; each connection runs in its own task.
pub async fn serve(listener: TcpListener, shared: Arc<ServerShared>) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(shared.tls.clone());
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and similar: log, back off briefly, keep serving.
                tracing::warn!(event = "accept_failed", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move { connection(tcp, addr, acceptor, shared).await });
    }
}

async fn connection(
    tcp: TcpStream,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<ServerShared>,
) {
    let metrics = &shared.events.metrics;
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp).into_fallible())
        .await
    {
        Err(_) => {
            metrics.handshake("timeout");
            tracing::warn!(event = "handshake_failed", peer_addr = %addr, code = "timeout", reason = "handshake timed out", "handshake from {addr} failed: timed out");
            return;
        }
        Ok(Err((e, tcp))) => {
            let (code, reason) = match rustls_error(&e) {
                Some(err) => (server_reason_code(err), server_side_reason(err)),
                None => ("io", crate::tls::describe::io_reason(&e, true)),
            };
            metrics.handshake(code);
            tracing::warn!(event = "handshake_failed", peer_addr = %addr, code, reason = %reason, "handshake from {addr} failed: {reason}");
            linger(tcp).await;
            return;
        }
        Ok(Ok(tls)) => tls,
    };
    let summary = HandshakeSummary::of(tls.get_ref().1);
    let Some(peer) = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| Peer::from_verified(addr, c))
    else {
        // Cannot happen: client authentication is mandatory, so a finished handshake has a
        // verified certificate. Refuse rather than serve an unidentified caller.
        metrics.handshake("no_certificate");
        tracing::warn!(event = "handshake_failed", peer_addr = %addr, code = "no_certificate", "handshake from {addr} finished without a usable client certificate");
        return;
    };
    metrics.handshake("ok");
    tracing::info!(
        event = "handshake_ok",
        peer_addr = %addr,
        spiffe_id = %peer.id_string().unwrap_or_else(|| "-".into()),
        subject = %peer.subject,
        issuer = %peer.issuer,
        serial = %peer.serial,
        client_key = %peer.client_key,
        version = %summary.version,
        suite = %summary.suite,
        group = %summary.group,
        "connection from {addr}: {} (serial {}), {} {} {}",
        peer.id_string().unwrap_or_else(|| peer.subject.clone()),
        peer.serial,
        summary.version,
        summary.suite,
        summary.group,
    );
    let peer = Arc::new(peer);
    let service = {
        let peer = peer.clone();
        let shared = shared.clone();
        service_fn(move |req| handlers::handle(req, peer.clone(), shared.clone()))
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let close = crate::peer_watch::close_when_invalid((&*peer).into(), shared.trust.clone());
    tokio::pin!(close);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(event = "connection_error", peer_addr = %addr, error = %e, "connection from {addr} ended with an error");
                }
                break;
            }
            reason = &mut close, if !closing => {
                closing = true;
                metrics.connection_closed(reason);
                tracing::info!(
                    event = "connection_closed",
                    peer_addr = %addr,
                    spiffe_id = %peer.id_string().unwrap_or_else(|| "-".into()),
                    serial = %peer.serial,
                    reason,
                    "closing the connection from {addr}: peer certificate {} {reason}",
                    peer.serial
                );
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Closes a connection whose handshake failed so that the client can read our alert: send FIN,
/// then drain what the client already sent (its first request, in TLS 1.3) for a moment. Closing
/// with unread data would make the kernel send a reset, which can destroy the alert in flight.
async fn linger(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tcp.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        while total < 256 * 1024 {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
