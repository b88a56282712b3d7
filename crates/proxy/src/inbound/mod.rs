//! The inbound side: mTLS in, plaintext to the local application. In L4 mode who may call is
//! decided right after the handshake ([`InboundIdentify`]): a refused caller is closed with
//! close_notify by the listener and the application is never connected to; an allowed
//! caller's connection is relayed byte for byte ([`L4`]). In HTTP mode ([`HttpInbound`]) each
//! request is checked (per path prefix when the policy says so) and forwarded with the caller
//! in headers.

pub mod http;
mod l4;
pub mod xfcc;

pub use http::HttpInbound;
pub use l4::L4;

use std::net::SocketAddr;
use std::sync::Arc;

use mesh::server::PeerIdentify;
use mesh::Peer;
use wire::{HandshakeError, Identified, Identify, Rejected};

use crate::metrics::ProxyMetrics;
use crate::policy::{Decision, PolicyHandle};
use crate::record::{PeerFacts, Record};

/// The mesh's peer identification, then the proxy's policy: a caller the policy refuses is
/// rejected before any byte of the application could reach it.
pub struct InboundIdentify {
    /// The mesh's identification (logs the handshake, counts it).
    pub mesh: PeerIdentify,
    /// Who may call.
    pub policy: Arc<PolicyHandle>,
    /// Refusals are counted here.
    pub metrics: Arc<ProxyMetrics>,
    /// The inbound listener's address, for the connection's log line.
    pub listener: SocketAddr,
}

impl Identify for InboundIdentify {
    type Peer = Peer;

    fn identify(
        &self,
        addr: SocketAddr,
        tls: &rustls::ServerConnection,
    ) -> Result<Identified<Peer>, Rejected> {
        let identified = self.mesh.identify(addr, tls)?;
        let peer = &identified.peer;
        if let Decision::Refused(why) = self.policy.current().check(peer.spiffe_id(), None) {
            self.metrics.refused("inbound", "forbidden");
            tracing::warn!(
                event = "connection_refused",
                peer_addr = %addr,
                spiffe_id = %peer.identity(),
                reason = "forbidden",
                "refusing the connection from {addr}: {why}"
            );
            Record::new(
                "inbound",
                self.listener,
                addr,
                PeerFacts::of_peer(peer),
                self.metrics.clone(),
            )
            .end("forbidden", &why);
            return Err(Rejected { code: "forbidden" });
        }
        Ok(identified)
    }

    fn handshake_failed(&self, addr: SocketAddr, error: &HandshakeError) {
        self.mesh.handshake_failed(addr, error);
    }
}
