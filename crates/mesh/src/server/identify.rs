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
use crate::trust::TrustState;

/// The mesh's answer to "who is this peer?" for `wire::Listener`.
pub struct PeerIdentify {
    pub(crate) events: Arc<Events>,
    /// The trust the handshakes were verified against (None in pinned mode): each peer
    /// remembers which of its roots its chain reached (`peer_anchor`).
    pub(crate) trust: Option<Arc<TrustState>>,
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
            .and_then(|chain| Peer::from_verified(addr, chain, self.trust.as_deref()))
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
            not_after = %pki::timefmt::rfc3339(peer.not_after()),
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

#[cfg(test)]
mod tests {
    //! The pieces a protocol other than HTTP (the proxy's byte copying) builds on: a
    //! `wire::Listener` with the mesh's server configuration and peer identification, the
    //! verified peer per connection, the close when the peer's certificate becomes invalid, and
    //! the mesh's client configuration on the other end.

    use std::sync::Arc;

    use pki::crl::{verify_crl, RevokedEntry, RevokedSet};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio_rustls::TlsConnector;
    use wire::tls::ALPN_NONE;
    use wire::{BoxFuture, Established, Limits, Listener, Protocol};

    use crate::clock::TokioClock;
    use crate::server::Peer;
    use crate::testing::{static_files_config, FakeCa, ID};
    use crate::Mesh;

    /// Greets the peer by name, echoes lines, and says why when it closes.
    struct Echo {
        mesh: Arc<Mesh>,
    }

    impl Protocol<Peer> for Echo {
        fn serve(&self, conn: Established<Peer>) -> BoxFuture<()> {
            let invalid = self.mesh.close_when_invalid(&conn.peer);
            Box::pin(async move {
                let (rd, mut wr) = tokio::io::split(conn.stream);
                let greeting = format!("hello {}\n", conn.peer.identity());
                let _ = wr.write_all(greeting.as_bytes()).await;
                let mut lines = BufReader::new(rd).lines();
                tokio::pin!(invalid);
                loop {
                    tokio::select! {
                        line = lines.next_line() => match line {
                            Ok(Some(l)) => { let _ = wr.write_all(format!("{l}\n").as_bytes()).await; }
                            _ => break,
                        },
                        reason = &mut invalid => {
                            conn.counters.closed(reason.code);
                            let _ = wr.write_all(format!("closing: {}\n", reason.detail).as_bytes()).await;
                            break;
                        }
                    }
                }
                let _ = wr.shutdown().await;
            })
        }
    }

