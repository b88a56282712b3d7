//! `/healthz` verdicts are cached for `HEALTH_CACHE` so unauthenticated polling cannot turn
//! into a stream of fsyncs, and a probe after that sees the truth. Driven in-process with
//! explicit instants: no waiting.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use mtls_ca::authority::{Authority, AuthorityConfig, HEALTH_CACHE};
use mtls_ca::store::{SqliteStore, Store};
use pki::{CaMaterial, IssuancePolicy, TrustDomain};
use time::OffsetDateTime;

#[test]
fn health_verdicts_are_cached_then_probed_again() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("ca.db");
    let store = Arc::new(SqliteStore::create(&db, &[("trust_domain", "mesh.local")]).unwrap());
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(
        CaMaterial::generate_root("Health Root", now).unwrap(),
        vec![],
        store.clone(),
        AuthorityConfig {
            trust_domain: TrustDomain::parse("mesh.local").unwrap(),
            default_ttl: time::Duration::hours(1),
            max_ttl: time::Duration::hours(24),
            admin_id: None,
            policy: IssuancePolicy::default(),
        },
    );
    let t0 = Instant::now();
    assert_eq!(authority.health(t0, now), Ok(()));
    let beat = store.get_meta("heartbeat").unwrap();
    assert_eq!(
        beat,
        Some(now.unix_timestamp().to_string()),
        "the probe writes"
    );

    for name in ["ca.db", "ca.db-wal", "ca.db-shm"] {
        let _ = std::fs::remove_file(tmp.path().join(name));
    }
    // Within the cache window the earlier verdict is reused: no probe, no write.
    let later = now + time::Duration::seconds(5);
    assert_eq!(authority.health(t0 + HEALTH_CACHE / 2, later), Ok(()));
    // After it, the probe runs and sees the database gone.
    let verdict = authority.health(t0 + HEALTH_CACHE + Duration::from_millis(1), later);
    let reason = verdict.unwrap_err();
    assert!(reason.contains("ca.db was removed"), "{reason}");
    // And the bad verdict is cached too.
    assert_eq!(
        authority.health(t0 + HEALTH_CACHE + HEALTH_CACHE / 2, later),
        Err(reason)
    );
}
