//! HTTP/1.1 and HTTP/2 on top of the listener: a hyper connection on each TLS connection
//! (HTTP/2 exactly when ALPN chose `h2`), driven until it ends, is closed for a reason (idle,
//! header timeout, request timeout, refusal, the peer became invalid, shutdown), or fails to
//! close within the grace time and is cut. An idle HTTP/1.1 connection is parked: its hyper
//! connection is dropped between requests and a new one takes over at the next request
//! (`http1.rs`), so idle connections hold no HTTP buffers.

mod body;
mod http1;
mod rewind;
mod service;
#[cfg(test)]
mod sizes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

pub use body::{RequestBody, ResponseBody};

use crate::activity::{Activity, CloseReason, Expired, Watched};
use crate::counters::Counters;
use crate::drain::{Drain, DrainReport};
use crate::limits::Limits;
use crate::listener::{self, BoxFuture, Established, Identify, Listener, Protocol};
use service::Tracked;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The stream under every HTTP connection.
type Stream = Watched<TlsStream<TcpStream>>;

/// Put into a response's extensions to close the connection once that response has been
/// sent (HTTP/1: `Connection: close`; HTTP/2: GOAWAY, other streams finish first).
#[derive(Clone, Debug)]
pub struct CloseConnection(pub CloseReason);

impl CloseConnection {
    /// Marks `response` so that its connection closes after it, for `code` (counted in
    /// `connections_closed_total{reason=code}`) and `detail` (logged).
    pub fn mark<B>(response: &mut Response<B>, code: &'static str, detail: impl Into<String>) {
        response
            .extensions_mut()
            .insert(CloseConnection(CloseReason::new(code, detail)));
    }
}

/// An HTTP application served by the wire layer.
pub trait HttpApp: Identify {
    /// The response body type.
    type Body: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static;

    /// Handles one request from `peer` (who the handshake said it is).
    fn call(
        &self,
        peer: &Arc<Self::Peer>,
        req: Request<RequestBody>,
    ) -> BoxFuture<Response<Self::Body>>;

    /// Resolves when the connection of `peer` must be closed although it is in good order
    /// (its certificate expired or was revoked). The request in flight finishes first.
    fn peer_invalid(&self, _peer: &Arc<Self::Peer>) -> BoxFuture<CloseReason> {
        Box::pin(std::future::pending())
    }

    /// Called once when the connection of `peer` has ended: `reason` is why the server closed
    /// it, None when the client closed it (or it failed). A connection cut at the end of the
    /// drain time ends without this call. For a per-connection record (a proxy's log line).
    fn connection_ended(&self, _peer: &Arc<Self::Peer>, _reason: Option<&CloseReason>) {}
}

/// Serves `app` on `tcp` until `shutdown` resolves, then drains.
pub async fn serve<A: HttpApp>(
    tcp: TcpListener,
    tls: Arc<ServerConfig>,
    limits: Limits,
    counters: Arc<Counters>,
    app: Arc<A>,
    shutdown: impl std::future::Future<Output = ()>,
) -> DrainReport {
    let protocol = Arc::new(Http {
        app: app.clone(),
        limits: Arc::new(limits.clone()),
    });
    let listener = Listener {
        tcp,
        tls,
        limits,
        counters,
        identify: app,
        protocol,
    };
    listener::serve(listener, shutdown).await
}

/// The HTTP protocol for the listener.
pub struct Http<A> {
    /// The application.
    pub app: Arc<A>,
    /// The limits its connections run under.
    pub limits: Arc<Limits>,
}

impl<A: HttpApp> Protocol<A::Peer> for Http<A> {
    fn serve(&self, conn: Established<A::Peer>) -> BoxFuture<()> {
        start(self.app.clone(), self.limits.clone(), conn)
    }
}

/// The HTTP/2 connection builder (HTTP/1 connections are built by `http1::serve`).
fn h2_builder(limits: &Limits) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2.max_concurrent_streams)
        .max_header_list_size(limits.h2.max_header_list_size)
        .keep_alive_interval(limits.h2.keep_alive_interval)
        .keep_alive_timeout(limits.h2.keep_alive_timeout);
    b
}

fn log_close(addr: SocketAddr, identity: Option<&str>, who: &str, reason: &CloseReason) {
    tracing::info!(
        event = "connection_closed", peer_addr = %addr, identity = identity.unwrap_or("-"),
        reason = reason.code, "closing the connection from {who}: {}", reason.detail
    );
}

/// What a connection's driver watches besides its protocol: the timers, the peer's validity,
/// close requests and the drain, and where it reports a close.
struct Watch {
    addr: SocketAddr,
    identity: Option<String>,
    who: Arc<str>,
    counters: Arc<Counters>,
    drain: Drain,
    activity: Arc<Activity>,
    limits: Arc<Limits>,
    /// The idle timeout of this connection (shorter for a refused one).
    idle: Duration,
    started: Instant,
    peer_invalid: BoxFuture<CloseReason>,
    /// Why the server is closing the connection, once it is.
    closed: Option<CloseReason>,
    /// `HttpApp::connection_ended` for this connection, called once by `finish`.
    on_end: Option<OnEnd>,
}

type OnEnd = Box<dyn FnOnce(Option<&CloseReason>) + Send>;

