//! Raw byte streams relayed between two connections (the mTLS proxy's L4 mode): bytes are copied
//! both ways in one task, with backpressure (a direction reads again only once everything it
//! read has been written), half-close (the end of one direction is passed on as a shutdown of
//! the other side's write half: TLS close_notify, TCP FIN, while the other direction goes on),
//! an idle timeout (no byte moved either way), and byte counts readable while the relay runs.
//!
//! Fast by construction: two fixed buffers per relay, allocated once ([`BUFFER_SIZE`], one TLS
//! record each); no allocation, lock or channel per chunk; both directions are polled by the
//! same future on the same streams, so neither stream is split behind a lock.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Bytes read at once per direction: the largest TLS record's plaintext (16 KiB), so one read
/// from a TLS stream takes a whole record and one write to it makes a full record.
pub const BUFFER_SIZE: usize = 16 * 1024;

/// Which end of a relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The connection that was accepted (the peer of the listener).
    Client,
    /// The connection the relay opened towards its destination.
    Upstream,
}

impl Side {
    /// `client` or `upstream`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        }
    }
}

/// How a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both directions reached their end and were passed on: a clean close.
    Finished,
    /// No byte moved either way for the idle time.
    Idle(Duration),
    /// Reading from or writing to `side` failed. A peer that closes TLS without close_notify
    /// shows here as `UnexpectedEof` (a truncation, not a clean end: the other side should be
    /// reset, not closed, so it cannot take a cut stream for a complete one).
    Failed {
        /// The side whose stream failed.
        side: Side,
        /// The error.
        error: io::Error,
    },
}

impl RelayEnd {
    /// A stable code for counters and log fields: `closed`, `idle`, `client_truncated`,
    /// `client_error`, `upstream_truncated`, `upstream_error`.
    pub fn code(&self) -> &'static str {
        match self {
            RelayEnd::Finished => "closed",
            RelayEnd::Idle(_) => "idle",
            RelayEnd::Failed { side, error } => {
                match (side, error.kind() == io::ErrorKind::UnexpectedEof) {
                    (Side::Client, true) => "client_truncated",
                    (Side::Client, false) => "client_error",
                    (Side::Upstream, true) => "upstream_truncated",
                    (Side::Upstream, false) => "upstream_error",
                }
            }
        }
    }

    /// The end in words, for the log message.
    pub fn detail(&self) -> String {
        match self {
            RelayEnd::Finished => "both sides closed".into(),
            RelayEnd::Idle(t) => format!("no byte in either direction for {t:?}"),
            RelayEnd::Failed { side, error } if error.kind() == io::ErrorKind::UnexpectedEof => {
                format!(
                    "the {} closed the connection without a clean end (TLS close_notify or FIN \
                     after the last byte); the other side was reset",
                    side.as_str()
                )
            }
            RelayEnd::Failed { side, error } => format!("{} connection: {error}", side.as_str()),
        }
    }
}

/// Bytes relayed so far, readable while the relay runs (by a log line written when the relay
/// is cut short, for instance). One atomic add per chunk, not per byte.
#[derive(Debug, Default)]
pub struct RelayBytes {
    from_client: AtomicU64,
    to_client: AtomicU64,
}

impl RelayBytes {
    /// Bytes read from the client and written upstream.
    pub fn from_client(&self) -> u64 {
        self.from_client.load(Ordering::Relaxed)
    }

    /// Bytes read from upstream and written to the client.
    pub fn to_client(&self) -> u64 {
        self.to_client.load(Ordering::Relaxed)
    }

