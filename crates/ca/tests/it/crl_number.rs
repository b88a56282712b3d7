//! CRL numbers only grow (RFC 5280 5.2.3), whatever the clock of the process signing: the store
//! hands them out above every earlier one, also to other processes and replicas sharing it.

use std::sync::Arc;

use mtls_ca::store::{PostgresStore, SqliteStore, Store};
use time::Duration;

use crate::harness::{on_each_store, START, TD};

fn number(h: &crate::harness::Harness) -> u64 {
    let (_, crl) = h.crl();
    crl.crl_number
        .iter()
        .fold(0u64, |n, b| (n << 8) | u64::from(*b))
}

#[test]
fn a_crl_signed_after_the_clock_stepped_back_has_a_greater_number() {
    on_each_store(|h| {
        let holder = h.enroll("web", None);
        let first = number(h);
        assert_eq!(first, (START.unix_timestamp() * 1000) as u64, "{}", h.name);
        // The clock steps back an hour (NTP correction, or another replica's clock), and a
        // revocation makes the next request sign a new CRL.
        h.clock.set(START - Duration::hours(1));
        h.store
            .revoke(&holder.issued.serial, None, "test", h.now())
            .unwrap();
        let second = number(h);
        assert!(
            second > first,
            "{}: CRL number {second} after {first}",
            h.name
        );
    });
}

/// Two handles on one database, as two replicas (or a CA and its CLI) hold.
fn numbers_from_two_handles(a: &dyn Store, b: &dyn Store) {
    assert_eq!(a.next_crl_number(1_000).unwrap(), 1_000);
    // B's clock is behind A's: it still gets a greater number.
    assert_eq!(b.next_crl_number(5).unwrap(), 1_001);
    // A clock ahead wins.
    assert_eq!(a.next_crl_number(9_000).unwrap(), 9_000);
    assert_eq!(b.next_crl_number(9_000).unwrap(), 9_001);
}

#[test]
fn replicas_sharing_a_database_never_hand_out_the_same_or_a_smaller_number() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ca.db");
    let a = SqliteStore::create(&path, &[("trust_domain", TD)]).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    numbers_from_two_handles(&a, &b);

    let url = testkit::postgres::PgCluster::shared().new_database();
    let a = Arc::new(PostgresStore::connect(&url).unwrap());
    let b = PostgresStore::connect(&url).unwrap();
    numbers_from_two_handles(a.as_ref(), &b);
}
