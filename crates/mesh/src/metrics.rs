//! Counters and gauges for the admin `/metrics` endpoint, rendered in the Prometheus text
//! format. Plain numbers only: the gauges that describe the credential and the trust state are
//! computed by their owner (`Mesh::metrics`) and handed in, so this module depends on nothing
//! of the domain.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    handshakes: Mutex<BTreeMap<String, u64>>,
    bundles_refused: Mutex<BTreeMap<String, u64>>,
    /// The server listener's connection counters (refusals, closes by reason, open).
    pub(crate) connections: Arc<wire::Counters>,
    pub(crate) rotations: AtomicU64,
    pub(crate) rotation_failures: AtomicU64,
    pub(crate) crl_fetches: AtomicU64,
    pub(crate) crl_fetch_failures: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) pins_reloads: AtomicU64,
    pub(crate) pins_reload_failures: AtomicU64,
    last_crl_fetch: Mutex<Option<OffsetDateTime>>,
}

/// The gauges of one moment, computed by the owner of the credential and trust state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Gauges {
    /// Seconds until the current certificate expires (negative once expired).
    pub(crate) certificate_expiry_seconds: Option<i64>,
    /// Present where a trust state exists (not in pinned mode).
    pub(crate) crl: Option<CrlGauges>,
}

/// The revocation list's gauges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CrlGauges {
    /// now - thisUpdate of the oldest CRL in use.
    pub(crate) age_seconds: Option<i64>,
    /// 0 fresh, 1 stale, 2 failing closed; None without a CRL policy.
    pub(crate) stale: Option<u8>,
    /// Serials on the list.
    pub(crate) revoked_entries: usize,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    // A poisoned lock only means another thread panicked mid-increment; counting on is fine.
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry(key.to_string()).or_default() += 1;
}

fn snapshot(map: &Mutex<BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    map.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Metrics {
    /// Counts a handshake by result: "ok" or a failure reason code.
    pub(crate) fn handshake(&self, result: &str) {
        bump(&self.handshakes, result);
    }

    /// Counts a refused trust bundle by reason code.
    pub(crate) fn bundle_refused(&self, reason: &str) {
        bump(&self.bundles_refused, reason);
    }

    #[cfg(test)]
    pub(crate) fn bundles_refused(&self, reason: &str) -> u64 {
        snapshot(&self.bundles_refused)
            .get(reason)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn crl_fetched(&self, at: OffsetDateTime) {
        self.crl_fetches.fetch_add(1, Ordering::Relaxed);
        *self
            .last_crl_fetch
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// Prometheus text exposition at `now`.
    pub(crate) fn render(&self, gauges: &Gauges, now: OffsetDateTime) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP mesh_handshakes_total TLS handshakes by result."
        );
        let _ = writeln!(out, "# TYPE mesh_handshakes_total counter");
        for (result, n) in snapshot(&self.handshakes) {
            let _ = writeln!(out, "mesh_handshakes_total{{result=\"{result}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP mesh_trust_bundle_refused_total Trust bundles from the CA refused (the current roots were kept), by reason.");
        let _ = writeln!(out, "# TYPE mesh_trust_bundle_refused_total counter");
        for (reason, n) in snapshot(&self.bundles_refused) {
            let _ = writeln!(
                out,
                "mesh_trust_bundle_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        // mesh_connections_{refused,closed}_total, mesh_connections_open, ...
        out.push_str(&self.connections.render("mesh"));
        let counters = [
            (
                "mesh_rotations_total",
                "Certificates rotated (renewed, re-enrolled or reloaded).",
                &self.rotations,
            ),
            (
                "mesh_rotation_failures_total",
                "Failed renewal attempts.",
                &self.rotation_failures,
            ),
            (
                "mesh_crl_fetches_total",
                "Successful CRL fetches.",
                &self.crl_fetches,
            ),
            (
                "mesh_crl_fetch_failures_total",
                "Failed CRL or bundle fetches.",
                &self.crl_fetch_failures,
            ),
            (
                "mesh_requests_total",
                "HTTP requests served.",
                &self.requests,
            ),
            (
                "mesh_pins_reloads_total",
                "Changes of the pins file (--trust-pins-file) put in use.",
                &self.pins_reloads,
            ),
            (
                "mesh_pins_reload_failures_total",
                "Changes of the pins file refused (the pins in use were kept).",
                &self.pins_reload_failures,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        if let Some(secs) = gauges.certificate_expiry_seconds {
            let _ = writeln!(out, "# HELP mesh_certificate_expiry_seconds Seconds until the current certificate expires (negative once expired).\n# TYPE mesh_certificate_expiry_seconds gauge\nmesh_certificate_expiry_seconds {secs}");
        }
        if let Some(crl) = &gauges.crl {
            if let Some(age) = crl.age_seconds {
                let _ = writeln!(out, "# HELP mesh_crl_age_seconds Age of the revocation list in use (now - thisUpdate).\n# TYPE mesh_crl_age_seconds gauge\nmesh_crl_age_seconds {age}");
            }
            if let Some(stale) = crl.stale {
                let _ = writeln!(out, "# HELP mesh_crl_stale Revocation list state: 0 fresh, 1 past nextUpdate (readiness degraded), 2 past nextUpdate + --crl-max-staleness (handshakes refused).\n# TYPE mesh_crl_stale gauge\nmesh_crl_stale {stale}");
            }
            let _ = writeln!(out, "# HELP mesh_crl_revoked_entries Serials on the revocation list in use.\n# TYPE mesh_crl_revoked_entries gauge\nmesh_crl_revoked_entries {}", crl.revoked_entries);
            if let Some(at) = *self
                .last_crl_fetch
                .lock()
                .unwrap_or_else(|p| p.into_inner())
            {
                let _ = writeln!(out, "# HELP mesh_crl_last_fetch_age_seconds Seconds since the last successful CRL fetch.\n# TYPE mesh_crl_last_fetch_age_seconds gauge\nmesh_crl_last_fetch_age_seconds {}", (now - at).whole_seconds());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn renders_counters_and_the_gauges_it_is_given() {
        let m = Metrics::default();
        m.handshake("ok");
        m.handshake("ok");
        m.bundle_refused("unvouched_root");
        let now = datetime!(2026-01-01 00:00:10 UTC);
        m.crl_fetched(datetime!(2026-01-01 00:00:00 UTC));
        let text = m.render(
            &Gauges {
                certificate_expiry_seconds: Some(-5),
                crl: Some(CrlGauges {
                    age_seconds: Some(70),
                    stale: Some(1),
                    revoked_entries: 3,
                }),
            },
            now,
        );
        for line in [
            "mesh_handshakes_total{result=\"ok\"} 2",
            "mesh_trust_bundle_refused_total{reason=\"unvouched_root\"} 1",
            "mesh_certificate_expiry_seconds -5",
            "mesh_crl_age_seconds 70",
            "mesh_crl_stale 1",
            "mesh_crl_revoked_entries 3",
            "mesh_crl_last_fetch_age_seconds 10",
            "mesh_crl_fetches_total 1",
            "mesh_connections_open 0",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        let bare = m.render(&Gauges::default(), now);
        assert!(!bare.contains("mesh_crl_stale") && !bare.contains("expiry"));
    }
}
