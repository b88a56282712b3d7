//! HTTP/1.1 and HTTP/2 on top of the listener: one hyper connection per TLS connection
//! (HTTP/2 exactly when ALPN chose `h2`), driven until it ends, is closed for a reason (idle,
//! header timeout, request timeout, refusal, the peer became invalid, shutdown), or fails to
//! close within the grace time and is cut.

mod body;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::time::Instant;

pub use body::{RequestBody, ResponseBody};

use crate::activity::{Activity, CloseReason, Expired, Watched};
use crate::counters::Counters;
use crate::drain::DrainReport;
use crate::limits::Limits;
use crate::listener::{self, BoxFuture, Established, Identify, Listener, Protocol};
use service::Tracked;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
        Box::pin(drive(self.app.clone(), self.limits.clone(), conn))
    }
}

fn builder(limits: &Limits, h2: bool) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper's own header timer also runs while a keep-alive connection waits for its next
    // request (hyper 1.6+), which would make the idle timeout unusable beyond it; the
    // connection's `Activity` runs both timers instead.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2.max_concurrent_streams)
        .max_header_list_size(limits.h2.max_header_list_size)
        .keep_alive_interval(limits.h2.keep_alive_interval)
        .keep_alive_timeout(limits.h2.keep_alive_timeout);
    if h2 {
        b.http2_only()
    } else {
        b.http1_only()
    }
}

fn log_close(addr: SocketAddr, identity: Option<&str>, who: &str, reason: &CloseReason) {
    tracing::info!(
        event = "connection_closed", peer_addr = %addr, identity = identity.unwrap_or("-"),
        reason = reason.code, "closing the connection from {who}: {}", reason.detail
    );
}

async fn drive<A: HttpApp>(app: Arc<A>, limits: Arc<Limits>, conn: Established<A::Peer>) {
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
    let builder = builder(&limits, h2);
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut peer_invalid = app.peer_invalid(&peer);
    let started = Instant::now();
    let mut closing: Option<(Instant, CloseReason)> = None;
    loop {
        let reason = tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(event = "connection_error", peer_addr = %addr, error = %e,
                        "connection from {who} ended with an error: {e}");
                }
                // HTTP/1 closes by itself after a `Connection: close` response, possibly
                // before the request to close was seen here: it still counts as that close.
                if let (None, Some(reason)) = (closing.as_ref(), activity.close_reason()) {
                    counters.closed(reason.code);
                    log_close(addr, identity.as_deref(), &who, &reason);
                    app.connection_ended(&peer, Some(&reason));
                } else {
                    app.connection_ended(&peer, closing.as_ref().map(|(_, r)| r));
                }
                return;
            }
            what = activity.expired(idle, limits.header_timeout, started), if closing.is_none() => {
                match what {
                    Expired::Idle => CloseReason::new("idle", format!("no request for {idle:?}")),
                    Expired::Header => CloseReason::new(
                        "header_timeout",
                        format!("request header not complete within {:?}", limits.header_timeout),
                    ),
                }
            }
            reason = &mut peer_invalid, if closing.is_none() => reason,
            reason = activity.close_requested(), if closing.is_none() => reason,
            () = drain.draining(), if closing.is_none() => {
                CloseReason::new("drain", "shutting down")
            }
            _ = activity.expired(
                    limits.close_grace,
                    limits.close_grace,
                    closing.as_ref().map_or(started, |(at, _)| *at),
                ),
                if closing.is_some() =>
            {
                tracing::info!(
                    event = "connection_cut", peer_addr = %addr,
                    "cutting the connection from {who}: it did not finish closing within {:?}",
                    limits.close_grace
                );
                app.connection_ended(&peer, closing.as_ref().map(|(_, r)| r));
                return;
            }
        };
        counters.closed(reason.code);
        log_close(addr, identity.as_deref(), &who, &reason);
        closing = Some((Instant::now(), reason));
        connection.as_mut().graceful_shutdown();
    }
}