impl Watch {
    /// Resolves with the reason to close a connection that is in good order: idle or header
    /// timeout, the peer's certificate became invalid, a handler asked, or shutdown.
    ///
    /// One wait on the activity serves both its timers and close requests: this future lives
    /// in every idle connection, so it is kept small (docs/performance.md "Memory per idle
    /// connection").
    async fn close_reason(&mut self) -> CloseReason {
        loop {
            let activity_changed = self.activity.changed();
            let drain_changed = self.drain.changed();
            tokio::pin!(activity_changed, drain_changed);
            // Registered before the state is read, so a change in between is not missed.
            activity_changed.as_mut().enable();
            drain_changed.as_mut().enable();
            if self.drain.is_draining() {
                return CloseReason::new("drain", "shutting down");
            }
            if let Some(reason) = self.activity.close_reason() {
                return reason;
            }
            let deadline =
                self.activity
                    .deadline(self.idle, self.limits.header_timeout, self.started);
            let expired = async {
                match deadline {
                    Some((at, what)) => {
                        tokio::time::sleep_until(at).await;
                        what
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // A change wins over a deadline reached at the same moment: look again.
                biased;
                () = &mut activity_changed => {}
                () = &mut drain_changed => {}
                what = expired => return self.expired(what),
                reason = &mut self.peer_invalid => return reason,
            }
        }
    }

    fn expired(&self, what: Expired) -> CloseReason {
        match what {
            Expired::Idle => CloseReason::new("idle", format!("no request for {:?}", self.idle)),
            Expired::Header => CloseReason::new(
                "header_timeout",
                format!(
                    "request header not complete within {:?}",
                    self.limits.header_timeout
                ),
            ),
        }
    }

    /// The server closes the connection for `reason`: counted, logged and kept for `finish`.
    fn closing(&mut self, reason: CloseReason) {
        self.counters.closed(reason.code);
        log_close(self.addr, self.identity.as_deref(), &self.who, &reason);
        self.closed = Some(reason);
    }

    /// The protocol ended by itself. HTTP/1 closes after a `Connection: close` response,
    /// possibly before the request to close was seen by the driver: it still counts as that
    /// close.
    fn ended<E: std::fmt::Display>(&mut self, result: Result<(), E>) {
        if let Err(e) = result {
            tracing::debug!(event = "connection_error", peer_addr = %self.addr, error = %e,
                "connection from {} ended with an error: {e}", self.who);
        }
        if self.closed.is_none() {
            if let Some(reason) = self.activity.close_reason() {
                self.closing(reason);
            }
        }
        self.finish();
    }

    /// The connection is over: tells the application, once, why (`None`: the client closed
    /// it, or it failed).
    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.closed.as_ref());
        }
    }

    /// Resolves when a close that began at `closing` has had `close_grace` with nothing in
    /// flight, and logs the cut.
    async fn grace_over(
        activity: &Activity,
        limits: &Limits,
        closing: Instant,
        addr: SocketAddr,
        who: &str,
    ) {
        activity
            .expired(limits.close_grace, limits.close_grace, closing)
            .await;
        tracing::info!(
            event = "connection_cut", peer_addr = %addr,
            "cutting the connection from {who}: it did not finish closing within {:?}",
            limits.close_grace
        );
    }
}

/// Sets a connection up and returns its driver. Not itself `async`: the driver future is what
/// lives as long as the connection, and its size is paid per connection, so nothing of the
/// setup should be part of it (docs/performance.md "Memory per idle connection").
fn start<A: HttpApp>(
    app: Arc<A>,
    limits: Arc<Limits>,
    conn: Established<A::Peer>,
) -> BoxFuture<()> {
    let who: Arc<str> = conn.who().into();
    let Established {
        stream,
        addr,
        peer,
        identity,
        refused,
        drain,
        counters,
    } = conn;
    // Over TLS, HTTP/2 is only spoken after ALPN chose it (RFC 9113 §3.2).
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let activity = Activity::new(!h2);
    // A refused connection gets its one answer only if it asks at once (a client sends its
    // request right after the handshake); otherwise it would hold a slot it was refused.
    let idle = if refused.is_some() {
        limits.idle_timeout.min(limits.close_grace)
    } else {
        limits.idle_timeout
    };
    let service = Tracked {
        app: app.clone(),
        peer: peer.clone(),
        activity: activity.clone(),
        refused,
        request_timeout: limits.request_timeout,
        h2,
        drain: drain.clone(),
        addr,
        identity: identity.as_deref().map(Arc::from),
        who: who.clone(),
    };
    let watch = Watch {
        addr,
        identity,
        who,
        counters,
        drain,
        activity: activity.clone(),
        peer_invalid: app.peer_invalid(&peer),
        limits,
        idle,
        started: Instant::now(),
        closed: None,
        on_end: Some(Box::new(move |reason| app.connection_ended(&peer, reason))),
    };
    // Boxed once: the stream is moved between hyper connections and the parked state of an
    // HTTP/1 connection, which then moves a pointer rather than a TLS connection.
    let io = Box::new(Watched::new(stream, activity));
    if h2 {
        Box::pin(drive_h2(watch, io, service))
    } else {
        Box::pin(http1::serve(watch, io, service))
    }
}

async fn drive_h2<A: HttpApp>(mut watch: Watch, io: Box<Stream>, service: Tracked<A>) {
    let connection = h2_builder(&watch.limits).serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    // Copies, so the timers below do not borrow `watch` while `close_reason` polls it.
    let (activity, limits) = (watch.activity.clone(), watch.limits.clone());
    let (addr, who, started) = (watch.addr, watch.who.clone(), watch.started);
    let mut closing: Option<Instant> = None;
    loop {
        let reason = tokio::select! {
            result = connection.as_mut() => return watch.ended(result),
            reason = watch.close_reason(), if closing.is_none() => reason,
            () = Watch::grace_over(
                &activity, &limits, closing.unwrap_or(started), addr, &who,
            ), if closing.is_some() => return watch.finish(),
        };
        watch.closing(reason);
        closing = Some(Instant::now());
        connection.as_mut().graceful_shutdown();
    }
}
