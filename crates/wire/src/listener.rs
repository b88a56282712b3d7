//! The accept loop every TLS listener shares: wait for a free slot, accept, refuse a source
//! over its limit, handshake within the handshake timeout, ask the product who the peer is,
//! apply the authenticated reserve and the per-identity limit, then hand the connection to a
//! protocol (HTTP today; raw byte copying for a proxy later). On shutdown: stop accepting,
//! let the protocol drain, cut what is left after the drain time.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::admission::{Admission, Refused, Slot};
use crate::counters::Counters;
use crate::drain::{Drain, DrainControl, DrainReport};
use crate::limits::Limits;

/// A boxed future, as the traits of this crate return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Why a TLS handshake did not complete.
#[derive(Debug)]
pub enum HandshakeError {
    /// Not finished within the handshake timeout.
    Timeout(Duration),
    /// rustls or the socket failed; the error carries the rustls error when there is one.
    Failed(std::io::Error),
}

/// What the product learned about a peer from its finished handshake.
pub struct Identified<P> {
    /// The product's view of the peer (for example its verified certificate).
    pub peer: P,
    /// A verified client certificate was presented.
    pub authenticated: bool,
    /// SPIFFE ID, else subject: the per-identity limit's key, and named in logs.
    pub identity: Option<String>,
}

/// A finished handshake the product will not serve at all, already logged by the product.
#[derive(Debug)]
pub struct Rejected {
    /// Counted as `connections_refused_total{reason=code}`.
    pub code: &'static str,
}

/// The product's part of the handshake: who is the peer, and how to report a failure.
pub trait Identify: Send + Sync + 'static {
    /// What the product knows about a peer after its handshake.
    type Peer: Send + Sync + 'static;

    /// Called once per finished handshake.
    fn identify(
        &self,
        addr: SocketAddr,
        tls: &rustls::ServerConnection,
    ) -> Result<Identified<Self::Peer>, Rejected>;

    /// Called for each failed or timed-out handshake (log and count it in the product's
    /// terms). The connection has already been counted as closed by the listener.
    fn handshake_failed(&self, addr: SocketAddr, error: &HandshakeError) {
        match error {
            HandshakeError::Timeout(t) => tracing::info!(
                event = "handshake_failed", peer_addr = %addr, code = "timeout",
                "handshake from {addr} failed: not finished within {t:?}"
            ),
            HandshakeError::Failed(e) => tracing::info!(
                event = "handshake_failed", peer_addr = %addr, reason = %e,
                "handshake from {addr} failed: {e}"
            ),
        }
    }
}

/// A connection past its handshake and the admission checks, handed to a protocol.
pub struct Established<P> {
    /// The TLS stream, handshake done.
    pub stream: TlsStream<TcpStream>,
    /// The peer's address.
    pub addr: SocketAddr,
    /// Who the product said the peer is ([`Identify::identify`]).
    pub peer: Arc<P>,
    /// The peer's identity for limits and logs (SPIFFE ID, else subject).
    pub identity: Option<String>,
    /// Set when the identity holds its limit already: answer once with a refusal, then close.
    pub refused: Option<Refused>,
    /// The listener's shutdown signal.
    pub drain: Drain,
    /// The listener's counters (count closes here with their reason).
    pub counters: Arc<Counters>,
}

impl<P> Established<P> {
    /// "ADDR" or "ADDR (identity)", for log messages.
    pub fn who(&self) -> String {
        who(self.addr, self.identity.as_deref())
    }
}

pub(crate) fn who(addr: SocketAddr, identity: Option<&str>) -> String {
    match identity {
        Some(id) => format!("{addr} ({id})"),
        None => addr.to_string(),
    }
}

/// Serves established connections. Must react to `conn.drain.draining()` by finishing what is
/// in flight and closing; the listener cuts the connection when the drain time is over.
pub trait Protocol<P>: Send + Sync + 'static {
    /// Serves one connection until it ends.
    fn serve(&self, conn: Established<P>) -> BoxFuture<()>;
}

/// Everything one listener needs.
pub struct Listener<I, P> {
    /// The bound socket.
    pub tcp: TcpListener,
    /// The TLS configuration (build it with [`crate::tls::TlsPolicy::server_config`]).
    pub tls: Arc<ServerConfig>,
    /// Limits and timeouts.
    pub limits: Limits,
    /// Where refusals and closes are counted.
    pub counters: Arc<Counters>,
    /// Who peers are.
    pub identify: Arc<I>,
    /// What to do with established connections.
    pub protocol: Arc<P>,
}

pub(crate) struct Shared<I, P> {
    acceptor: TlsAcceptor,
    limits: Limits,
    counters: Arc<Counters>,
    identify: Arc<I>,
    protocol: Arc<P>,
    drain: Drain,
}

