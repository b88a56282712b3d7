//! How much of a two-tier CA's intermediate validity is used: the gauge
//! `mtls_ca_intermediate_life_used_ratio` and a WARN log the first time each of
//! [`THRESHOLDS`] is passed (per process), so an operator renews it well before leaves stop
//! being issuable (docs/operations.md, "Intermediate renewal").

use std::sync::atomic::{AtomicUsize, Ordering};

use super::Authority;

/// Shares of the intermediate's life at which a warning is logged.
pub const THRESHOLDS: [f64; 3] = [0.5, 0.75, 0.9];

/// The intermediate's life at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntermediateLife {
    /// Share of NotBefore..NotAfter passed (0 before NotBefore, 1 from NotAfter on).
    pub used: f64,
    /// The highest threshold this call was the first to see passed (it logged the warning).
    pub crossed: Option<f64>,
}

/// How many of [`THRESHOLDS`] have been warned about.
#[derive(Debug, Default)]
pub(crate) struct LifeWarnings(AtomicUsize);

impl LifeWarnings {
    /// Forgets the warnings logged: a renewed intermediate's life starts again.
    pub(super) fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

impl Authority {
    /// The intermediate's life now (None for a single-tier CA). The first call past a
    /// threshold logs a warning naming the renewal command.
    pub fn intermediate_life(&self) -> Option<IntermediateLife> {
        let ca = self.ca();
        if !ca.is_intermediate() {
            return None;
        }
        let now = self.clock.now();
        let (from, to) = (ca.not_before(), ca.not_after());
        // The renewal maths of the leaves (`pki::renewal`), seen from the used side.
        let used = 1.0 - pki::renewal::remaining_fraction(now, from, to);
        let passed = THRESHOLDS.iter().filter(|t| used >= **t).count();
        let before = self.life_warnings.0.fetch_max(passed, Ordering::Relaxed);
        let crossed = (passed > before).then(|| THRESHOLDS[passed - 1]);
        if let Some(threshold) = crossed {
            tracing::warn!(
                event = "intermediate_life",
                used = format!("{used:.3}"),
                threshold,
                not_after = %pki::timefmt::rfc3339(to),
                "the intermediate has used {:.0}% of its lifetime (more than {:.0}%); it expires \
                 at {} and no leaf is issued past that: renew it with `mtls-ca intermediate \
                 renew` (docs/operations.md)",
                used * 100.0,
                threshold * 100.0,
                pki::timefmt::rfc3339(to)
            );
        }
        Some(IntermediateLife { used, crossed })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use pki::clock::ManualClock;
    use pki::{CaMaterial, IssuancePolicy, TrustDomain};
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::authority::AuthorityConfig;
    use crate::store::MemoryStore;

    fn authority(ca: CaMaterial, clock: Arc<ManualClock>) -> Authority {
        let store = Arc::new(MemoryStore::new(
            &[("trust_domain", "mesh.local")],
            clock.clone(),
        ));
        Authority::new(
            ca,
            vec![],
            store,
            AuthorityConfig {
                trust_domain: TrustDomain::parse("mesh.local").unwrap(),
                default_ttl: Duration::hours(1),
                max_ttl: Duration::hours(24),
                admin_id: None,
                policy: IssuancePolicy::default(),
            },
            clock,
        )
    }

    /// On the injected clock: the ratio follows the intermediate's validity, each threshold is
    /// reported (and logged) once, the metric appears, and a single-tier CA has none.
    #[test]
    fn each_threshold_is_crossed_once_and_the_gauge_follows_the_clock() {
        let start = OffsetDateTime::now_utc();
        let root = CaMaterial::generate_offline_root("Root", start).unwrap();
        let td = TrustDomain::parse("mesh.local").unwrap();
        let inter = pki::intermediate::generate(&root, &td, Duration::days(100), start).unwrap();
        let (from, to) = (inter.not_before(), inter.not_after());
        let clock = Arc::new(ManualClock::new(start));
        let a = authority(inter, clock.clone());
        let at = |share: f64| from + (to - from) * share;

        let life = a.intermediate_life().unwrap();
        assert!(life.used < 0.01 && life.crossed.is_none(), "{life:?}");
        clock.set(at(0.49));
        assert_eq!(a.intermediate_life().unwrap().crossed, None);
        clock.set(at(0.51));
        let life = a.intermediate_life().unwrap();
        assert_eq!(life.crossed, Some(0.5));
        assert!((life.used - 0.51).abs() < 0.001, "{life:?}");
        assert_eq!(a.intermediate_life().unwrap().crossed, None, "logged once");
        clock.set(at(0.95));
        assert_eq!(a.intermediate_life().unwrap().crossed, Some(0.9));
        assert_eq!(a.intermediate_life().unwrap().crossed, None);

        let metrics = a.metrics.render(
            a.ca().root_not_after(),
            a.now(),
            Some(0),
            a.intermediate_life().map(|l| l.used),
        );
        assert!(
            metrics.contains("mtls_ca_intermediate_life_used_ratio 0.95"),
            "{metrics}"
        );
        assert_eq!(a.ca().root_not_after(), root.not_after());

        let single = authority(CaMaterial::generate_root("Single", start).unwrap(), clock);
        assert!(single.intermediate_life().is_none());
    }
}
