//! `/healthz` verdicts are cached for `HEALTH_CACHE` so unauthenticated polling cannot turn
//! into a stream of fsyncs, and a probe after that sees the truth; the cache follows the
//! authority's clock (and a clock that jumped back probes again).

use mtls_ca::authority::HEALTH_CACHE;
use mtls_ca::store::MemoryStore;
use time::Duration;

use crate::harness::{Harness, START};

/// The memory store's `set_unavailable` plays the removed database file.
#[test]
fn health_verdicts_are_cached_then_probed_again() {
    let h = Harness::memory();
    assert_eq!(h.authority.health(), Ok(()));
    assert_eq!(
        h.store.get_meta("heartbeat").unwrap(),
        Some(START.unix_timestamp().to_string()),
        "the probe writes"
    );
    let store = h.store.clone();
    let memory = store_as_memory(&h);
    memory.set_unavailable(Some("ca.db was removed"));

    // Within the cache window the earlier verdict is reused: no probe, no write.
    h.advance(HEALTH_CACHE - Duration::milliseconds(1));
    assert_eq!(h.authority.health(), Ok(()));
    // From the end of the window on, the probe runs and sees the store gone.
    h.advance(Duration::milliseconds(1));
    let reason = h.authority.health().unwrap_err();
    assert!(reason.contains("ca.db was removed"), "{reason}");
    // The bad verdict is cached too, even after the store recovered.
    memory.set_unavailable(None);
    h.advance(HEALTH_CACHE / 2);
    assert_eq!(h.authority.health(), Err(reason));
    // A clock that went backwards does not keep a verdict alive.
    h.clock.set(START - Duration::minutes(1));
    assert_eq!(h.authority.health(), Ok(()));
    assert_eq!(
        store.get_meta("heartbeat").unwrap(),
        Some((START - Duration::minutes(1)).unix_timestamp().to_string())
    );
}

/// On SQLite the real thing: the database files removed under the running store.
#[test]
fn a_removed_database_fails_the_probe_after_the_cache_window() {
    let h = Harness::sqlite();
    assert_eq!(h.authority.health(), Ok(()));
    let dir = h.store_dir();
    for name in ["ca.db", "ca.db-wal", "ca.db-shm"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    h.advance(HEALTH_CACHE / 2);
    assert_eq!(h.authority.health(), Ok(()), "cached");
    h.advance(HEALTH_CACHE);
    let reason = h.authority.health().unwrap_err();
    assert!(reason.contains("ca.db was removed"), "{reason}");
}

fn store_as_memory(h: &Harness) -> &MemoryStore {
    h.memory.as_deref().expect("a memory harness")
}
