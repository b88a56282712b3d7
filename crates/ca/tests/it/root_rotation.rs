//! The store side of root rotation (`mtls_ca::root_rotation`) on every store, PostgreSQL
//! included: each step is a compare-and-swap of one metadata value together with its audit
//! entry (a stale step changes nothing and audits nothing), and `retire` finds the valid
//! certificates still signed by the old root.

use mtls_ca::root_rotation::chaining_to;
use mtls_ca::store::{CertRecord, IssueKind};
use serde_json::json;

use crate::harness::{full_id, on_each_store};

const KEY: &str = "root_rotation";

fn entries(h: &crate::harness::Harness) -> u64 {
    match h.store.verify_audit().unwrap() {
        mtls_ca::store::AuditCheck::Intact { entries, .. } => entries,
        other => panic!("{}: {other:?}", h.name),
    }
}

#[test]
fn a_rotation_step_swaps_only_the_state_it_read_and_audits_with_it() {
    on_each_store(|h| {
        let before = entries(h);
        let detail = json!({"old_root": "aa", "new_root": "bb"});
        assert!(h
            .store
            .swap_meta(KEY, None, "rotated", "root_rotate", &detail)
            .unwrap());
        // A second `rotate` that read "no rotation" loses: nothing written, nothing audited.
        assert!(!h
            .store
            .swap_meta(KEY, None, "rotated-again", "root_rotate", &detail)
            .unwrap());
        // A step that read a state that is no longer there loses too.
        assert!(!h
            .store
            .swap_meta(KEY, Some("stale"), "activated", "root_activate", &detail)
            .unwrap());
        assert_eq!(
            h.store.get_meta(KEY).unwrap().as_deref(),
            Some("rotated"),
            "{}",
            h.name
        );
        assert_eq!(entries(h), before + 1, "{}", h.name);
        assert!(h
            .store
            .swap_meta(KEY, Some("rotated"), "activated", "root_activate", &detail)
            .unwrap());
        assert!(h
            .store
            .swap_meta(KEY, Some("activated"), "retired", "root_retire", &detail)
            .unwrap());
        assert_eq!(h.store.get_meta(KEY).unwrap().as_deref(), Some("retired"));
        // The replay (in `on_each_store`) accepts the three events.
        assert_eq!(entries(h), before + 3, "{}", h.name);
    });
}

#[test]
fn retire_is_blocked_by_each_valid_certificate_of_the_old_root_and_no_other() {
    on_each_store(|h| {
        let root = h.authority.ca().cert_pem();
        let web = h.enroll("web", None);
        let api = h.enroll("api", None);
        // The root's delegated OCSP responder is stored (and valid) but blocks nothing: it
        // only answers about the root's leaves, and a retired root answers nothing.
        let responder = pki::ocsp::DelegatedResponder::issue(
            &h.authority.ca(),
            h.now(),
            time::Duration::hours(4),
        )
        .unwrap();
        let der = responder.cert_der();
        let info = pki::CertInfo::from_der(der).unwrap();
        h.store
            .record_ocsp_responder(&CertRecord {
                serial: responder.serial_hex().to_string(),
                spiffe_id: String::new(),
                dns: Vec::new(),
                ips: Vec::new(),
                not_before: info.not_before,
                not_after: info.not_after,
                issued_at: h.now(),
                kind: IssueKind::OcspResponder,
                renewed_from: None,
                fingerprint: pki::sha256_hex(der),
                pem: pki::pem::encode("CERTIFICATE", der),
                revoked_at: None,
                revoke_reason: None,
            })
            .unwrap();
        let blocking = chaining_to(h.store.as_ref(), &root, h.now()).unwrap();
        let serials: Vec<&str> = blocking.iter().map(|b| b.serial.as_str()).collect();
        assert_eq!(blocking.len(), 2, "{}: {serials:?}", h.name);
        assert!(serials.contains(&web.issued.serial.as_str()));
        assert!(blocking.iter().any(|b| b.spiffe_id == full_id("api")));
        // Revoked: no longer blocking.
        h.store
            .revoke(&api.issued.serial, None, "test", h.now())
            .unwrap();
        let blocking = chaining_to(h.store.as_ref(), &root, h.now()).unwrap();
        assert_eq!(blocking.len(), 1, "{}", h.name);
        assert_eq!(blocking[0].serial, web.issued.serial);
        assert_eq!(blocking[0].not_after, web.issued.expires_at);
        // Another root signed none of them.
        let other = pki::CaMaterial::generate_root("Other Root", h.now()).unwrap();
        assert!(chaining_to(h.store.as_ref(), &other.cert_pem(), h.now())
            .unwrap()
            .is_empty());
        // Expired: no longer blocking.
        h.advance(web.issued.expires_at - h.now() + time::Duration::seconds(1));
        assert!(chaining_to(h.store.as_ref(), &root, h.now())
            .unwrap()
            .is_empty());
    });
}
