//! Revocation through the authority: with its lineage, authorised before anything is revealed,
//! and dated by the clock.

use time::Duration;

use crate::harness::{new_key, on_each_store, sorted, ADMIN, START};

#[test]
fn revoking_a_certificate_revokes_what_was_renewed_from_it() {
    on_each_store(|h| {
        let admin = h.enroll(ADMIN, None);
        let a = h.enroll("api", None);
        let b = h.renewed(&a);
        let c = h.renewed(&b);
        h.advance(Duration::minutes(1));
        let revoked = h
            .authority
            .revoke(
                Some(admin.der().as_ref()),
                &a.issued.serial,
                Some("superseded"),
            )
            .unwrap();
        assert_eq!(
            revoked,
            vec![
                a.issued.serial.clone(),
                b.issued.serial.clone(),
                c.issued.serial.clone()
            ],
            "{}: the named one first, then its renewals, nearest first",
            h.name
        );
        for serial in &revoked {
            let record = h.store.find_cert(serial).unwrap().unwrap();
            assert_eq!(record.revoked_at, Some(START + Duration::minutes(1)));
            assert_eq!(record.revoke_reason.as_deref(), Some("superseded"));
        }
        let (listed, _) = h.crl();
        assert_eq!(
            listed,
            sorted(&[&a.issued.serial, &b.issued.serial, &c.issued.serial])
        );
        let e = h
            .authority
            .revoke(Some(admin.der().as_ref()), &a.issued.serial, None)
            .unwrap_err();
        assert_eq!(e.code, "already_revoked", "{e}");
        let e = h.renew(&c, &new_key()).unwrap_err();
        assert_eq!(e.code, "certificate_revoked", "{e}");
    });
}

#[test]
fn a_holder_revokes_its_own_identity_only_and_learns_nothing_else() {
    on_each_store(|h| {
        let api = h.enroll("api", None);
        let renewed = h.renewed(&api);
        let other = h.enroll("other", None);
        let unknown = "4f00000000000000000000000000000000000001";
        let e1 = h
            .authority
            .revoke(Some(other.der().as_ref()), &api.issued.serial, None)
            .unwrap_err();
        let e2 = h
            .authority
            .revoke(Some(other.der().as_ref()), unknown, None)
            .unwrap_err();
        assert_eq!(
            (e1.code, e2.code),
            ("not_allowed", "not_allowed"),
            "{}",
            h.name
        );
        // The holder of a renewal may revoke the older certificate of its identity.
        let revoked = h
            .authority
            .revoke(Some(renewed.der().as_ref()), &api.issued.serial, None)
            .unwrap();
        assert_eq!(revoked.len(), 2, "{revoked:?}");
        let admin = h.enroll(ADMIN, None);
        let e = h
            .authority
            .revoke(Some(admin.der().as_ref()), unknown, None)
            .unwrap_err();
        assert_eq!(e.code, "unknown_serial", "the admin is told");
    });
}