/// Serves until `shutdown` resolves, then drains (see `Limits::drain`) and returns how that
/// went. Connections beyond `max_connections` wait in the accept queue; accept errors (out of
/// file descriptors) are logged and retried after a short pause.
pub async fn serve<I, P>(
    listener: Listener<I, P>,
    shutdown: impl Future<Output = ()>,
) -> DrainReport
where
    I: Identify,
    P: Protocol<I::Peer>,
{
    let Listener {
        tcp: socket,
        tls,
        limits,
        counters,
        identify,
        protocol,
    } = listener;
    let (control, drain) = DrainControl::new();
    let shared = Arc::new(Shared {
        acceptor: TlsAcceptor::from(tls),
        limits: limits.clone(),
        counters: counters.clone(),
        identify,
        protocol,
        drain,
    });
    accept_loop(
        socket,
        &limits,
        counters,
        control,
        shutdown,
        |slot, tcp, addr| Box::pin(connection(slot, tcp, addr, shared.clone())),
    )
    .await
}

/// A plain TCP connection admitted by [`serve_plain`]: no TLS on this side (the local
/// applications of a proxy's outbound direction talk plaintext to a loopback listener).
pub struct PlainConnection {
    /// The socket.
    pub stream: TcpStream,
    /// The peer's address.
    pub addr: SocketAddr,
    /// The listener's shutdown signal.
    pub drain: Drain,
    /// The listener's counters (count closes here with their reason).
    pub counters: Arc<Counters>,
}

/// Serves the connections of a plain TCP listener. Like [`Protocol`], it must react to
/// `conn.drain.draining()`; the listener cuts the connection when the drain time is over.
pub trait PlainProtocol: Send + Sync + 'static {
    /// Serves one connection until it ends.
    fn serve(&self, conn: PlainConnection) -> BoxFuture<()>;
}

/// Serves a plain TCP listener with the same accept loop, connection cap, per-source limit,
/// counters and drain as a TLS listener (there is no handshake, identity or reserve: every
/// connection counts as established at accept). Returns after the drain, like [`serve`].
pub async fn serve_plain<P: PlainProtocol>(
    socket: TcpListener,
    limits: Limits,
    counters: Arc<Counters>,
    protocol: Arc<P>,
    shutdown: impl Future<Output = ()>,
) -> DrainReport {
    let (control, drain) = DrainControl::new();
    let shared = counters.clone();
    accept_loop(socket, &limits, counters, control, shutdown, |mut slot, tcp, addr| {
        let _ = tcp.set_nodelay(true);
        // Counted as established (authenticated, no identity): nothing to wait for.
        let _ = slot.establish(true, None);
        let conn = PlainConnection {
            stream: tcp,
            addr,
            drain: drain.clone(),
            counters: shared.clone(),
        };
        let serving = protocol.serve(conn);
        let (drain, counters) = (drain.clone(), shared.clone());
        Box::pin(async move {
            tokio::select! {
                () = serving => {}
                () = drain.cut() => {
                    counters.closed("drain_timeout");
                    tracing::info!(event = "connection_closed", peer_addr = %addr,
                        reason = "drain_timeout",
                        "cutting the connection from {addr}: still busy when the drain time ran out");
                }
            }
            drop(slot);
        })
    })
    .await
}

/// The accept loop every listener shares: wait for a slot, accept, apply the per-source limit,
/// hand the connection to `start`; on shutdown stop accepting and drain.
async fn accept_loop(
    socket: TcpListener,
    limits: &Limits,
    counters: Arc<Counters>,
    control: DrainControl,
    shutdown: impl Future<Output = ()>,
    mut start: impl FnMut(Slot, TcpStream, SocketAddr) -> BoxFuture<()>,
) -> DrainReport {
    let admission = Admission::new(limits, counters.clone());
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            p = admission.room() => p,
        };
        let (tcp, addr) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = socket.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and similar: back off briefly instead of spinning.
                    tracing::warn!(event = "accept_failed", error = %e, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match admission.admit(permit, addr.ip()) {
            Ok(slot) => {
                tasks.spawn(start(slot, tcp, addr));
            }
            Err(refused) => {
                counters.refused(refused.code());
                tracing::info!(
                    event = "connection_refused", peer_addr = %addr, reason = refused.code(),
                    "refusing the connection from {addr}: {refused}"
                );
                drop(tcp);
            }
        }
    }
    // Closing the socket makes the kernel refuse new connections (and reset queued ones).
    drop(socket);
    drain_all(tasks, &control, limits.drain).await
}

async fn drain_all(mut tasks: JoinSet<()>, control: &DrainControl, drain: Duration) -> DrainReport {
    let started = Instant::now();
    let open = tasks.len();
    // Signal first, log second: whoever reads the line may rely on every connection draining.
    control.start();
    tracing::info!(
        event = "drain_started",
        open,
        drain_s = drain.as_secs_f64(),
        "shutting down: no new connections; {open} open, in-flight requests get up to {drain:?}"
    );
    let deadline = started + drain;
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    let cut = tasks.len();
    if cut > 0 {
        control.cut();
        // Each connection drops its socket as soon as it sees the cut.
        while tasks.join_next().await.is_some() {}
    }
    let report = DrainReport {
        open,
        finished: open - cut,
        cut,
        took: started.elapsed(),
    };
    tracing::info!(
        event = "drain_finished",
        open,
        finished = report.finished,
        cut,
        "drain finished in {:?}: {} of {open} connections closed in time, {cut} cut",
        report.took,
        report.finished
    );
    report
}

