//! Who a peer is after its handshake, as the wire layer asks (`wire::Identify`): the verified
//! client certificate becomes a [`Peer`], the handshake is logged and counted, and a failed
//! handshake is logged with its reason in words. Every listener of a mesh service uses it: the
//! HTTP server (`serve_http`) and any other protocol on `wire::Listener` (a byte-copying
//! proxy, for instance).

use std::net::SocketAddr;
use std::sync::Arc;

use wire::{HandshakeError, Identified, Identify, Rejected};

use crate::events::Events;
use crate::server::Peer;
use crate::tls::{
    io_reason, rustls_error, server_reason_code, server_side_reason, HandshakeSummary,
};

/// The mesh's answer to "who is this peer?" for `wire::Listener`.
pub struct PeerIdentify {
    pub(crate) events: Arc<Events>,
}

impl Identify for PeerIdentify {
    type Peer = Peer;

    fn identify(
        &self,
        addr: SocketAddr,
        tls: &rustls::ServerConnection,
    ) -> Result<Identified<Peer>, Rejected> {
        let metrics = &self.events.metrics;
        let Some(peer) = tls
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| Peer::from_verified(addr, c))
        else {
            // Cannot happen: client authentication is mandatory, so a finished handshake has a
            // verified certificate. Refuse rather than serve an unidentified caller.
            metrics.handshake("no_certificate");
            tracing::warn!(event = "handshake_failed", peer_addr = %addr, code = "no_certificate", "handshake from {addr} finished without a usable client certificate");
            return Err(Rejected {
                code: "no_certificate",
            });
        };
        let summary = HandshakeSummary::of(tls);
        metrics.handshake("ok");
        tracing::info!(
            event = "handshake_ok",
            peer_addr = %addr,
            spiffe_id = %peer.id_string().unwrap_or_else(|| "-".into()),
            subject = %peer.subject(),
            issuer = %peer.issuer(),
            serial = %peer.serial(),
            client_key = %peer.client_key(),
            version = %summary.version,
            suite = %summary.suite,
            group = %summary.group,
            "connection from {addr}: {} (serial {}), {} {} {}",
            peer.identity(),
            peer.serial(),
            summary.version,
            summary.suite,
            summary.group,
        );
        // The per-identity limit counts by SPIFFE ID, else by subject (pinned peers).
        let identity = peer.identity();
        Ok(Identified {
            peer,
            authenticated: true,
            identity: Some(identity),
        })
    }

    fn handshake_failed(&self, addr: SocketAddr, error: &HandshakeError) {
        let metrics = &self.events.metrics;
        match error {
            HandshakeError::Timeout(_) => {
                metrics.handshake("timeout");
                tracing::warn!(event = "handshake_failed", peer_addr = %addr, code = "timeout", reason = "handshake timed out", "handshake from {addr} failed: timed out");
            }
            HandshakeError::Failed(e) => {
                let (code, reason) = match rustls_error(e) {
                    Some(err) => (server_reason_code(err), server_side_reason(err)),
                    None => ("io", io_reason(e, true)),
                };
                metrics.handshake(code);
                tracing::warn!(event = "handshake_failed", peer_addr = %addr, code, reason = %reason, "handshake from {addr} failed: {reason}");
            }
        }
    }
}
