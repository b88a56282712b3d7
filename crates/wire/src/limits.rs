//! Every number the connection layer enforces, with the defaults shared by all listeners. The
//! binaries override a few per product (for example `max_connections`) from their flags.

use std::time::Duration;

/// Limits of one listener. `Limits::default()` is the CA's profile; see each field for why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, handshaking ones included. When all are taken, new ones wait
    /// in the kernel's accept queue (they are not refused), so a burst is served late instead
    /// of failing; memory and file descriptors stay bounded.
    pub max_connections: usize,
    /// Connections one source IP address may hold at once; the excess is closed right after
    /// `accept` (never queued). `None`: no per-source limit.
    pub max_per_source: Option<usize>,
    /// Slots only peers with a verified client certificate may use. Connections without one
    /// (handshake finished unauthenticated) may hold at most `max_connections - reserve`;
    /// the excess is closed right after the handshake.
    pub authenticated_reserve: usize,
    /// Connections one identity (SPIFFE ID, else subject) may hold at once; the excess gets
    /// one refusal from the protocol (HTTP: 429) and is closed. `None`: no limit.
    pub max_per_identity: Option<usize>,
    /// A TLS handshake that has not finished by then is dropped.
    pub handshake_timeout: Duration,
    /// HTTP/1: once the first byte of a request has arrived, its header must be complete
    /// within this time.
    pub header_timeout: Duration,
    /// A connection with no request in flight (and, on HTTP/1, no request arriving) for this
    /// long is closed gracefully. Protocol frames (HTTP/2 PING, SETTINGS) do not count.
    pub idle_timeout: Duration,
    /// A request whose body and handler take longer than this is answered 408 and its
    /// connection closed, so a slow upload cannot hold a slot forever.
    pub request_timeout: Duration,
    /// On shutdown, in-flight requests get this long to finish; then connections are cut.
    pub drain: Duration,
    /// After a graceful close has begun and nothing is in flight, the peer gets this long to
    /// finish the close (HTTP/2 waits for its GOAWAY PING to be answered); then it is cut.
    pub close_grace: Duration,
    /// HTTP/2 settings.
    pub h2: H2Limits,
}

/// HTTP/2 settings that bound what one connection may cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H2Limits {
    /// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Largest header block accepted (SETTINGS_MAX_HEADER_LIST_SIZE), in bytes.
    pub max_header_list_size: u32,
    /// The server pings a connection this often to find dead peers ...
    pub keep_alive_interval: Duration,
    /// ... and closes it when a ping is not answered within this time.
    pub keep_alive_timeout: Duration,
}

impl Default for H2Limits {
    fn default() -> Self {
        H2Limits {
            max_concurrent_streams: 100,
            max_header_list_size: 16 * 1024,
            keep_alive_interval: Duration::from_secs(20),
            keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

/// Default connection cap of the CA (`mtls-ca --max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_source: Some(256),
            authenticated_reserve: default_reserve(DEFAULT_MAX_CONNECTIONS),
            max_per_identity: None,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(10),
            close_grace: Duration::from_secs(5),
            h2: H2Limits::default(),
        }
    }
}

/// The default room kept for authenticated peers: a quarter of the connection cap.
pub fn default_reserve(max_connections: usize) -> usize {
    max_connections / 4
}

/// File descriptors kept for everything but accepted connections: the listening sockets, the
/// outgoing connections to the CA (enrollment, renewal, CRL refresh), the database, log files.
pub const FD_HEADROOM: u64 = 64;

/// This process's soft limit on open files, where the platform tells it (Linux:
/// `/proc/self/limits`); `None` when unknown or unlimited.
pub fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&text)
}

fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files            1024                 524288               files"
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The most connections `open_files` descriptors can carry with `FD_HEADROOM` left over. A
/// connection cap above it would end in failed `accept` calls (and failed CA refreshes)
/// instead of connections waiting their turn.
pub fn connections_for_open_files(open_files: u64) -> usize {
    usize::try_from(open_files.saturating_sub(FD_HEADROOM).max(1)).unwrap_or(usize::MAX)
}

/// `requested` connections, lowered to what this process's open-file limit can carry; the
/// second value is that limit when it lowered the number (the binaries warn about it).
pub fn fit_to_open_files(requested: usize) -> (usize, Option<u64>) {
    match open_file_limit() {
        Some(open_files) if connections_for_open_files(open_files) < requested => {
            (connections_for_open_files(open_files), Some(open_files))
        }
        _ => (requested, None),
    }
}

