//! What a connection is doing, for its timers: requests in flight (counted by the protocol, not
//! by frames, so HTTP/2 PING or SETTINGS do not keep a connection alive), when it last became
//! idle, whether a new HTTP/1 request has started to arrive, whether someone asked for the
//! connection to be closed after the response in flight, and whether the connection may be
//! parked (its protocol state dropped while idle, docs/performance.md "Memory per idle
//! connection"): not while a write is stuck in the protocol's buffer, never after a request
//! body was left unread.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Why the server closes a connection: a stable `code` for counters and log fields and a
/// sentence for the log message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    /// Stable code: `connections_closed_total{reason=code}` and the log's `reason` field.
    pub code: &'static str,
    /// The reason in words, for the log message.
    pub detail: String,
}

impl CloseReason {
    /// A reason with its code and its sentence.
    pub fn new(code: &'static str, detail: impl Into<String>) -> CloseReason {
        CloseReason {
            code,
            detail: detail.into(),
        }
    }
}

/// Which timer ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// Nothing in flight and nothing arriving for the idle time.
    Idle,
    /// An HTTP/1 request started to arrive but its header was not complete in time.
    Header,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle { since: Instant },
    Header { since: Instant },
    Busy,
}

struct State {
    in_flight: usize,
    phase: Phase,
    close: Option<CloseReason>,
    /// A request body was left unread: the protocol is not at a message boundary.
    never_park: bool,
}

/// The activity of one connection, shared by its protocol driver, its request wrapper and its
/// I/O wrapper.
pub struct Activity {
    state: Mutex<State>,
    /// The last write to the stream returned `Pending`: the protocol above still buffers bytes.
    /// An atomic, not in `state`: it is updated on every write.
    write_blocked: AtomicBool,
    changed: Notify,
    track_headers: bool,
}

impl Activity {
    /// `track_headers`: bytes arriving while idle start the header timer (HTTP/1). Leave it off
    /// where bytes do not mean a request (HTTP/2 frames, raw streams).
    pub fn new(track_headers: bool) -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(State {
                in_flight: 0,
                phase: Phase::Idle {
                    since: Instant::now(),
                },
                close: None,
                never_park: false,
            }),
            write_blocked: AtomicBool::new(false),
            changed: Notify::new(),
            track_headers,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain values only; a panic elsewhere cannot leave them inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request has started (its header is complete); it is in flight until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        let mut s = self.state();
        s.in_flight += 1;
        let was_busy = s.phase == Phase::Busy;
        s.phase = Phase::Busy;
        drop(s);
        // Waiters only care about phase changes; a second concurrent request is not one.
        if !was_busy {
            self.changed.notify_waiters();
        }
        InFlight {
            activity: self.clone(),
        }
    }

    fn end(&self) {
        let mut s = self.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight > 0 {
            return;
        }
        s.phase = Phase::Idle {
            since: Instant::now(),
        };
        drop(s);
        self.changed.notify_waiters();
    }

    /// Bytes arrived from the peer. On an idle HTTP/1 connection that is the start of the next
    /// request, so the header timer starts.
    pub fn bytes_received(&self) {
        if !self.track_headers {
            return;
        }
        let mut s = self.state();
        if let Phase::Idle { .. } = s.phase {
            s.phase = Phase::Header {
                since: Instant::now(),
            };
            drop(s);
            self.changed.notify_waiters();
        }
    }

    /// A request body was left unread (the protocol drains or drops the rest): the connection
    /// is no longer at a message boundary and must never be parked.
    pub fn never_park(&self) {
        self.state().never_park = true;
    }

    /// True while the connection may be parked: nothing in flight, no request arriving, no
    /// write stuck in the protocol's buffer, no request body left unread.
    pub fn parkable(&self) -> bool {
        let s = self.state();
        matches!(s.phase, Phase::Idle { .. })
            && !s.never_park
            && !self.write_blocked.load(Ordering::Acquire)
    }

    fn write_blocked(&self, blocked: bool) {
        let was = self.write_blocked.swap(blocked, Ordering::AcqRel);
        // Only the end of a blocked write is news (a parking wait may be waiting for it); the
        // start of one is seen by `parkable_after` when it looks.
        if was && !blocked {
            self.changed.notify_waiters();
        }
    }

    /// Resolves once the connection has been idle (nothing in flight, nothing arriving) for
    /// `quiet` and may be parked; pending as long as it may not (see `parkable`).
    pub async fn parkable_after(&self, quiet: Duration) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let deadline = {
                let s = self.state();
                match s.phase {
                    Phase::Idle { since }
                        if !s.never_park && !self.write_blocked.load(Ordering::Acquire) =>
                    {
                        Some(since + quiet)
                    }
                    _ => None,
                }
            };
            match deadline {
                None => notified.await,
                Some(at) => {
                    tokio::select! {
                        biased;
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => return,
                    }
                }
            }
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.state().in_flight
    }

    /// Asks the connection's driver to close the connection gracefully (the first reason wins).
    pub fn request_close(&self, reason: CloseReason) {
        let mut s = self.state();
        if s.close.is_none() {
            s.close = Some(reason);
            drop(s);
            self.changed.notify_waiters();
        }
    }

    /// True once someone asked for the connection to be closed.
    pub fn close_is_requested(&self) -> bool {
        self.state().close.is_some()
    }

    /// The reason given to `request_close`, if any.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state().close.clone()
    }

    /// Resolves with the reason once `request_close` has been called.
    pub async fn close_requested(&self) -> CloseReason {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(reason) = self.state().close.clone() {
                return reason;
            }
            notified.await;
        }
    }

    /// A wait for the next change of this activity (a request begins or ends, bytes arrive,
    /// a close is requested, a blocked write ends). Enable it before reading the state, so a
    /// change in between is not missed.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// When the idle or header timer of the current phase runs out, and which: `None` while a
    /// request is in flight. Timers count from no earlier than `not_before`.
    pub(crate) fn deadline(
        &self,
        idle: Duration,
        header: Duration,
        not_before: Instant,
    ) -> Option<(Instant, Expired)> {
        match self.state().phase {
            Phase::Busy => None,
            Phase::Idle { since } => Some((since.max(not_before) + idle, Expired::Idle)),
            Phase::Header { since } => Some((since.max(not_before) + header, Expired::Header)),
        }
    }

    /// Resolves when the connection has had nothing in flight for `idle` (counted from no
    /// earlier than `not_before`), or, with header tracking, when a request started arriving
    /// and its header took longer than `header`. Pending while a request is in flight.
    pub async fn expired(&self, idle: Duration, header: Duration, not_before: Instant) -> Expired {
        loop {
            let notified = self.changed();
            tokio::pin!(notified);
            // Registered before the state is read, so a change in between is not missed.
            notified.as_mut().enable();
            match self.deadline(idle, header, not_before) {
                None => notified.await,
                Some((at, what)) => {
                    tokio::select! {
                        // A change wins over a deadline reached at the same moment: recompute.
                        biased;
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => return what,
                    }
                }
            }
        }
    }
}

