//! HTTP/1.1 connections, parked while idle.
//!
//! A hyper HTTP/1 connection holds its buffers and parser state for as long as it lives (an
//! 8 KiB read buffer it reserves before every read, a second one while a request's header bytes
//! are still referenced, its write buffer, a cached header map), idle or not. Between two requests an HTTP/1 connection has no protocol state worth
//! keeping, so once it has been idle for `PARK_AFTER` (nothing in flight, no byte of a next
//! request, no write stuck in hyper's buffer, no request body left unread) the driver asks
//! hyper to stop at that message boundary, takes the TLS stream back (`into_parts`) and drops
//! the rest. Parked, the connection is the TLS stream and the timers only; the first byte of
//! the next request wakes it and a new hyper connection reads that byte (and anything hyper
//! had read ahead) first. Idle and header timeouts, the peer watch, close requests and the
//! drain apply while parked exactly as while active. Measurements: docs/performance.md
//! "Memory per idle connection".

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::rewind::Rewind;
use super::service::Tracked;
use super::{HttpApp, Stream, Watch};
use crate::activity::CloseReason;

/// How long an HTTP/1 connection stays idle before it is parked. Not zero: a keep-alive
/// client sending its next request right away keeps its parser instead of paying for a new
/// one per request.
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(100);

type Connection<A> = http1::Connection<TokioIo<Rewind<Box<Stream>>>, Tracked<A>>;
type Parts<A> = http1::Parts<TokioIo<Rewind<Box<Stream>>>, Tracked<A>>;

fn builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    // hyper's own header timer also runs while a keep-alive connection waits for its next
    // request (hyper 1.6+), which would make the idle timeout unusable beyond it; the
    // connection's `Activity` runs both timers instead.
    b.timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    b
}

/// Serves one HTTP/1.1 connection until it ends, parking it whenever it is idle.
///
/// The returned future lives as long as the connection and is as large as its largest state,
/// so what it holds across its two waits is kept to the stream, the service, the bytes read
/// ahead and the parked wait: hyper's connection and the active wait are boxed apart, the
/// builder is made anew for each hyper connection, and hyper's parts are taken apart in a
/// plain function. Not an `async fn`: an async fn keeps its arguments and the locals they are
/// moved into side by side, while an `async move` block uses what it captured in place.
#[allow(clippy::manual_async_fn)] // on purpose, as said above
pub(super) fn serve<A: HttpApp>(
    mut watch: Watch,
    mut io: Box<Stream>,
    mut service: Tracked<A>,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let mut prefix = Bytes::new();
        loop {
            // Boxed: the connection (buffers and parser state, a few KiB) is freed when it is
            // parked, and the future of this loop stays small while it is.
            let connection = Box::new(
                builder().serve_connection(TokioIo::new(Rewind::new(prefix, io)), service),
            );
            // Boxed too: a parked connection's future then holds the parked wait only, not the
            // larger state of the active one.
            (service, io, prefix) = match Box::pin(active(&mut watch, connection)).await {
                Some(parts) => take_apart(parts),
                None => return,
            };
            if prefix.is_empty() {
                tracing::trace!(event = "connection_parked", peer_addr = %watch.addr,
                    "parked the idle connection from {}", watch.who);
                prefix = match parked(&mut watch, &mut io).await {
                    Some(first) => first,
                    None => return,
                };
            }
        }
    }
}

/// Takes a stopped hyper connection apart so that nothing of hyper's lives on: the service,
/// the stream, and what must be read before the stream (what hyper had read but not parsed,
/// then what it had not read yet). Copied: even an empty `read_buf` keeps hyper's whole read
/// buffer allocated.
fn take_apart<A: HttpApp>(parts: Parts<A>) -> (Tracked<A>, Box<Stream>, Bytes) {
    let http1::Parts {
        io: rewound,
        read_buf,
        service,
        ..
    } = parts;
    let (unread, stream) = rewound.into_inner().into_parts();
    let prefix = if read_buf.is_empty() {
        unread
    } else {
        [read_buf, unread].concat().into()
    };
    (service, stream, prefix)
}

/// Drives hyper until the connection ends (`None`) or has been parked (its parts).
async fn active<A: HttpApp>(
    watch: &mut Watch,
    mut connection: Box<Connection<A>>,
) -> Option<Parts<A>> {
    // Copies, so the timers below do not borrow `watch` while `close_reason` polls it.
    let (activity, limits) = (watch.activity.clone(), watch.limits.clone());
    let (addr, who, started) = (watch.addr, watch.who.clone(), watch.started);
    let mut closing: Option<Instant> = None;
    loop {
        let reason = tokio::select! {
            result = connection.as_mut() => {
                watch.ended(result);
                return None;
            }
            reason = watch.close_reason(), if closing.is_none() => reason,
            () = Watch::grace_over(
                &activity, &limits, closing.unwrap_or(started), addr, &who,
            ), if closing.is_some() => {
                watch.finish();
                return None;
            }
            () = activity.parkable_after(PARK_AFTER), if closing.is_none() => {
                // Idle at a message boundary: hyper closes its side of the exchange at once
                // and, asked without shutdown, hands the stream back untouched.
                Pin::new(connection.as_mut()).graceful_shutdown();
                match poll_fn(|cx| Poll::Ready(connection.poll_without_shutdown(cx))).await {
                    Poll::Ready(Ok(())) => return Some(connection.into_parts()),
                    Poll::Ready(Err(e)) => {
                        watch.ended(Err(e));
                        return None;
                    }
                    // hyper was in the middle of an exchange after all (a request body the
                    // handler still holds): keep-alive is off now, so the connection closes
                    // after that exchange, counted as idle.
                    Poll::Pending => CloseReason::new(
                        "idle",
                        "idle with a request body still open; closing after it",
                    ),
                }
            }
        };
        watch.closing(reason);
        closing = Some(Instant::now());
        Pin::new(connection.as_mut()).graceful_shutdown();
    }
}

/// Waits, holding no HTTP state, for the first byte of the peer's next request. `None` when
/// the connection ended instead: closed for a reason (timeouts, peer watch, drain), closed by
/// the peer, or failed.
async fn parked(watch: &mut Watch, io: &mut Stream) -> Option<Bytes> {
    let mut first = [0u8; 1];
    let read = tokio::select! {
        // Flush first: the last response may still sit in the TLS layer.
        read = async {
            io.flush().await?;
            io.read(&mut first).await
        } => read,
        reason = watch.close_reason() => {
            watch.closing(reason);
            // Nothing is in flight: the close is only ours to send (as hyper does for an idle
            // connection), bounded like every close.
            let _ = tokio::time::timeout(watch.limits.close_grace, io.shutdown()).await;
            watch.finish();
            return None;
        }
    };
    match read {
        Ok(0) => {
            // The peer closed: answer its close_notify, as hyper does at the end of a stream.
            let _ = tokio::time::timeout(watch.limits.close_grace, io.shutdown()).await;
            watch.finish();
            None
        }
        Ok(_) => Some(Bytes::copy_from_slice(&first)),
        Err(e) => {
            watch.ended(Err(e));
            None
        }
    }
}