    #[tokio::test]
    async fn a_raw_stream_protocol_gets_the_peer_and_is_closed_when_it_is_revoked() {
        let clock = Arc::new(TokioClock::new());
        let ca = FakeCa::new(clock.clone(), time::Duration::hours(1));
        let (server_dir, client_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let server = Arc::new(
            Mesh::start_with_clock(static_files_config(&ca, server_dir.path()), clock.clone())
                .await
                .unwrap(),
        );
        let client = Mesh::start_with_clock(static_files_config(&ca, client_dir.path()), clock)
            .await
            .unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = Listener {
            tcp,
            tls: Arc::new(server.server_config(ALPN_NONE).unwrap()),
            limits: Limits::default(),
            counters: server.connection_counters(),
            identify: Arc::new(server.identify()),
            protocol: Arc::new(Echo {
                mesh: server.clone(),
            }),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(wire::serve(listener, async {
            let _ = stopped.await;
        }));

        let id = pki::SpiffeId::parse(ID).unwrap();
        let config = client.client_config(Some(id), ALPN_NONE).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let (rd, mut wr) = tokio::io::split(tls);
        let mut lines = BufReader::new(rd).lines();
        assert_eq!(
            lines.next_line().await.unwrap().unwrap(),
            format!("hello {ID}")
        );
        wr.write_all(b"ping\n").await.unwrap();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "ping");

        // The client's certificate is revoked: the open connection is closed, with the reason.
        let serial = client.credential().serial().to_string();
        let now = time::OffsetDateTime::now_utc();
        let der = pki::crl::sign_crl(
            &ca.root,
            &[RevokedEntry {
                serial_hex: serial.clone(),
                revoked_at: now,
                reason: None,
            }],
            1,
            now,
            now + time::Duration::minutes(10),
        )
        .unwrap();
        let trust = server.trust().unwrap();
        let crl = verify_crl(&der, trust.roots().certs()).unwrap();
        trust.set_revoked(RevokedSet::from_crls(vec![crl]), true);
        assert_eq!(
            lines.next_line().await.unwrap().unwrap(),
            format!("closing: peer certificate {serial} revoked")
        );
        assert_eq!(lines.next_line().await.unwrap(), None);
        assert_eq!(server.connection_counters().closed_count("revoked"), 1);
        assert!(server
            .metrics()
            .contains("mesh_handshakes_total{result=\"ok\"} 1"));

        let _ = stop.send(());
        serving.await.unwrap();
    }

    /// An HTTP application on the wire layer that records how each connection ended
    /// (`HttpApp::connection_ended`, the hook a proxy writes its per-connection line from).
    struct Ends {
        identify: crate::server::PeerIdentify,
        ended: tokio::sync::mpsc::UnboundedSender<String>,
    }

    impl wire::Identify for Ends {
        type Peer = Peer;

        fn identify(
            &self,
            addr: std::net::SocketAddr,
            tls: &rustls::ServerConnection,
        ) -> Result<wire::Identified<Peer>, wire::Rejected> {
            self.identify.identify(addr, tls)
        }
    }

    impl wire::http::HttpApp for Ends {
        type Body = http_body_util::Full<hyper::body::Bytes>;

        fn call(
            &self,
            _peer: &Arc<Peer>,
            req: hyper::Request<wire::http::RequestBody>,
        ) -> BoxFuture<hyper::Response<Self::Body>> {
            let mut response = hyper::Response::new(http_body_util::Full::new("ok".into()));
            if req.uri().path() == "/close" {
                wire::http::CloseConnection::mark(&mut response, "test_close", "asked to close");
            }
            Box::pin(std::future::ready(response))
        }

        fn connection_ended(&self, _peer: &Arc<Peer>, reason: Option<&wire::CloseReason>) {
            let _ = self
                .ended
                .send(reason.map_or("client".to_string(), |r| r.code.to_string()));
        }
    }

    /// The next connection end, within a deadline.
    async fn next(ends: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(std::time::Duration::from_secs(10), ends.recv())
            .await
            .expect("the hook was called")
            .expect("an end")
    }

    #[tokio::test]
    async fn an_http_app_hears_how_each_connection_ended() {
        use tokio::io::AsyncReadExt;

        let clock = Arc::new(TokioClock::new());
        let ca = FakeCa::new(clock.clone(), time::Duration::hours(1));
        let (server_dir, client_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let server =
            Mesh::start_with_clock(static_files_config(&ca, server_dir.path()), clock.clone())
                .await
                .unwrap();
        let client = Mesh::start_with_clock(static_files_config(&ca, client_dir.path()), clock)
            .await
            .unwrap();
        let (ended, mut ends) = tokio::sync::mpsc::unbounded_channel();
        let app = Arc::new(Ends {
            identify: server.identify(),
            ended,
        });
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let tls = Arc::new(server.server_config(wire::tls::ALPN_HTTP1).unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(wire::http::serve(
            tcp,
            tls,
            Limits::default(),
            server.connection_counters(),
            app,
            async {
                let _ = stopped.await;
            },
        ));
        let connector = TlsConnector::from(Arc::new(
            client
                .client_config(
                    Some(pki::SpiffeId::parse(ID).unwrap()),
                    wire::tls::ALPN_HTTP1,
                )
                .unwrap(),
        ));
        let connect = || async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            connector.connect(name, tcp).await.unwrap()
        };

        // The server closes after a response marked CloseConnection: the hook names why.
        let mut tls = connect().await;
        tls.write_all(b"GET /close HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        assert!(
            answer.ends_with(b"ok"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        assert_eq!(next(&mut ends).await, "test_close");

        // The client closes after its answer: no reason.
        let mut tls = connect().await;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        while !got.ends_with(b"ok") {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the answer");
            got.extend_from_slice(&buf[..n]);
        }
        tls.shutdown().await.unwrap();
        drop(tls);
        assert_eq!(next(&mut ends).await, "client");

        let _ = stop.send(());
        serving.await.unwrap();
    }
}