/// One connection's task. Not an `async fn`: an async fn keeps its arguments and the locals
/// they are moved into side by side for the life of the connection, while an `async move`
/// block uses what it captured in place.
pub(crate) fn connection<I, P>(
    slot: Slot,
    tcp: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared<I, P>>,
) -> impl Future<Output = ()> + Send + 'static
where
    I: Identify,
    P: Protocol<I::Peer>,
{
    // The setup runs boxed: a task keeps the size of its largest state for as long as it
    // lives, and the setup's (the handshake, a whole TLS stream) is over once it is done
    // (docs/performance.md "Memory per idle connection").
    let setup = Box::pin(establish(slot, tcp, addr, shared.clone()));
    async move {
        let Some((serving, slot, who)) = setup.await else {
            return;
        };
        let established = Instant::now();
        tokio::select! {
            () = serving => {}
            () = shared.drain.cut() => {
                shared.counters.closed("drain_timeout");
                tracing::info!(event = "connection_closed", peer_addr = %addr, reason = "drain_timeout",
                    "cutting the connection from {who}: still busy when the drain time ran out");
            }
        }
        // The end of every established connection, whoever closed it: with the handshake line
        // (peer address, certificate NotAfter) it shows how long a connection really lived,
        // which scripts/soak-test.sh checks against the peer's NotAfter. Debug: one line per
        // connection.
        let lived = established.elapsed();
        tracing::debug!(event = "connection_ended", peer_addr = %addr, lived_ms = lived.as_millis() as u64,
            "connection from {who} ended after {lived:?}");
        drop(slot);
    }
}

/// Handshake, identification and the admission checks after the handshake: the protocol
/// serving the connection (with the connection's slot, and "ADDR (identity)" for logs), or
/// `None` when the connection has been closed already. The protocol is started here so that
/// the connection itself (a whole TLS stream) never is part of the caller's future.
async fn establish<I, P>(
    mut slot: Slot,
    tcp: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared<I, P>>,
) -> Option<(BoxFuture<()>, Slot, String)>
where
    I: Identify,
    P: Protocol<I::Peer>,
{
    let _ = tcp.set_nodelay(true);
    let limits = &shared.limits;
    let counters = &shared.counters;
    let handshake = tokio::time::timeout(
        limits.handshake_timeout,
        shared.acceptor.accept(tcp).into_fallible(),
    );
    let result = tokio::select! {
        r = handshake => r,
        () = shared.drain.draining() => {
            counters.closed("drain");
            tracing::debug!(event = "connection_closed", peer_addr = %addr, reason = "drain",
                "closing the connection from {addr}: shutting down during its handshake");
            return None;
        }
    };
    let stream = match result {
        Err(_) => {
            counters.closed("handshake_timeout");
            shared
                .identify
                .handshake_failed(addr, &HandshakeError::Timeout(limits.handshake_timeout));
            return None;
        }
        Ok(Err((e, tcp))) => {
            counters.closed("handshake_failed");
            shared
                .identify
                .handshake_failed(addr, &HandshakeError::Failed(e));
            linger(tcp).await;
            return None;
        }
        Ok(Ok(stream)) => stream,
    };
    let identified = match shared.identify.identify(addr, stream.get_ref().1) {
        Ok(i) => i,
        Err(rejected) => {
            counters.refused(rejected.code);
            // close_notify, then FIN: the peer reads a clean end, never a byte of service.
            close_now(stream).await;
            return None;
        }
    };
    let refused = match slot.establish(identified.authenticated, identified.identity.as_deref()) {
        Ok(()) => None,
        Err(refused @ Refused::Unauthenticated { .. }) => {
            counters.refused(refused.code());
            tracing::info!(
                event = "connection_refused", peer_addr = %addr, reason = refused.code(),
                "refusing the connection from {addr} after its handshake: {refused}"
            );
            close_now(stream).await;
            return None;
        }
        Err(refused) => {
            counters.refused(refused.code());
            tracing::info!(
                event = "connection_refused", peer_addr = %addr,
                identity = identified.identity.as_deref().unwrap_or("-"), reason = refused.code(),
                "refusing the connection from {}: {refused}",
                who(addr, identified.identity.as_deref())
            );
            Some(refused)
        }
    };
    let conn = Established {
        stream,
        addr,
        peer: Arc::new(identified.peer),
        identity: identified.identity,
        refused,
        drain: shared.drain.clone(),
        counters: counters.clone(),
    };
    let who = conn.who();
    Some((shared.protocol.serve(conn), slot, who))
}

/// Sends close_notify (briefly: a peer that does not read must not hold us) and closes.
async fn close_now(mut stream: TlsStream<TcpStream>) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
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