/// A limit that cannot work, named with the value given and what would.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitsError {
    /// `max_connections` is zero.
    #[error("the connection limit must be at least 1 (got 0)")]
    NoConnections,
    /// The reserve leaves no slot for unauthenticated peers.
    #[error(
        "the authenticated reserve ({reserve}) must be smaller than the connection limit \
         ({max}), or no unauthenticated client (enrollment, CRL fetches) could connect"
    )]
    ReserveTooLarge {
        /// The reserve given.
        reserve: usize,
        /// The connection limit.
        max: usize,
    },
    /// A per-source or per-identity limit of zero.
    #[error("the {which} limit must be at least 1 (got 0); omit it to have no limit")]
    ZeroPerKeyLimit {
        /// `per-source` or `per-identity`.
        which: &'static str,
    },
    /// A timeout of zero.
    #[error("the {which} must be longer than zero")]
    ZeroDuration {
        /// The timeout, in words.
        which: &'static str,
    },
}

impl Limits {
    /// Connections without a verified client certificate may hold at most this many slots.
    pub fn unauthenticated_limit(&self) -> usize {
        self.max_connections
            .saturating_sub(self.authenticated_reserve)
    }

    /// Checks that every limit can be met; the binaries call this before binding.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.max_connections == 0 {
            return Err(LimitsError::NoConnections);
        }
        if self.authenticated_reserve >= self.max_connections {
            return Err(LimitsError::ReserveTooLarge {
                reserve: self.authenticated_reserve,
                max: self.max_connections,
            });
        }
        if self.max_per_source == Some(0) {
            return Err(LimitsError::ZeroPerKeyLimit {
                which: "per-source",
            });
        }
        if self.max_per_identity == Some(0) {
            return Err(LimitsError::ZeroPerKeyLimit {
                which: "per-identity",
            });
        }
        let durations = [
            ("handshake timeout", self.handshake_timeout),
            ("header timeout", self.header_timeout),
            ("idle timeout", self.idle_timeout),
            ("request timeout", self.request_timeout),
            ("close grace", self.close_grace),
            ("HTTP/2 keep-alive interval", self.h2.keep_alive_interval),
            ("HTTP/2 keep-alive timeout", self.h2.keep_alive_timeout),
        ];
        for (which, d) in durations {
            if d.is_zero() {
                return Err(LimitsError::ZeroDuration { which });
            }
        }
        // A zero drain is allowed: it means "cut everything at once".
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_keep_a_quarter_for_authenticated_peers() {
        let l = Limits::default();
        assert_eq!(l.validate(), Ok(()));
        assert_eq!(l.authenticated_reserve, 1024);
        assert_eq!(l.unauthenticated_limit(), 3072);
        assert_eq!(default_reserve(16), 4);
        assert_eq!(default_reserve(1), 0);
    }

    #[test]
    fn the_open_file_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max cpu time              unlimited            unlimited            seconds\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_file_limit(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_file_limit(unlimited), None);
        assert_eq!(parse_open_file_limit("garbage"), None);
        assert_eq!(connections_for_open_files(1024), 960);
        assert_eq!(connections_for_open_files(10), 1);
        if cfg!(target_os = "linux") {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
    }

    #[test]
    fn impossible_limits_are_refused_with_the_values() {
        let l = Limits {
            max_connections: 8,
            authenticated_reserve: 8,
            ..Limits::default()
        };
        let e = l.validate().unwrap_err();
        assert_eq!(e, LimitsError::ReserveTooLarge { reserve: 8, max: 8 });
        assert!(e
            .to_string()
            .contains("(8) must be smaller than the connection limit (8)"));
        let l = Limits {
            max_connections: 0,
            authenticated_reserve: 0,
            ..Limits::default()
        };
        assert_eq!(l.validate(), Err(LimitsError::NoConnections));
        let l = Limits {
            max_per_identity: Some(0),
            ..Limits::default()
        };
        assert_eq!(
            l.validate(),
            Err(LimitsError::ZeroPerKeyLimit {
                which: "per-identity"
            })
        );
        let l = Limits {
            idle_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert_eq!(
            l.validate(),
            Err(LimitsError::ZeroDuration {
                which: "idle timeout"
            })
        );
    }
}