/// A request in flight; dropping it (when the response has been sent or abandoned) ends it.
pub struct InFlight {
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.end();
    }
}

/// An I/O stream that tells its connection's `Activity` when bytes arrive and whether a write
/// is blocked.
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    /// Wraps `inner`, reporting bytes read to `activity`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Watched<T> {
        Watched { inner, activity }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    fn record_write<R>(&self, result: Poll<R>) -> Poll<R> {
        self.activity.write_blocked(result.is_pending());
        result
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            if buf.filled().len() > before {
                self.activity.bytes_received();
            }
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.record_write(result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.record_write(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;
    use tokio::io::AsyncWriteExt;

    const IDLE: Duration = Duration::from_secs(60);
    const HEADER: Duration = Duration::from_secs(30);

    /// Runs `expired` and reports when (seconds after the start) and why it resolved.
    async fn expiry(a: &Arc<Activity>, start: Instant) -> (u64, Expired) {
        let what = a.expired(IDLE, HEADER, start).await;
        ((Instant::now() - start).as_secs(), what)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_after_the_idle_time() {
        let start = Instant::now();
        let a = Activity::new(true);
        assert_eq!(expiry(&a, start).await, (60, Expired::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_holds_the_connection_and_idle_restarts_after_it() {
        let start = Instant::now();
        let a = Activity::new(false);
        let guard = a.begin();
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { expiry(&a, start).await })
        };
        // Ten minutes of a slow request: no idle expiry while it is in flight.
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!waiter.is_finished());
        drop(guard);
        assert_eq!(waiter.await.unwrap(), (660, Expired::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn two_requests_in_flight_end_idle_only_when_both_end() {
        let start = Instant::now();
        let a = Activity::new(false);
        let g1 = a.begin();
        let g2 = a.begin();
        assert_eq!(a.in_flight(), 2);
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { expiry(&a, start).await })
        };
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(g1);
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!waiter.is_finished(), "one request is still in flight");
        drop(g2);
        assert_eq!(waiter.await.unwrap(), (170, Expired::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_on_an_idle_http1_connection_start_the_header_timer() {
        let start = Instant::now();
        let a = Activity::new(true);
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { expiry(&a, start).await })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        a.bytes_received(); // "GET / HTTP/1.1\r\n" and then nothing
        tokio::time::sleep(Duration::from_secs(1)).await;
        a.bytes_received(); // more bytes do not restart the timer
        assert_eq!(waiter.await.unwrap(), (35, Expired::Header));
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_without_header_tracking_do_not_count_as_activity() {
        // HTTP/2: PING and SETTINGS frames arrive as bytes; they must not keep the connection.
        let start = Instant::now();
        let a = Activity::new(false);
        let pinger = {
            let a = a.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    a.bytes_received();
                }
            })
        };
        assert_eq!(expiry(&a, start).await, (60, Expired::Idle));
        pinger.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_while_a_request_is_in_flight_do_not_start_the_header_timer() {
        let start = Instant::now();
        let a = Activity::new(true);
        let guard = a.begin();
        a.bytes_received(); // the request's body
        tokio::time::sleep(Duration::from_secs(40)).await;
        drop(guard);
        assert_eq!(expiry(&a, start).await, (100, Expired::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn not_before_delays_the_deadline() {
        // A connection idle for 100 s whose close began now gets the full grace from now.
        let a = Activity::new(false);
        tokio::time::sleep(Duration::from_secs(100)).await;
        let now = Instant::now();
        a.expired(Duration::from_secs(5), Duration::from_secs(5), now)
            .await;
        assert_eq!((Instant::now() - now).as_secs(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_close_request_wins() {
        let a = Activity::new(false);
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.close_requested().await })
        };
        tokio::task::yield_now().await;
        a.request_close(CloseReason::new("forbidden", "not allowed"));
        a.request_close(CloseReason::new("request_timeout", "slow"));
        assert_eq!(waiter.await.unwrap().code, "forbidden");
        assert!(a.close_is_requested());
    }

    /// Runs `parkable_after(quiet)` and reports when (seconds after `start`) it resolved.
    async fn parkable_at(a: &Arc<Activity>, quiet: Duration, start: Instant) -> u64 {
        a.parkable_after(quiet).await;
        (Instant::now() - start).as_secs()
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_parkable_after_the_quiet_time() {
        let start = Instant::now();
        let a = Activity::new(true);
        assert_eq!(parkable_at(&a, Duration::from_secs(2), start).await, 2);
        assert!(a.parkable());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_or_arriving_is_not_parkable() {
        let start = Instant::now();
        let a = Activity::new(true);
        let guard = a.begin();
        assert!(!a.parkable());
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { parkable_at(&a, Duration::from_secs(2), start).await })
        };
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!waiter.is_finished(), "a request is in flight");
        drop(guard);
        assert_eq!(waiter.await.unwrap(), 12);

        // The first bytes of the next request: not parkable until it has been answered.
        a.bytes_received();
        assert!(!a.parkable());
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { parkable_at(&a, Duration::from_secs(2), start).await })
        };
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!waiter.is_finished(), "a request header is arriving");
        drop(a.begin());
        assert_eq!(waiter.await.unwrap(), 24);
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocked_write_holds_parking_until_a_write_completes() {
        let start = Instant::now();
        let a = Activity::new(true);
        a.write_blocked(true);
        assert!(!a.parkable());
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { parkable_at(&a, Duration::from_secs(2), start).await })
        };
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!waiter.is_finished(), "the protocol still buffers a write");
        a.write_blocked(false);
        // Idle since the start: parkable at once.
        assert_eq!(waiter.await.unwrap(), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_left_a_body_unread_is_never_parkable() {
        let a = Activity::new(true);
        a.never_park();
        assert!(!a.parkable());
        let parked = tokio::time::timeout(
            Duration::from_secs(3600),
            a.parkable_after(Duration::from_secs(1)),
        )
        .await;
        assert!(parked.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_io_wrapper_reports_blocked_writes() {
        let (mut peer, stream) = tokio::io::duplex(8);
        let a = Activity::new(true);
        let mut watched = Watched::new(stream, a.clone());
        // More than the pipe holds: the write blocks until the peer reads.
        let write = {
            let a = a.clone();
            tokio::spawn(async move {
                watched.write_all(&[7u8; 32]).await.unwrap();
                assert!(a.parkable(), "the last write completed");
                watched
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!a.parkable(), "a write is blocked");
        let mut buf = [0u8; 32];
        tokio::io::AsyncReadExt::read_exact(&mut peer, &mut buf)
            .await
            .unwrap();
        write.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_io_wrapper_reports_reads_but_not_writes() {
        let start = Instant::now();
        let (client, server) = tokio::io::duplex(64);
        let a = Activity::new(true);
        let mut watched = Watched::new(server, a.clone());
        let (mut client_r, mut client_w) = tokio::io::split(client);
        watched.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        tokio::io::AsyncReadExt::read(&mut client_r, &mut buf)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        client_w.write_all(b"GET").await.unwrap();
        tokio::io::AsyncReadExt::read(&mut watched, &mut buf)
            .await
            .unwrap();
        assert_eq!(expiry(&a, start).await, (40, Expired::Header));
    }
}
