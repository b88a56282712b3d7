//! Counters of the federated bundle refresh (`mtls_ca_federation_*`), per trust domain.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Per federated trust domain: fetches that brought a good bundle, and fetches that failed
/// (the last good bundle stays in use then).
#[derive(Default)]
pub struct FederationMetrics {
    by_domain: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl FederationMetrics {
    /// A good fetch for `trust_domain`.
    pub fn refreshed(&self, trust_domain: &str) {
        self.bump(trust_domain, |c| c.0 += 1);
    }

    /// A failed fetch for `trust_domain`.
    pub fn failed(&self, trust_domain: &str) {
        self.bump(trust_domain, |c| c.1 += 1);
    }

    /// Failed fetches of `trust_domain` so far.
    pub fn failures(&self, trust_domain: &str) -> u64 {
        let map = self.by_domain.lock().unwrap_or_else(|p| p.into_inner());
        map.get(trust_domain).map_or(0, |c| c.1)
    }

    fn bump(&self, trust_domain: &str, f: impl FnOnce(&mut (u64, u64))) {
        let mut map = self.by_domain.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(trust_domain.to_string()).or_default());
    }

    /// Appends both series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let map = self.by_domain.lock().unwrap_or_else(|p| p.into_inner());
        let series = [
            (
                "mtls_ca_federation_refreshes_total",
                "Fetches of a federated trust domain's bundle that succeeded.",
                0,
            ),
            (
                "mtls_ca_federation_refresh_failures_total",
                "Fetches of a federated trust domain's bundle that failed (the last good bundle stays in use).",
                1,
            ),
        ];
        // Writing to a String cannot fail.
        for (name, help, index) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (td, counts) in map.iter() {
                let n = if index == 0 { counts.0 } else { counts.1 };
                let _ = writeln!(out, "{name}{{trust_domain=\"{td}\"}} {n}");
            }
        }
    }
}
