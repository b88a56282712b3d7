//! How a proxied connection is relayed and ended, inbound (TLS caller, plaintext application)
//! and outbound (plaintext local app, TLS upstream) alike: bytes are copied both ways until
//! both sides have ended, one fails, nothing moves for the idle time, or the TLS peer's
//! certificate expires or is revoked. A connection that did not finish cleanly resets the
//! plaintext side, so an application never takes a cut stream for a whole one; the TLS side
//! gets close_notify when it still works. Every end is counted and recorded.

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
    pub plain: &'a mut TcpStream,
    /// Which of the two called.
    pub caller: Caller,
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
    let Pair { tls, plain, caller } = pair;
    let relayed = async {
        match caller {
            Caller::Tls => relay(&mut *tls, &mut *plain, idle, &record.bytes).await,
            Caller::Plain => relay(&mut *plain, &mut *tls, idle, &record.bytes).await,
        }
    };
    let end = tokio::select! {
        end = relayed => Ok(end),
        reason = invalid => Err(reason),
    };
    match end {
        Ok(RelayEnd::Finished) => {
            counters.closed("closed");
            record.end("closed", &RelayEnd::Finished.detail());
        }
        Ok(end) => {
            reset(plain);
            if matches!(end, RelayEnd::Idle(_)) {
                let _ = tls.shutdown().await;
            }
            counters.closed(end.code());
            record.end(end.code(), &end.detail());
        }
        Err(reason) => {
            reset(plain);
            let _ = tls.shutdown().await;
            counters.closed(reason.code);
            tracing::info!(event = "connection_closed", peer_addr = %addr, reason = reason.code,
                "closing the connection from {addr}: {}", reason.detail);
            record.end(reason.code, &reason.detail);
        }
    }
}

/// Makes the close of `tcp` a reset (RST instead of FIN), so its reader sees an error, not an
/// end of stream.
pub(crate) fn reset(tcp: &TcpStream) {
    // A zero linger does not block on drop (it discards unsent data and sends RST).
    let _ = tcp.set_zero_linger();
}
