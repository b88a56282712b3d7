//! The proxy's own counters, appended to the mesh's `/metrics` (Prometheus text): connections
//! closed by direction and reason, bytes relayed each way, refusals by reason, policy reloads,
//! and the outbound listeners' connection counters (`mtls_proxy_outbound_connections_*`; the
//! inbound listener's are the mesh's `mesh_connections_*`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of one proxy process.
#[derive(Debug, Default)]
pub struct ProxyMetrics {
    closed: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    refused: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    bytes_from_client: [AtomicU64; 2],
    bytes_to_client: [AtomicU64; 2],
    policy_reloads: AtomicU64,
    policy_reload_failures: AtomicU64,
    /// The outbound listeners' connection layer counters.
    pub outbound_connections: Arc<wire::Counters>,
}

fn index(direction: &str) -> usize {
    usize::from(direction == "outbound")
}

fn bump(
    map: &Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    key: (&'static str, &'static str),
) {
    // A poisoned lock only means another thread panicked mid-increment; counting on is fine.
    *map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default() += 1;
}

impl ProxyMetrics {
    /// A connection of `direction` (`inbound`, `outbound`) ended for `reason`, after moving
    /// these bytes.
    pub fn closed(
        &self,
        direction: &'static str,
        reason: &'static str,
        from_client: u64,
        to_client: u64,
    ) {
        bump(&self.closed, (direction, reason));
        let i = index(direction);
        self.bytes_from_client[i].fetch_add(from_client, Ordering::Relaxed);
        self.bytes_to_client[i].fetch_add(to_client, Ordering::Relaxed);
    }

    /// A connection or request refused for `reason` (`forbidden`, `upstream_unreachable`, ...).
    pub fn refused(&self, direction: &'static str, reason: &'static str) {
        bump(&self.refused, (direction, reason));
    }

    /// A policy file reload, published or refused.
    pub fn policy_reload(&self, ok: bool) {
        let c = if ok {
            &self.policy_reloads
        } else {
            &self.policy_reload_failures
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals counted for (direction, reason).
    pub fn refused_count(&self, direction: &str, reason: &str) -> u64 {
        let m = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .filter(|((d, r), _)| *d == direction && *r == reason)
            .map(|(_, n)| *n)
            .sum()
    }

    /// The Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP mtls_proxy_connections_closed_total Proxied connections ended, by direction and reason.\n# TYPE mtls_proxy_connections_closed_total counter");
        for ((d, r), n) in self.closed.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "mtls_proxy_connections_closed_total{{direction=\"{d}\",reason=\"{r}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP mtls_proxy_refused_total Connections or requests the proxy refused, by direction and reason.\n# TYPE mtls_proxy_refused_total counter");
        for ((d, r), n) in self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "mtls_proxy_refused_total{{direction=\"{d}\",reason=\"{r}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP mtls_proxy_bytes_total Bytes relayed by ended connections, by direction and flow (from_client, to_client).\n# TYPE mtls_proxy_bytes_total counter");
        for (i, d) in ["inbound", "outbound"].iter().enumerate() {
            let _ = writeln!(
                out,
                "mtls_proxy_bytes_total{{direction=\"{d}\",flow=\"from_client\"}} {}",
                self.bytes_from_client[i].load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "mtls_proxy_bytes_total{{direction=\"{d}\",flow=\"to_client\"}} {}",
                self.bytes_to_client[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP mtls_proxy_policy_reloads_total Policy file changes, by result.\n# TYPE mtls_proxy_policy_reloads_total counter");
        let _ = writeln!(
            out,
            "mtls_proxy_policy_reloads_total{{result=\"ok\"}} {}",
            self.policy_reloads.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "mtls_proxy_policy_reloads_total{{result=\"refused\"}} {}",
            self.policy_reload_failures.load(Ordering::Relaxed)
        );
        out.push_str(&self.outbound_connections.render("mtls_proxy_outbound"));
        out
    }
}
