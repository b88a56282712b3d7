//! How a proxied connection is relayed and ended, inbound (TLS caller, plaintext application)
//! and outbound (plaintext local app, TLS upstream) alike: bytes are copied both ways until
//! both sides have ended, one fails, nothing moves for the idle time, or the TLS peer's
//! certificate expires or is revoked (or, inbound, the reloaded policy refuses the caller).
//!
//! A connection cut before both sides ended never looks finished to either side, so no
//! application takes a cut stream for a whole one: the plaintext side is reset (RST, not FIN)
//! and the TLS side is closed without close_notify (its peer reads a truncation; a proxy there,
//! ours included, resets its own application in turn). Only an idle connection, with nothing
//! in flight, gets close_notify. Every end is counted and recorded.
//!
//! The listener cuts a connection still open at the end of the drain time by dropping its
//! task: the plaintext side is then reset by [`Plain`]'s drop, the TLS side ends without
//! close_notify, and the [`Record`] logs `drain_timeout`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wire::relay::{relay, RelayEnd};
use wire::{CloseReason, Counters};

use crate::record::Record;

/// Which end of the relay is the one that opened the connection (its bytes count as "from
/// the client").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The TLS peer called (inbound).
    Tls,
    /// The plaintext local application called (outbound).
    Plain,
}

/// The TLS and the plaintext side of one proxied connection.
pub(crate) struct Pair<'a, S> {
    /// The mTLS stream.
    pub tls: &'a mut S,
    /// The plaintext TCP connection.
    pub plain: Plain,
    /// Which of the two called.
    pub caller: Caller,
}

/// The plaintext side of a proxied connection: reset (RST, not FIN) when dropped before its
/// relay finished cleanly, however that happens, including the listener dropping the whole
/// connection at the end of the drain time. A FIN would tell the application (or the local
/// client, outbound) that the stream ended where it was cut.
pub(crate) struct Plain {
    tcp: TcpStream,
    finished: bool,
}

impl Plain {
    pub(crate) fn new(tcp: TcpStream) -> Plain {
        Plain {
            tcp,
            finished: false,
        }
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        if !self.finished {
            reset(&self.tcp);
        }
    }
}

/// Relays `pair` until it ends or `invalid` resolves, then closes both sides as the module
/// says, counts the close in `counters` and ends `record`.
pub(crate) async fn splice<S>(
    pair: Pair<'_, S>,
    idle: Duration,
    invalid: impl Future<Output = CloseReason>,
    record: &Record,
    counters: &Counters,
    addr: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Pair {
        tls,
        mut plain,
        caller,
    } = pair;
    let relayed = async {
        let tcp = &mut plain.tcp;
        match caller {
            Caller::Tls => relay(&mut *tls, tcp, idle, &record.bytes).await,
            Caller::Plain => relay(tcp, &mut *tls, idle, &record.bytes).await,
        }
    };
    let end = tokio::select! {
        end = relayed => Ok(end),
        reason = invalid => Err(reason),
    };
    match end {
        Ok(RelayEnd::Finished) => {
            plain.finished = true;
            counters.closed("closed");
            record.end("closed", &RelayEnd::Finished.detail());
        }
        Ok(end) => {
            drop(plain); // reset, before waiting on the TLS side
            if matches!(end, RelayEnd::Idle(_)) {
                let _ = tls.shutdown().await;
            }
            counters.closed(end.code());
            record.end(end.code(), &end.detail());
        }
        Err(reason) => {
            // Cut: `plain` is reset and `tls` closed without close_notify when they drop.
            counters.closed(reason.code);
            tracing::info!(event = "connection_closed", peer_addr = %addr, reason = reason.code,
                "closing the connection from {addr}: {}", reason.detail);
            record.end(reason.code, &reason.detail);
        }
    }
}

/// Makes the close of `tcp` a reset (RST instead of FIN), so its reader sees an error, not an
/// end of stream.
fn reset(tcp: &TcpStream) {
    // A zero linger does not block on drop (it discards unsent data and sends RST).
    let _ = tcp.set_zero_linger();
}
