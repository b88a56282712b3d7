//! Renewal on the authority's clock: the new certificate's times, a retry with the same key,
//! a second renewal with another key (theft), a reused key, and expiry at the exact second.

use mtls_ca::store::IssueKind;
use time::Duration;

use crate::harness::{csr, new_key, on_each_store, sorted, Holder, START};

#[test]
fn a_renewal_is_dated_by_the_clock_and_linked_to_its_parent() {
    on_each_store(|h| {
        let first = h.enroll("api", None);
        h.advance(Duration::minutes(30));
        let second = h.renewed(&first);
        assert_eq!(
            second.issued.expires_at,
            START + Duration::minutes(30) + Duration::hours(1),
            "{}",
            h.name
        );
        assert_eq!(second.issued.spiffe_id, "spiffe://mesh.local/service/api");
        let record = h.store.find_cert(&second.issued.serial).unwrap().unwrap();
        assert_eq!(record.kind, IssueKind::Renew);
        assert_eq!(
            record.renewed_from.as_deref(),
            Some(first.issued.serial.as_str())
        );
        assert_eq!(record.issued_at, START + Duration::minutes(30));
        // The renewal keeps the SANs the token allowed.
        assert_eq!(record.dns, vec!["svc.local".to_string()]);
    });
}

#[test]
fn a_retry_with_the_same_key_gets_the_same_certificate_and_stores_nothing() {
    on_each_store(|h| {
        let first = h.enroll("api", None);
        let key = new_key();
        let issued = h.renew(&first, &key).unwrap();
        h.advance(Duration::seconds(5));
        // The response was lost; the service retries with the same key (a new CSR).
        let again = h.renew(&first, &key).unwrap();
        assert_eq!(again.serial, issued.serial, "{}", h.name);
        assert_eq!(again.certificate, issued.certificate);
        assert_eq!(h.cert_count(), 2);
        let (listed, _) = h.crl();
        assert!(listed.is_empty(), "nothing revoked");
    });
}

#[test]
fn a_second_renewal_with_another_key_revokes_the_lineage() {
    on_each_store(|h| {
        let first = h.enroll("api", None);
        let second = h.renewed(&first);
        let third = h.renewed(&second);
        // Someone else holds the key of `first` and renews it again.
        let e = h.renew(&first, &new_key()).unwrap_err();
        assert_eq!(e.code, "renewal_replayed", "{}: {e}", h.name);
        assert!(e.message.contains(&second.issued.serial), "{}", e.message);
        assert_eq!(h.cert_count(), 3, "the thief's certificate was not stored");
        let (listed, _) = h.crl();
        assert_eq!(
            listed,
            sorted(&[
                &first.issued.serial,
                &second.issued.serial,
                &third.issued.serial
            ]),
            "{}",
            h.name
        );
        // The legitimate newest certificate is revoked too: it renews no more.
        let e = h.renew(&third, &new_key()).unwrap_err();
        assert_eq!(e.code, "certificate_revoked", "{e}");
        let reasons: Vec<Option<String>> = h
            .store
            .list_certs()
            .unwrap()
            .into_iter()
            .map(|c| c.revoke_reason)
            .collect();
        assert!(reasons
            .iter()
            .all(|r| r.as_deref() == Some("keyCompromise")));
    });
}

#[test]
fn a_renewal_with_the_presented_key_is_refused() {
    on_each_store(|h| {
        let first = h.enroll("api", None);
        let e = h
            .authority
            .renew(Some(first.der().as_ref()), &csr(&first.key), None)
            .unwrap_err();
        assert_eq!(e.code, "key_reused", "{}: {e}", h.name);
        assert_eq!(h.cert_count(), 1);
    });
}

#[test]
fn a_certificate_renews_until_the_second_it_expires() {
    on_each_store(|h| {
        let a = h.enroll("a", Some("10m"));
        let b = h.enroll("b", Some("10m"));
        let not_after = START + Duration::minutes(10);
        h.clock.set(not_after - Duration::seconds(1));
        let renewed: Holder = h.renewed(&a);
        assert_eq!(
            renewed.issued.expires_at,
            not_after - Duration::seconds(1) + Duration::hours(1)
        );
        h.clock.set(not_after);
        let e = h.renew(&b, &new_key()).unwrap_err();
        assert_eq!(e.code, "certificate_expired", "{}: {e}", h.name);
        assert!(e.message.contains("2026-03-01T12:10:00Z"), "{}", e.message);
        assert_eq!(h.cert_count(), 3);
    });
}

#[test]
fn renewal_needs_a_certificate_this_ca_recorded() {
    on_each_store(|h| {
        let e = h.authority.renew(None, &csr(&new_key()), None).unwrap_err();
        assert_eq!(e.code, "client_certificate_required", "{}", h.name);
        // A certificate of another authority (same root key material is never shared): the
        // serial is unknown here.
        let other = crate::harness::Harness::memory();
        let foreign = other.enroll("api", None);
        let e = h.renew(&foreign, &new_key()).unwrap_err();
        assert_eq!(e.code, "certificate_unknown", "{}: {e}", h.name);
        assert_eq!(h.cert_count(), 0);
    });
}
