//! Prometheus counters of the CA, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

/// The CA's counters, rendered in the Prometheus text format by `/metrics`.
#[derive(Default)]
pub struct Metrics {
    /// Certificates issued against a join token.
    pub issued: AtomicU64,
    /// Certificates issued by renewal.
    pub renewed: AtomicU64,
    /// Certificates revoked through the API (lineages included).
    pub revoked: AtomicU64,
    /// CRLs signed.
    pub crl_generated: AtomicU64,
    /// CRL requests answered with the last good CRL because the store could not be read.
    pub crl_served_stale: AtomicU64,
    /// X.509-SVIDs issued to agents for their entries.
    pub agent_svids: AtomicU64,
    /// JWT-SVIDs issued to agents for their entries.
    pub agent_jwts: AtomicU64,
    /// OCSP requests answered with a signed response.
    pub ocsp_answers: AtomicU64,
    /// Root rotation steps this running CA switched to (`root_follow.rs`).
    pub root_switches: AtomicU64,
    /// Attempts to follow a root rotation step that failed (a root key file missing): the CA
    /// keeps the previous phase and `/healthz` says why.
    pub root_switch_failures: AtomicU64,
    /// Renewed `intermediate.crt` files this running CA switched to (`root_follow.rs`).
    pub intermediate_reloads: AtomicU64,
    /// Attempts to take up a changed `intermediate.crt` that were refused (the file does not
    /// fit this CA): the CA keeps signing with the intermediate it has.
    pub intermediate_reload_failures: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// The API listener's connection counters (refusals, closes, open connections).
    pub connections: Arc<wire::Counters>,
    /// The federated bundle refresh, per trust domain.
    pub federation: crate::federation_metrics::FederationMetrics,
    /// The last refusals with their time and message, for the dashboard.
    pub recent_refusals: crate::refusals::RecentRefusals,
}

impl Metrics {
    /// Counts a refused request under its error code.
    pub fn reject(&self, reason: &'static str) {
        let mut map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(reason).or_insert(0) += 1;
    }

    /// Refusals counted so far, by reason (the `mtls_ca_rejected_total` series).
    pub fn rejections(&self) -> Vec<(&'static str, u64)> {
        let map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(reason, n)| (*reason, *n)).collect()
    }

    /// `audit_head_seq` is read from the store at render time (None when that failed: the
    /// gauge is left out rather than reported wrong). `intermediate_life_used` is the share of
    /// a two-tier CA's intermediate validity used (None for a single-tier CA).
    pub fn render(
        &self,
        root_not_after: OffsetDateTime,
        now: OffsetDateTime,
        audit_head_seq: Option<i64>,
        intermediate_life_used: Option<f64>,
    ) -> String {
        let mut out = String::new();
        let counters = [
            (
                "mtls_ca_issued_total",
                "Certificates issued against a join token.",
                &self.issued,
            ),
            (
                "mtls_ca_renewed_total",
                "Certificates issued by renewal over mTLS.",
                &self.renewed,
            ),
            (
                "mtls_ca_revoked_total",
                "Certificates revoked through the API.",
                &self.revoked,
            ),
            (
                "mtls_ca_crl_generated_total",
                "CRLs signed.",
                &self.crl_generated,
            ),
            (
                "mtls_ca_crl_served_stale_total",
                "CRL requests answered with the last good CRL while the database was unreachable.",
                &self.crl_served_stale,
            ),
            (
                "mtls_ca_agent_svids_total",
                "X.509-SVIDs issued to agents for their registration entries.",
                &self.agent_svids,
            ),
            (
                "mtls_ca_agent_jwts_total",
                "JWT-SVIDs issued to agents for their registration entries.",
                &self.agent_jwts,
            ),
            (
                "mtls_ca_ocsp_answers_total",
                "OCSP requests answered with a signed response (refusals are in mtls_ca_rejected_total).",
                &self.ocsp_answers,
            ),
            (
                "mtls_ca_root_switches_total",
                "Root rotation steps this CA switched to while running.",
                &self.root_switches,
            ),
            (
                "mtls_ca_root_switch_failures_total",
                "Failed attempts to follow a root rotation step (the CA keeps the previous phase; /healthz says why).",
                &self.root_switch_failures,
            ),
            (
                "mtls_ca_intermediate_reloads_total",
                "Renewed intermediate certificates this CA switched to while running.",
                &self.intermediate_reloads,
            ),
            (
                "mtls_ca_intermediate_reload_failures_total",
                "Checks of a changed intermediate.crt that refused it (the CA keeps the intermediate it has; the log says why).",
                &self.intermediate_reload_failures,
            ),
        ];
        // Writing to a String cannot fail.
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP mtls_ca_rejected_total Requests refused, by reason.\n# TYPE mtls_ca_rejected_total counter"
        );
        let map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        for (reason, n) in map.iter() {
            let _ = writeln!(out, "mtls_ca_rejected_total{{reason=\"{reason}\"}} {n}");
        }
        self.federation.render(&mut out);
        let _ = writeln!(
            out,
            "# HELP mtls_ca_root_expiry_seconds Seconds until the root certificate expires.\n# TYPE mtls_ca_root_expiry_seconds gauge"
        );
        let _ = writeln!(
            out,
            "mtls_ca_root_expiry_seconds {}",
            (root_not_after - now).whole_seconds()
        );
        // Read at render time like the audit head: 0 while the database cannot be read.
        let _ = writeln!(
            out,
            "# HELP mtls_ca_store_up Whether the store answered when these metrics were \
             rendered (1) or not (0).\n# TYPE mtls_ca_store_up gauge\nmtls_ca_store_up {}",
            u8::from(audit_head_seq.is_some())
        );
        if let Some(seq) = audit_head_seq {
            let _ = writeln!(
                out,
                "# HELP mtls_ca_audit_head_seq Sequence number of the last audit log entry; \
                 compare with the published head.\n# TYPE mtls_ca_audit_head_seq gauge\n\
                 mtls_ca_audit_head_seq {seq}"
            );
        }
        if let Some(used) = intermediate_life_used {
            let _ = writeln!(
                out,
                "# HELP mtls_ca_intermediate_life_used_ratio Share of the intermediate's \
                 validity used (0 at NotBefore, 1 at NotAfter); renew it past 0.5 \
                 (docs/operations.md).\n# TYPE mtls_ca_intermediate_life_used_ratio gauge\n\
                 mtls_ca_intermediate_life_used_ratio {used:.4}"
            );
        }
        out.push_str(&self.connections.render("mtls_ca"));
        out
    }
}
