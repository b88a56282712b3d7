//! Counters of refused and closed connections and gauges of open ones, shared by a listener
//! and the product's Prometheus renderer (`Counters::render` with the product's prefix).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What one listener counted. Reasons are stable codes (`per_source`, `idle`, ...), listed in
/// docs/architecture.md.
#[derive(Debug, Default)]
pub struct Counters {
    refused: Mutex<BTreeMap<&'static str, u64>>,
    closed: Mutex<BTreeMap<&'static str, u64>>,
    open: AtomicU64,
    unauthenticated: AtomicU64,
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, reason: &'static str) {
    // A poisoned lock only means another thread panicked mid-increment; counting on is fine.
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry(reason).or_default() += 1;
}

fn get(map: &Mutex<BTreeMap<&'static str, u64>>, reason: &str) -> u64 {
    let m = map.lock().unwrap_or_else(|p| p.into_inner());
    m.get(reason).copied().unwrap_or(0)
}

fn snapshot(map: &Mutex<BTreeMap<&'static str, u64>>) -> BTreeMap<&'static str, u64> {
    map.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Counters {
    /// A connection refused by a limit (it never got to make a request, or got only the
    /// refusal).
    pub fn refused(&self, reason: &'static str) {
        bump(&self.refused, reason);
    }

    /// A connection the server closed, by reason.
    pub fn closed(&self, reason: &'static str) {
        bump(&self.closed, reason);
    }

    /// Connections refused for `reason` so far.
    pub fn refused_count(&self, reason: &str) -> u64 {
        get(&self.refused, reason)
    }

    /// Connections closed for `reason` so far.
    pub fn closed_count(&self, reason: &str) -> u64 {
        get(&self.closed, reason)
    }

    /// Connections open now, handshaking ones included.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections open now whose handshake finished without a client certificate.
    pub fn unauthenticated(&self) -> u64 {
        self.unauthenticated.load(Ordering::Relaxed)
    }

    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn released(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn unauthenticated_opened(&self) {
        self.unauthenticated.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unauthenticated_released(&self) {
        self.unauthenticated.fetch_sub(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition, every name starting with `prefix` (`mtls_ca`, `mesh`).
    pub fn render(&self, prefix: &str) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP {prefix}_connections_refused_total Connections refused by a connection limit, by reason.\n\
             # TYPE {prefix}_connections_refused_total counter"
        );
        for (reason, n) in snapshot(&self.refused) {
            let _ = writeln!(
                out,
                "{prefix}_connections_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP {prefix}_connections_closed_total Connections closed by the server, by reason.\n\
             # TYPE {prefix}_connections_closed_total counter"
        );
        for (reason, n) in snapshot(&self.closed) {
            let _ = writeln!(
                out,
                "{prefix}_connections_closed_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP {prefix}_connections_open Connections open now, handshaking ones included.\n\
             # TYPE {prefix}_connections_open gauge\n{prefix}_connections_open {}",
            self.open()
        );
        let _ = writeln!(
            out,
            "# HELP {prefix}_connections_unauthenticated Open connections without a client certificate.\n\
             # TYPE {prefix}_connections_unauthenticated gauge\n{prefix}_connections_unauthenticated {}",
            self.unauthenticated()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_reasons_and_gauges_under_the_prefix() {
        let c = Counters::default();
        c.refused("per_source");
        c.refused("per_source");
        c.closed("idle");
        c.opened();
        c.opened();
        c.released();
        c.unauthenticated_opened();
        let text = c.render("mtls_ca");
        assert!(text.contains("mtls_ca_connections_refused_total{reason=\"per_source\"} 2\n"));
        assert!(text.contains("mtls_ca_connections_closed_total{reason=\"idle\"} 1\n"));
        assert!(text.contains("mtls_ca_connections_open 1\n"));
        assert!(text.contains("mtls_ca_connections_unauthenticated 1\n"));
        assert!(text.contains("# TYPE mtls_ca_connections_open gauge"));
        assert_eq!(c.refused_count("per_source"), 2);
        assert_eq!(c.closed_count("nothing"), 0);
    }
}
