//! When the authority re-signs its CRL: after every revocation, once half of its validity has
//! passed, and when a listed certificate expires; otherwise the same CRL is served. Times are
//! the clock's, to the second.

use std::sync::Arc;

use mtls_ca::authority::CRL_VALIDITY;
use time::Duration;

use crate::harness::{on_each_store, START};

#[test]
fn the_crl_is_dated_by_the_clock_and_re_signed_at_half_its_validity() {
    on_each_store(|h| {
        let first = h.authority.crl().unwrap();
        let (_, crl) = h.crl();
        assert_eq!(crl.this_update, START, "{}", h.name);
        assert_eq!(crl.next_update, Some(START + CRL_VALIDITY));
        assert_eq!(h.crls_signed(), 1);

        h.advance(CRL_VALIDITY / 2 - Duration::seconds(1));
        assert!(
            Arc::ptr_eq(&first, &h.authority.crl().unwrap()),
            "{}: one second before half of the validity the cached CRL is served",
            h.name
        );
        assert_eq!(h.crls_signed(), 1);

        h.advance(Duration::seconds(1));
        let (_, renewed) = h.crl();
        assert_eq!(h.crls_signed(), 2, "re-signed at half of the validity");
        assert_eq!(renewed.this_update, START + CRL_VALIDITY / 2);
        assert!(crl.is_superseded_by(&renewed), "the CRL number grows");
    });
}

#[test]
fn a_revocation_shows_in_the_very_next_crl() {
    on_each_store(|h| {
        let holder = h.enroll("api", None);
        let (listed, _) = h.crl();
        assert!(listed.is_empty());
        h.advance(Duration::seconds(1));
        h.store
            .revoke(&holder.issued.serial, None, "test", h.now())
            .unwrap();
        let (listed, _) = h.crl();
        assert_eq!(listed, vec![holder.issued.serial.clone()], "{}", h.name);
        assert_eq!(h.crls_signed(), 2);
    });
}

#[test]
fn a_listed_certificate_leaves_the_crl_the_second_it_expires() {
    on_each_store(|h| {
        let brief = h.enroll("brief", Some("2m"));
        let long = h.enroll("long", Some("1h"));
        for holder in [&brief, &long] {
            h.store
                .revoke(
                    &holder.issued.serial,
                    Some("keyCompromise"),
                    "test",
                    h.now(),
                )
                .unwrap();
        }
        let (listed, _) = h.crl();
        assert_eq!(listed.len(), 2, "{}", h.name);
        let signed = h.crls_signed();

        let expiry = brief.issued.expires_at;
        h.clock.set(expiry - Duration::seconds(1));
        let (listed, _) = h.crl();
        assert_eq!(listed.len(), 2, "still valid one second before NotAfter");
        assert_eq!(h.crls_signed(), signed, "and the cached CRL served");

        // No revocation happened, half of the validity has not passed: the expiry alone
        // re-signs the CRL without the expired certificate.
        h.clock.set(expiry);
        let (listed, crl) = h.crl();
        assert_eq!(listed, vec![long.issued.serial.clone()]);
        assert_eq!(h.crls_signed(), signed + 1);
        assert_eq!(crl.this_update, expiry);
    });
}
