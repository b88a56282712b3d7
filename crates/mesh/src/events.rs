//! Everything worth logging and counting about credentials and trust happens through here, so
//! log fields stay uniform. Events know the domain (credentials, bundle refusals) and count in
//! `metrics`, which knows nothing but counters.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::credentials::Credential;
use crate::metrics::Metrics;
use pki::timefmt::rfc3339;

#[derive(Debug, Default)]
pub(crate) struct Events {
    pub(crate) metrics: Metrics,
}

impl Events {
    pub(crate) fn new() -> Arc<Events> {
        Arc::new(Events::default())
    }

    /// A new certificate went live.
    pub(crate) fn rotated(
        &self,
        old: &Credential,
        new: &Credential,
        next_rotation: Option<OffsetDateTime>,
        how: &str,
    ) {
        self.metrics.rotations.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            event = "rotated",
            how,
            identity = %new.identity(),
            old_serial = %old.info.serial_hex,
            new_serial = %new.info.serial_hex,
            not_after = %rfc3339(new.info.not_after),
            next_rotation = %next_rotation.map(rfc3339).unwrap_or_else(|| "-".into()),
            "certificate rotated: serial {} -> {}, valid until {}, next rotation {}",
            old.info.serial_hex,
            new.info.serial_hex,
            rfc3339(new.info.not_after),
            next_rotation.map(rfc3339).unwrap_or_else(|| "when the source changes".into()),
        );
    }

    pub(crate) fn rotation_failed(
        &self,
        error: &str,
        retry_in: std::time::Duration,
        left: std::time::Duration,
    ) {
        self.metrics
            .rotation_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            event = "rotation_failed",
            error,
            retry_in_ms = retry_in.as_millis() as u64,
            certificate_left_s = left.as_secs(),
            "renewal failed: {error}; keeping the current certificate, retrying in {}",
            pki::timefmt::human_std(retry_in).if_empty("under a second"),
        );
    }
}

impl Events {
    /// A trust bundle from the CA was refused (`trust_bundle`): the current roots stay. Counted
    /// every time; logged at error level when `log` (the first time this bundle is seen).
    pub(crate) fn bundle_refused(&self, refusal: &crate::trust_bundle::BundleRefusal, log: bool) {
        self.metrics.bundle_refused(refusal.code());
        if log {
            tracing::error!(
                event = "trust_bundle_refused",
                reason = refusal.code(),
                root = refusal.root(),
                "trust bundle refused, keeping the current roots: {refusal}"
            );
        }
    }
}

trait IfEmpty {
    fn if_empty(self, alt: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, alt: &str) -> String {
        if self.is_empty() || self == "0s" {
            alt.to_string()
        } else {
            self
        }
    }
}
