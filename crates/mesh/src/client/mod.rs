//! The mesh client: one HTTPS connection reused for consecutive requests, replaced as soon as
//! our certificate rotates (so the server never sees an old certificate on a new request) or the
//! server closes it. The server's certificate is watched for as long as the connection lives:
//! no request is sent on a connection whose server certificate has expired or been revoked, and
//! such a connection is closed the moment it happens, idle or not (after a request in flight),
//! so the next request makes a new handshake, which then fails with the reason.

mod connector;

pub use connector::{MeshConnector, Upstream};

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use rustls::ClientConfig;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::credentials::Identity;
use crate::error::{HttpError, Result};
use crate::https::{self, Connection, HttpsUrl, Response};
use crate::mesh::Mesh;
use crate::peer_watch::{close_when_invalid, PeerTrust, WatchedCert};
use crate::tls::HandshakeSummary;

/// The open connection with what decides whether it may carry the next request.
struct Pooled {
    /// Counts connections, so a watcher only ever closes its own.
    id: u64,
    conn: Connection,
    /// Our identity's generation when the connection was opened.
    generation: u64,
    /// The server's certificate; None only if the handshake left none (then never reused).
    server_cert: Option<WatchedCert>,
    server_serial: String,
}

/// The connection slot, shared with the watcher of the connection in it.
type Slot = Arc<Mutex<Option<Pooled>>>;

/// An HTTPS/1.1 client of one mesh service, presenting the service's current certificate.
pub struct MeshClient {
    url: HttpsUrl,
    identity: Arc<Identity>,
    /// What the server certificate is checked against: the revocation state, or the live pins
    /// in pinned mode.
    judge: PeerTrust,
    clock: Arc<dyn Clock>,
    config: Arc<ClientConfig>,
    timeout: Duration,
    slot: Slot,
    watcher: Option<JoinHandle<()>>,
    /// Handshakes done so far.
    pub connections_opened: u64,
}

/// The outcome of one request.
pub struct Exchange {
    /// The response.
    pub response: Response,
    /// Set when this request needed a new connection (first request, rotation, server close,
    /// server certificate expired, revoked or unpinned).
    pub new_connection: Option<HandshakeSummary>,
}

/// Largest response body read.
const MAX_RESPONSE: usize = 1 << 20;

impl Drop for MeshClient {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

impl MeshClient {
    /// A client of `url` with `mesh`'s certificate and trust; `server_id` requires the server's
    /// SPIFFE ID; `timeout` bounds each connection and each response.
    pub fn new(
        url: HttpsUrl,
        mesh: &Mesh,
        server_id: Option<pki::SpiffeId>,
        timeout: Duration,
    ) -> Result<MeshClient> {
        let config = mesh.client_config(server_id, wire::tls::ALPN_HTTP1)?;
        Ok(MeshClient {
            url,
            identity: mesh.identity().clone(),
            judge: mesh.peer_trust(),
            clock: mesh.clock().clone(),
            config: Arc::new(config),
            timeout,
            slot: Arc::new(Mutex::new(None)),
            watcher: None,
            connections_opened: 0,
        })
    }

    /// True when the pooled connection may carry the next request: open, opened with the
    /// certificate we hold now, and the server's certificate neither expired, revoked, untrusted
    /// nor unpinned.
    fn reusable(&self, pooled: &Pooled) -> bool {
        if pooled.conn.is_closed() || pooled.generation != self.identity.generation() {
            return false;
        }
        let Some(cert) = &pooled.server_cert else {
            return false;
        };
        match cert.invalid_at(&self.judge, self.clock.now()) {
            None => true,
            Some(reason) => {
                log_closed(&self.url, &pooled.server_serial, reason);
                false
            }
        }
    }

    /// Opens a new connection into `slot` and starts watching its server certificate.
    async fn open(&mut self, slot: &mut Option<Pooled>) -> Result<HandshakeSummary> {
        *slot = None;
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        let generation = self.identity.generation();
        let mut conn = https::connect(self.config.clone(), &self.url, self.timeout).await?;
        let summary = conn.summary.clone();
        let chain = conn.take_peer_chain();
        self.connections_opened += 1;
        let id = self.connections_opened;
        let peer = summary.peer.as_ref();
        let server_cert =
            peer.and_then(|_| WatchedCert::from_chain(&chain, self.judge.trust.as_deref()));
        let server_serial = peer.map(|p| p.serial.clone()).unwrap_or_default();
        if let Some(cert) = server_cert.clone() {
            self.watcher = Some(tokio::spawn(watch(
                self.slot.clone(),
                id,
                cert,
                (self.judge.clone(), self.clock.clone()),
                self.url.clone(),
            )));
        }
        *slot = Some(Pooled {
            id,
            conn,
            generation,
            server_cert,
            server_serial,
        });
        Ok(summary)
    }

    /// Sends one request. A failure on a reused connection (the server closed it between two
    /// requests) is retried once on a fresh connection; a failure on a fresh one is returned.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Exchange> {
        // Held for the whole request: the watcher closes the connection only between requests.
        let slot = self.slot.clone();
        let mut slot = slot.lock().await;
        let mut new_connection = None;
        if !slot.as_ref().is_some_and(|p| self.reusable(p)) {
            new_connection = Some(self.open(&mut slot).await?);
        }
        let attempt = self
            .send(&mut slot, method.clone(), path, body.clone())
            .await;
        match attempt {
            Ok(response) => Ok(Exchange {
                response,
                new_connection,
            }),
            Err(e) if new_connection.is_some() => {
                *slot = None;
                Err(e)
            }
            Err(first) => {
                tracing::debug!(error = %first, "request on a reused connection failed; retrying on a new one");
                let summary = self.open(&mut slot).await?;
                let response = self
                    .send(&mut slot, method, path, body)
                    .await
                    .inspect_err(|_| *slot = None)?;
                Ok(Exchange {
                    response,
                    new_connection: Some(summary),
                })
            }
        }
    }

    async fn send(
        &self,
        slot: &mut Option<Pooled>,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response> {
        let Some(pooled) = slot.as_mut() else {
            // `request` opens a connection into the slot before sending; this cannot happen.
            return Err(HttpError::Exchange {
                reason: "no connection".into(),
                tls: None,
            }
            .into());
        };
        let timeout = self.timeout;
        match tokio::time::timeout(
            timeout,
            pooled.conn.request(method, path, &[], body, MAX_RESPONSE),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout(timeout).into()),
        }
    }
}

/// Closes connection `id` once its server certificate expires, is revoked or unpinned, as soon
/// as no request is in flight on it.
async fn watch(
    slot: Slot,
    id: u64,
    cert: WatchedCert,
    (judge, clock): (PeerTrust, Arc<dyn Clock>),
    url: HttpsUrl,
) {
    let reason = close_when_invalid(&cert, judge, &*clock).await;
    let mut slot = slot.lock().await;
    if let Some(pooled) = slot.as_ref().filter(|p| p.id == id) {
        log_closed(&url, &pooled.server_serial, reason);
        // Dropping the connection closes the socket.
        *slot = None;
    }
}

fn log_closed(url: &HttpsUrl, serial: &str, reason: &str) {
    tracing::info!(
        event = "connection_closed",
        server = %url,
        serial,
        reason,
        "closing the connection to {url}: server certificate {serial} {reason}"
    );
}