    /// Counts `n` bytes from the client (for protocols that move bytes themselves, such as an
    /// HTTP proxy counting body bytes).
    pub fn add_from_client(&self, n: u64) {
        self.from_client.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` bytes to the client.
    pub fn add_to_client(&self, n: u64) {
        self.to_client.fetch_add(n, Ordering::Relaxed);
    }
}

/// One direction: read into the buffer, write it all out, repeat; at the reader's end, flush
/// and shut the writer down.
struct Direction {
    buf: Box<[u8]>,
    pos: usize,
    cap: usize,
    read_done: bool,
    need_flush: bool,
    done: bool,
}

impl Direction {
    fn new() -> Direction {
        Direction {
            buf: vec![0u8; BUFFER_SIZE].into_boxed_slice(),
            pos: 0,
            cap: 0,
            read_done: false,
            need_flush: false,
            done: false,
        }
    }

    /// Moves bytes until the reader has nothing now and the buffer is written, or the
    /// direction ends. `moved` is called with every chunk written.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
        from_client: bool,
        mut moved: impl FnMut(u64),
    ) -> Poll<Result<(), (Side, io::Error)>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        let (rside, wside) = if from_client {
            (Side::Client, Side::Upstream)
        } else {
            (Side::Upstream, Side::Client)
        };
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            if self.pos == self.cap && !self.read_done {
                let mut buf = ReadBuf::new(&mut self.buf);
                match reader.as_mut().poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) => {
                        let n = buf.filled().len();
                        if n == 0 {
                            self.read_done = true;
                        } else {
                            self.pos = 0;
                            self.cap = n;
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err((rside, e))),
                    Poll::Pending => {
                        // Nothing to read now: push out what was written so far, so a small
                        // exchange does not wait in a buffer.
                        if self.need_flush {
                            ready!(writer.as_mut().poll_flush(cx)).map_err(|e| (wside, e))?;
                            self.need_flush = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            while self.pos < self.cap {
                let n = ready!(writer
                    .as_mut()
                    .poll_write(cx, &self.buf[self.pos..self.cap]))
                .map_err(|e| (wside, e))?;
                if n == 0 {
                    return Poll::Ready(Err((
                        wside,
                        io::Error::new(io::ErrorKind::WriteZero, "the connection took no bytes"),
                    )));
                }
                self.pos += n;
                self.need_flush = true;
                moved(n as u64);
            }
            if self.pos == self.cap && self.read_done {
                ready!(writer.as_mut().poll_flush(cx)).map_err(|e| (wside, e))?;
                // Half-close: the other side learns that this direction is over (TLS
                // close_notify, TCP FIN) while the opposite direction goes on.
                ready!(writer.as_mut().poll_shutdown(cx)).map_err(|e| (wside, e))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// The relay between `client` and `upstream` as a future; see [`relay`].
pub struct Relay<'a, C: ?Sized, U: ?Sized> {
    client: &'a mut C,
    upstream: &'a mut U,
    up: Direction,
    down: Direction,
    bytes: &'a RelayBytes,
    idle: Duration,
    last_moved: Instant,
    timer: Pin<Box<Sleep>>,
}

/// Copies bytes between `client` and `upstream` until both directions have ended (each end
/// passed on as a shutdown of the other side's writer), a stream fails, or no byte has moved
/// for `idle`. Counts into `bytes`. The caller closes both streams afterwards; after a
/// [`RelayEnd::Failed`] or [`RelayEnd::Idle`] it should reset rather than close a plain TCP
/// side (`TcpStream::set_zero_linger`), so the application sees the
/// connection was cut.
pub fn relay<'a, C, U>(
    client: &'a mut C,
    upstream: &'a mut U,
    idle: Duration,
    bytes: &'a RelayBytes,
) -> Relay<'a, C, U>
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    U: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let now = Instant::now();
    Relay {
        client,
        upstream,
        up: Direction::new(),
        down: Direction::new(),
        bytes,
        idle,
        last_moved: now,
        timer: Box::pin(tokio::time::sleep_until(now + idle)),
    }
}

impl<C, U> Future for Relay<'_, C, U>
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    U: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    type Output = RelayEnd;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RelayEnd> {
        let this = self.get_mut();
        let mut moved = false;
        let bytes = this.bytes;
        let up = this.up.poll_copy(
            cx,
            Pin::new(&mut *this.client),
            Pin::new(&mut *this.upstream),
            true,
            |n| {
                moved = true;
                bytes.from_client.fetch_add(n, Ordering::Relaxed);
            },
        );
        if let Poll::Ready(Err((side, error))) = up {
            return Poll::Ready(RelayEnd::Failed { side, error });
        }
        let down = this.down.poll_copy(
            cx,
            Pin::new(&mut *this.upstream),
            Pin::new(&mut *this.client),
            false,
            |n| {
                moved = true;
                bytes.to_client.fetch_add(n, Ordering::Relaxed);
            },
        );
        if let Poll::Ready(Err((side, error))) = down {
            return Poll::Ready(RelayEnd::Failed { side, error });
        }
        if up.is_ready() && down.is_ready() {
            return Poll::Ready(RelayEnd::Finished);
        }
        if moved {
            // Reading the clock once per chunk; the timer is moved only when it fires.
            this.last_moved = Instant::now();
        }
        loop {
            ready!(this.timer.as_mut().poll(cx));
            let deadline = this.last_moved + this.idle;
            if Instant::now() >= deadline {
                return Poll::Ready(RelayEnd::Idle(this.idle));
            }
            this.timer.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const IDLE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn bytes_flow_both_ways_and_each_end_is_passed_on() {
        let (mut client, mut client_far) = tokio::io::duplex(4096);
        let (mut upstream, mut upstream_far) = tokio::io::duplex(4096);
        let bytes = RelayBytes::default();
        let task = async { relay(&mut client_far, &mut upstream, IDLE, &bytes).await };
        let peers = async {
            // 1 MiB up through a 4 KiB pipe: backpressure, not buffering.
            let up: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
            let writer = async {
                client.write_all(&up).await.unwrap();
                // Half-close: the upstream sees the end, and can still answer.
                client.shutdown().await.unwrap();
                let mut answer = Vec::new();
                client.read_to_end(&mut answer).await.unwrap();
                answer
            };
            let app = async {
                let mut got = Vec::new();
                upstream_far.read_to_end(&mut got).await.unwrap();
                assert_eq!(got, up);
                upstream_far.write_all(b"received").await.unwrap();
                upstream_far.shutdown().await.unwrap();
            };
            let (answer, ()) = tokio::join!(writer, app);
            assert_eq!(answer, b"received");
        };
        let (end, ()) = tokio::join!(task, peers);
        assert!(matches!(end, RelayEnd::Finished), "{end:?}");
        assert_eq!(end.code(), "closed");
        assert_eq!(bytes.from_client(), 1 << 20);
        assert_eq!(bytes.to_client(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn a_relay_with_no_traffic_ends_after_the_idle_time() {
        let (mut client, mut client_far) = tokio::io::duplex(64);
        let (mut upstream, _upstream_far) = tokio::io::duplex(64);
        let bytes = RelayBytes::default();
        let started = Instant::now();
        let talk = async {
            // Traffic at 50 s keeps it alive; idle counts from the last byte.
            tokio::time::sleep(Duration::from_secs(50)).await;
            client.write_all(b"x").await.unwrap();
        };
        let (end, ()) = tokio::join!(relay(&mut client_far, &mut upstream, IDLE, &bytes), talk);
        assert!(matches!(end, RelayEnd::Idle(_)), "{end:?}");
        assert_eq!(started.elapsed().as_secs(), 110);
        assert_eq!(bytes.from_client(), 1);
    }

    /// A stream whose reads fail as a TLS stream's do when the peer closes without close_notify.
    struct Truncated;

    impl AsyncRead for Truncated {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof")))
        }
    }

    impl AsyncWrite for Truncated {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_truncated_client_is_a_failure_not_an_end() {
        let (mut upstream, _far) = tokio::io::duplex(64);
        let bytes = RelayBytes::default();
        let end = relay(&mut Truncated, &mut upstream, IDLE, &bytes).await;
        assert_eq!(end.code(), "client_truncated");
        assert!(
            end.detail().contains("without a clean end"),
            "{}",
            end.detail()
        );
    }
}
