//! L4 mode: after the handshake and the policy, open a plaintext connection to the
//! application and copy bytes both ways until both sides have ended, one side fails, nothing
//! moves for the idle time, the caller's certificate expires or is revoked, or a reloaded
//! policy file no longer allows the caller. The application is connected to only for an
//! authenticated and authorised caller.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh::{Mesh, Peer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wire::{BoxFuture, Established, Protocol};

use crate::config::Destination;
use crate::metrics::ProxyMetrics;
use crate::policy::PolicyHandle;
use crate::record::{PeerFacts, Record};
use crate::splice::{splice, Caller, Pair, Plain};

/// The byte-copying protocol of the inbound listener.
pub struct L4 {
    shared: Arc<Shared>,
}

struct Shared {
    mesh: Arc<Mesh>,
    policy: Arc<PolicyHandle>,
    listener: SocketAddr,
    to: Destination,
    connect_timeout: Duration,
    idle_timeout: Duration,
    metrics: Arc<ProxyMetrics>,
}

impl L4 {
    /// Relays the connections of the listener on `listener` to the application at `to`, for
    /// as long as `policy` allows the caller (a reload can end an open connection).
    pub fn new(
        mesh: Arc<Mesh>,
        policy: Arc<PolicyHandle>,
        listener: SocketAddr,
        to: Destination,
        connect_timeout: Duration,
        idle_timeout: Duration,
        metrics: Arc<ProxyMetrics>,
    ) -> L4 {
        L4 {
            shared: Arc::new(Shared {
                mesh,
                policy,
                listener,
                to,
                connect_timeout,
                idle_timeout,
                metrics,
            }),
        }
    }
}

impl Protocol<Peer> for L4 {
    fn serve(&self, conn: Established<Peer>) -> BoxFuture<()> {
        let shared = self.shared.clone();
        Box::pin(async move { shared.serve(conn).await })
    }
}

impl Shared {
    async fn serve(&self, conn: Established<Peer>) {
        let Established {
            mut stream,
            addr,
            peer,
            refused,
            counters,
            ..
        } = conn;
        let record = Record::new(
            "inbound",
            self.listener,
            addr,
            PeerFacts::of_peer(&peer),
            self.metrics.clone(),
        );
        if let Some(refused) = refused {
            // Over the per-identity limit (logged and counted by the listener): a clean TLS
            // close, no byte of the application.
            self.metrics.refused("inbound", refused.code());
            record.end(refused.code(), &refused.to_string());
            let _ = stream.shutdown().await;
            return;
        }
        let certificate = self.mesh.close_when_invalid(&peer);
        let policy = self.policy.close_when_refused(peer.spiffe_id().cloned());
        let invalid = async move {
            tokio::select! {
                reason = certificate => reason,
                reason = policy => reason,
            }
        };
        let app = match connect(&self.to, self.connect_timeout).await {
            Ok(app) => app,
            Err(why) => {
                self.metrics.refused("inbound", "app_unreachable");
                counters.closed("app_unreachable");
                tracing::warn!(event = "app_unreachable", peer_addr = %addr, to = %self.to,
                    "closing the connection from {addr} ({}): {why}", peer.identity());
                record.end("app_unreachable", &why);
                let _ = stream.shutdown().await;
                return;
            }
        };
        let pair = Pair {
            tls: &mut stream,
            plain: Plain::new(app),
            caller: Caller::Tls,
        };
        splice(pair, self.idle_timeout, invalid, &record, &counters, addr).await;
    }
}

/// Connects to `to` within `timeout`; the error says what failed in words.
async fn connect(to: &Destination, timeout: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(timeout, TcpStream::connect(to.authority())).await {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
        Ok(Err(e)) => Err(format!(
            "cannot connect to the application at {to}: {e} (is it running and listening there?)"
        )),
        Err(_) => Err(format!(
            "cannot connect to the application at {to}: no answer within {timeout:?}"
        )),
    }
}
