//! Outbound routes: a local application connects in plaintext to a loopback listener; the
//! proxy opens an mTLS connection to the route's remote service with this workload's current
//! certificate (a rotation applies to the next connection at once), verifies the server's
//! chain, revocation, DNS/IP name and SPIFFE ID (`mesh::MeshConnector`), and copies bytes both
//! ways until both sides end, one fails, nothing moves for the idle time, or the server's
//! certificate expires or is revoked. A route that cannot reach or verify its server resets the
//! local connection, so the application sees a failure rather than an empty answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh::MeshConnector;
use rustls_pki_types::ServerName;
use wire::{BoxFuture, PlainConnection, PlainProtocol};

use crate::config::Destination;
use crate::metrics::ProxyMetrics;
use crate::record::{PeerFacts, Record};
use crate::splice::{splice, Caller, Pair, Plain};

/// The protocol of one route's listener.
pub struct Route {
    shared: Arc<Shared>,
}

struct Shared {
    connector: MeshConnector,
    listener: SocketAddr,
    to: Destination,
    server_name: ServerName<'static>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    metrics: Arc<ProxyMetrics>,
}

impl Route {
    /// Relays the connections of the listener on `listener` to `to`, whose certificate must be
    /// valid for `server_name` (and carry the SPIFFE ID `connector` requires).
    pub fn new(
        connector: MeshConnector,
        listener: SocketAddr,
        to: Destination,
        server_name: ServerName<'static>,
        connect_timeout: Duration,
        idle_timeout: Duration,
        metrics: Arc<ProxyMetrics>,
    ) -> Route {
        Route {
            shared: Arc::new(Shared {
                connector,
                listener,
                to,
                server_name,
                connect_timeout,
                idle_timeout,
                metrics,
            }),
        }
    }
}

impl PlainProtocol for Route {
    fn serve(&self, conn: PlainConnection) -> BoxFuture<()> {
        let shared = self.shared.clone();
        Box::pin(async move { shared.serve(conn).await })
    }
}

impl Shared {
    async fn serve(&self, conn: PlainConnection) {
        let PlainConnection {
            stream,
            addr,
            counters,
            ..
        } = conn;
        // Reset on every early end (no upstream, or cut while connecting at the end of the
        // drain time): the application sees a failure, not an empty answer.
        let plain = Plain::new(stream);
        let record = Record::new(
            "outbound",
            self.listener,
            addr,
            PeerFacts::default(),
            self.metrics.clone(),
        );
        let upstream = match self
            .connector
            .connect(
                &self.to.authority(),
                self.server_name.clone(),
                self.connect_timeout,
            )
            .await
        {
            Ok(upstream) => upstream,
            Err(e) => {
                self.metrics.refused("outbound", "upstream_failed");
                counters.closed("upstream_failed");
                tracing::warn!(event = "upstream_failed", peer_addr = %addr, to = %self.to,
                    error = %e, "resetting the local connection from {addr}: {e}");
                record.end("upstream_failed", &e.to_string());
                return;
            }
        };
        record.set_facts(PeerFacts::of_server(&upstream.summary));
        let invalid = self.connector.close_when_invalid(&upstream);
        let mut tls = upstream.stream;
        let pair = Pair {
            tls: &mut tls,
            plain,
            caller: Caller::Plain,
        };
        splice(pair, self.idle_timeout, invalid, &record, &counters, addr).await;
    }
}
