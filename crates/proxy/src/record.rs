//! One record per proxied connection, and its log line when the connection ends: peer
//! address, SPIFFE ID, serial and client key of the authenticated side, bytes each way,
//! duration and the close reason (`event="proxy_connection"`). A record dropped without an end
//! (the connection was cut at the end of the drain time) logs itself as `drain_timeout`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::time::Instant;
use wire::relay::RelayBytes;

use crate::metrics::ProxyMetrics;

/// Who is on the authenticated side of a connection: the mTLS client (inbound) or the remote
/// server (outbound).
#[derive(Clone, Debug, Default)]
pub struct PeerFacts {
    /// SPIFFE ID, else the subject.
    pub identity: String,
    /// Serial, lowercase hex.
    pub serial: String,
    /// The client key (docs/design.md §2).
    pub client_key: String,
}

impl PeerFacts {
    /// The facts of a verified mesh peer.
    pub fn of_peer(peer: &mesh::Peer) -> PeerFacts {
        PeerFacts {
            identity: peer.identity(),
            serial: peer.serial().to_string(),
            client_key: peer.client_key().to_string(),
        }
    }

    /// The facts of a server certificate from a handshake summary.
    pub fn of_server(summary: &mesh::tls::HandshakeSummary) -> PeerFacts {
        summary
            .peer
            .as_ref()
            .map(|p| PeerFacts {
                identity: p.spiffe_id.clone().unwrap_or_else(|| p.subject.clone()),
                serial: p.serial.clone(),
                client_key: p.client_key.clone(),
            })
            .unwrap_or_default()
    }
}

/// One connection's record.
pub struct Record {
    direction: &'static str,
    /// The listener (`--listen`) it came in on, for the log.
    listener: SocketAddr,
    peer_addr: SocketAddr,
    facts: std::sync::Mutex<PeerFacts>,
    started: Instant,
    /// Bytes moved, updated while the connection runs.
    pub bytes: RelayBytes,
    ended: AtomicBool,
    metrics: Arc<ProxyMetrics>,
}

impl Record {
    /// A record for a connection from `peer_addr` on `listener`.
    pub fn new(
        direction: &'static str,
        listener: SocketAddr,
        peer_addr: SocketAddr,
        facts: PeerFacts,
        metrics: Arc<ProxyMetrics>,
    ) -> Arc<Record> {
        Arc::new(Record {
            direction,
            listener,
            peer_addr,
            facts: std::sync::Mutex::new(facts),
            started: Instant::now(),
            bytes: RelayBytes::default(),
            ended: AtomicBool::new(false),
            metrics,
        })
    }

    /// Sets who the authenticated side is, once known (outbound: after the handshake).
    pub fn set_facts(&self, facts: PeerFacts) {
        *self.facts.lock().unwrap_or_else(|p| p.into_inner()) = facts;
    }

    /// Ends the record: counts it and logs one line. Only the first call counts.
    pub fn end(&self, code: &'static str, detail: &str) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        let (from_client, to_client) = (self.bytes.from_client(), self.bytes.to_client());
        self.metrics
            .closed(self.direction, code, from_client, to_client);
        let facts = self.facts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let duration = self.started.elapsed();
        let id = if facts.identity.is_empty() {
            "-"
        } else {
            facts.identity.as_str()
        };
        tracing::info!(
            event = "proxy_connection",
            direction = self.direction,
            listener = %self.listener,
            peer_addr = %self.peer_addr,
            spiffe_id = id,
            serial = if facts.serial.is_empty() { "-" } else { facts.serial.as_str() },
            client_key = if facts.client_key.is_empty() { "-" } else { facts.client_key.as_str() },
            bytes_from_client = from_client,
            bytes_to_client = to_client,
            duration_ms = duration.as_millis() as u64,
            reason = code,
            "{} connection from {} ({id}) closed after {:.3}s: {from_client} bytes in, {to_client} bytes out; {code}: {detail}",
            self.direction,
            self.peer_addr,
            duration.as_secs_f64(),
        );
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        // Cut by the listener at the end of the drain time: nothing else ends a record silently.
        self.end("drain_timeout", "still open when the drain time ran out");
    }
}
