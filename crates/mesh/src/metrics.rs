//! Counters for the admin `/metrics` endpoint, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::credentials::Identity;
use crate::trust::TrustState;

#[derive(Debug, Default)]
pub struct Metrics {
    handshakes: Mutex<BTreeMap<String, u64>>,
    bundles_refused: Mutex<BTreeMap<String, u64>>,
    /// The server listener's connection counters (refusals, closes by reason, open).
    pub connections: Arc<wire::Counters>,
    pub rotations: AtomicU64,
    pub rotation_failures: AtomicU64,
    pub crl_fetches: AtomicU64,
    pub crl_fetch_failures: AtomicU64,
    pub requests: AtomicU64,
    last_crl_fetch: Mutex<Option<OffsetDateTime>>,
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
    pub fn handshake(&self, result: &str) {
        bump(&self.handshakes, result);
    }

    pub fn handshakes(&self, result: &str) -> u64 {
        snapshot(&self.handshakes).get(result).copied().unwrap_or(0)
    }

    /// Counts a refused trust bundle by reason code.
    pub fn bundle_refused(&self, reason: &str) {
        bump(&self.bundles_refused, reason);
    }

    pub fn bundles_refused(&self, reason: &str) -> u64 {
        snapshot(&self.bundles_refused)
            .get(reason)
            .copied()
            .unwrap_or(0)
    }

    pub fn crl_fetched(&self, at: OffsetDateTime) {
        self.crl_fetches.fetch_add(1, Ordering::Relaxed);
        *self
            .last_crl_fetch
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// Prometheus text exposition.
    pub fn render(&self, identity: Option<&Identity>, trust: Option<&TrustState>) -> String {
        let now = OffsetDateTime::now_utc();
        let mut out = String::new();
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
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        if let Some(identity) = identity {
            let cert = identity.current();
            let secs = (cert.info.not_after - now).whole_seconds();
            let _ = writeln!(out, "# HELP mesh_certificate_expiry_seconds Seconds until the current certificate expires (negative once expired).\n# TYPE mesh_certificate_expiry_seconds gauge\nmesh_certificate_expiry_seconds {secs}");
        }
        if let Some(trust) = trust {
            let revoked = trust.revoked();
            if let Some(this_update) = revoked.oldest_this_update() {
                let age = (now - this_update).whole_seconds();
                let _ = writeln!(out, "# HELP mesh_crl_age_seconds Age of the revocation list in use (now - thisUpdate).\n# TYPE mesh_crl_age_seconds gauge\nmesh_crl_age_seconds {age}");
            }
            if trust.crl_policy().is_some() {
                let _ = writeln!(out, "# HELP mesh_crl_stale Revocation list state: 0 fresh, 1 past nextUpdate (readiness degraded), 2 past nextUpdate + --crl-max-staleness (handshakes refused).\n# TYPE mesh_crl_stale gauge\nmesh_crl_stale {}", trust.crl_status(now).gauge());
            }
            let _ = writeln!(out, "# HELP mesh_crl_revoked_entries Serials on the revocation list in use.\n# TYPE mesh_crl_revoked_entries gauge\nmesh_crl_revoked_entries {}", revoked.len());
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
