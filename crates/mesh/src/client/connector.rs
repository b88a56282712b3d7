//! Raw mTLS connections to a mesh service, for protocols other than HTTP (the proxy's outbound
//! routes relay bytes over them): a [`MeshConnector`] opens TCP and completes a TLS 1.3
//! handshake presenting the service's current certificate (each new connection takes the
//! certificate of the moment, so a rotation applies at once), verifies the server's chain,
//! revocation, DNS/IP name and optional SPIFFE ID, and hands out a watch that resolves when the
//! server's certificate expires or is revoked while the connection lives.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use wire::CloseReason;

use crate::clock::Clock;
use crate::error::{ConnectError, ConnectFailure, MeshError, Result};
use crate::mesh::Mesh;
use crate::peer_watch::{close_when_invalid, PeerTrust, WatchedCert};
use crate::tls::describe::io_reason;
use crate::tls::HandshakeSummary;

/// Opens mTLS connections to one kind of server (one expected SPIFFE ID).
#[derive(Clone)]
pub struct MeshConnector {
    connector: TlsConnector,
    judge: PeerTrust,
    clock: Arc<dyn Clock>,
}

/// An open mTLS connection and what its handshake said.
pub struct Upstream {
    /// The TLS stream, handshake done.
    pub stream: TlsStream<TcpStream>,
    /// Version, suite, group and the server's certificate.
    pub summary: HandshakeSummary,
    cert: Option<WatchedCert>,
}

impl MeshConnector {
    /// A connector presenting `mesh`'s certificate; `server_id` requires the server's SPIFFE
    /// ID; `alpn` is offered (`wire::tls::ALPN_NONE` for raw byte streams).
    pub fn new(
        mesh: &Mesh,
        server_id: Option<pki::SpiffeId>,
        alpn: &[&[u8]],
    ) -> Result<MeshConnector> {
        let config = mesh.client_config(server_id, alpn)?;
        Ok(MeshConnector {
            connector: TlsConnector::from(Arc::new(config)),
            judge: mesh.peer_trust(),
            clock: mesh.clock().clone(),
        })
    }

    /// Connects to `addr` (`host:port`), whose certificate must be valid for `name`; each step
    /// (TCP, TLS) must finish within `timeout`. A failure names the step and, for the
    /// handshake, the reason in words (`server certificate revoked`, `server identity
    /// mismatch: ...`).
    pub async fn connect(
        &self,
        addr: &str,
        name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<Upstream> {
        let fail = |failure: ConnectFailure| {
            MeshError::Connect(ConnectError {
                addr: addr.to_string(),
                failure,
            })
        };
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| fail(ConnectFailure::TcpTimeout(timeout)))?
            .map_err(|e| fail(ConnectFailure::Tcp(e)))?;
        let _ = tcp.set_nodelay(true);
        let stream = tokio::time::timeout(timeout, self.connector.connect(name, tcp))
            .await
            .map_err(|_| fail(ConnectFailure::HandshakeTimeout(timeout)))?
            .map_err(|e| {
                fail(ConnectFailure::Handshake {
                    reason: io_reason(&e, false),
                    error: e,
                })
            })?;
        let summary = HandshakeSummary::of(stream.get_ref().1);
        let cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| WatchedCert::from_chain(chain, self.judge.trust.as_deref()));
        Ok(Upstream {
            stream,
            summary,
            cert,
        })
    }

    /// Resolves once the server certificate of `upstream` expires, is revoked, no longer chains
    /// to a trusted root or its key is unpinned (`expired`, `revoked`, `untrusted`,
    /// `unpinned`); the connection must be closed then. Never resolves for a certificate that
    /// could not be read (the handshake verified it, so that does not happen).
    pub fn close_when_invalid(
        &self,
        upstream: &Upstream,
    ) -> impl Future<Output = CloseReason> + Send + 'static {
        let cert = upstream.cert.clone();
        let serial = upstream
            .summary
            .peer
            .as_ref()
            .map(|p| p.serial.clone())
            .unwrap_or_default();
        let (judge, clock) = (self.judge.clone(), self.clock.clone());
        async move {
            let Some(cert) = cert else {
                return std::future::pending().await;
            };
            let reason = close_when_invalid(&cert, judge, &*clock).await;
            CloseReason::new(reason, format!("server certificate {serial} {reason}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pki::crl::{verify_crl, RevokedEntry, RevokedSet};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wire::tls::ALPN_NONE;

    use super::*;
    use crate::clock::TokioClock;
    use crate::testing::{static_files_config, FakeCa, ID};

    #[tokio::test]
    async fn connects_with_our_certificate_and_watches_the_server_certificate() {
        let clock = Arc::new(TokioClock::new());
        let ca = FakeCa::new(clock.clone(), time::Duration::hours(1));
        let (sd, cd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let server = Mesh::start_with_clock(static_files_config(&ca, sd.path()), clock.clone())
            .await
            .unwrap();
        let client = Mesh::start_with_clock(static_files_config(&ca, cd.path()), clock)
            .await
            .unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap().to_string();
        let acceptor =
            tokio_rustls::TlsAcceptor::from(Arc::new(server.server_config(ALPN_NONE).unwrap()));
        let serving = tokio::spawn(async move {
            loop {
                let (s, _) = tcp.accept().await.unwrap();
                let Ok(mut tls) = acceptor.accept(s).await else {
                    continue;
                };
                let who = tls.get_ref().1.peer_certificates().map(|c| c.len());
                let _ = tls.write_all(format!("certs {who:?}\n").as_bytes()).await;
                let _ = tls.shutdown().await;
            }
        });
        let localhost = ServerName::try_from("localhost").unwrap();

        let id = pki::SpiffeId::parse(ID).unwrap();
        let connector = MeshConnector::new(&client, Some(id), ALPN_NONE).unwrap();
        let mut up = connector
            .connect(&addr, localhost.clone(), Duration::from_secs(10))
            .await
            .unwrap();
        let mut text = String::new();
        up.stream.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "certs Some(1)\n");
        assert_eq!(up.summary.version, "TLS 1.3");
        assert_eq!(
            up.summary.peer.as_ref().unwrap().spiffe_id.as_deref(),
            Some(ID)
        );

        // Another expected identity: refused at the handshake, with the reason in words.
        let other = pki::SpiffeId::parse("spiffe://mesh.local/service/other").unwrap();
        let wrong = MeshConnector::new(&client, Some(other), ALPN_NONE).unwrap();
        let Err(err) = wrong
            .connect(&addr, localhost.clone(), Duration::from_secs(10))
            .await
        else {
            panic!("a server with another SPIFFE ID was accepted")
        };
        assert!(
            err.to_string().contains("server identity mismatch"),
            "{err}"
        );

        // The server's certificate is revoked: the watch resolves with the reason.
        let up = connector
            .connect(&addr, localhost, Duration::from_secs(10))
            .await
            .unwrap();
        let watch = connector.close_when_invalid(&up);
        let serial = server.credential().serial().to_string();
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
        let trust = client.trust().unwrap();
        let crl = verify_crl(&der, trust.roots().certs()).unwrap();
        trust.set_revoked(RevokedSet::from_crls(vec![crl]), true);
        let reason = watch.await;
        assert_eq!(reason.code, "revoked");
        assert_eq!(
            reason.detail,
            format!("server certificate {serial} revoked")
        );
        serving.abort();
    }
}
