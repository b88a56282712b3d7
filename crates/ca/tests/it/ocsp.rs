//! The OCSP responder's signer (`--ocsp-responder`): by default the CA key; delegated, a
//! responder certificate the authority issues itself and replaces before any answer it signs
//! could outlive it. On the manual clock, at the exact second of the renewal.

use std::process::Command;

use mtls_ca::authority::{Authority, OcspResponderMode};
use pki::ocsp::{read_response, CertState, SignedAnswer};
use pki::CaMaterial;
use time::Duration;

use crate::harness::{config, Harness, START};

/// An OCSPRequest for serial 0x1234 of `root_pem`, made by OpenSSL; with a nonce (never
/// answered from the cache) or without.
fn request(root_pem: &str, nonce: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (root, req) = (dir.path().join("root.pem"), dir.path().join("req.der"));
    std::fs::write(&root, root_pem).unwrap();
    let out = Command::new("openssl")
        .args([
            "ocsp",
            if nonce { "-nonce" } else { "-no_nonce" },
            "-issuer",
        ])
        .arg(&root)
        .args(["-serial", "0x1234", "-reqout"])
        .arg(&req)
        .output()
        .expect("openssl must be installed for this test (Debian package openssl)");
    assert!(out.status.success(), "{out:?}");
    std::fs::read(&req).unwrap()
}

/// The authority, and requests without and with a nonce.
fn authority(h: &Harness, mode: OcspResponderMode) -> (Authority, [Vec<u8>; 2]) {
    let ca = CaMaterial::generate_root("OCSP Test Root", START - Duration::days(1)).unwrap();
    let req = [
        request(&ca.cert_pem(), false),
        request(&ca.cert_pem(), true),
    ];
    let authority = Authority::new(ca, vec![], h.store.clone(), config(), h.clock.clone())
        .with_crl_validity(Duration::hours(1))
        .with_ocsp_responder(mode)
        .unwrap();
    (authority, req)
}

fn answer(authority: &Authority, req: &[u8]) -> SignedAnswer {
    let summary = read_response(&authority.ocsp(req)).unwrap();
    assert_eq!(summary.status, "successful");
    let answer = summary.answer.unwrap();
    assert_eq!(answer.answers[0].state, CertState::Unknown);
    answer
}

#[test]
fn by_default_the_ca_key_signs_and_no_certificate_goes_along() {
    let h = Harness::memory();
    let (authority, req) = authority(&h, OcspResponderMode::Ca);
    let a = answer(&authority, &req[0]);
    assert_eq!((a.certificates, a.signers.len()), (0, 0));
    assert!(authority.ocsp_responder_cert().is_none());
}

#[test]
fn a_delegated_responder_is_replaced_before_its_answers_could_outlive_it() {
    let h = Harness::memory();
    let (authority, [cached, fresh]) = authority(&h, OcspResponderMode::Delegated);
    let first = answer(&authority, &cached);
    let signer = first.signers[0].clone();
    assert!(signer.is_responder && signer.ocsp_signing && signer.nocheck);
    // Issued at start for four CRL periods.
    assert_eq!(signer.not_after, START + Duration::hours(4));
    let cert = authority.ocsp_responder_cert().unwrap();
    assert_eq!(
        pki::CertInfo::from_der(&cert).unwrap().serial_hex,
        signer.serial_hex
    );
    // One second before two periods remain: still the same responder.
    h.advance(Duration::hours(2) - Duration::seconds(1));
    let before = answer(&authority, &fresh);
    assert_eq!(before.signers[0].serial_hex, signer.serial_hex);
    assert!(before.produced_at > first.produced_at);
    // At two periods left: a newly signed answer comes from a new responder...
    h.advance(Duration::seconds(1));
    let after = answer(&authority, &fresh);
    let renewed = &after.signers[0];
    assert_ne!(renewed.serial_hex, signer.serial_hex);
    assert_eq!(renewed.not_after, START + Duration::hours(6));
    assert_eq!(
        authority
            .ocsp_responder_cert()
            .map(|d| pki::CertInfo::from_der(&d).unwrap().serial_hex),
        Some(renewed.serial_hex.clone())
    );
    // ... and an answer cached from before (still valid) keeps its signer; every answer ends
    // before its signer's certificate does.
    let kept = answer(&authority, &cached);
    for a in [&first, &before, &after, &kept] {
        assert!(a.answers[0].next_update.unwrap() <= a.signers[0].not_after);
    }
}

/// An OCSPRequest (OpenSSL's, no nonce) for `serial_hex` under the issuer `root_pem`.
fn request_for(root_pem: &str, serial_hex: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (root, req) = (dir.path().join("root.pem"), dir.path().join("req.der"));
    std::fs::write(&root, root_pem).unwrap();
    let out = Command::new("openssl")
        .args(["ocsp", "-no_nonce", "-issuer"])
        .arg(&root)
        .args(["-serial", &format!("0x{serial_hex}"), "-reqout"])
        .arg(&req)
        .output()
        .expect("openssl must be installed for this test (Debian package openssl)");
    assert!(out.status.success(), "{out:?}");
    std::fs::read(&req).unwrap()
}

/// After a root switch (`root activate`) the authority answers for the leaves of both roots:
/// a question naming the old root is signed by the old root as before the switch, the same
/// serial asked under the new root is `unknown` there (the new root never issued it), and a
/// root the CA does not serve gets `unauthorized`.
#[test]
fn after_a_root_switch_each_root_answers_for_its_own_leaves() {
    let h = Harness::memory();
    let old = h.authority.ca();
    let leaf = h.enroll("web", None);
    let serial = leaf.issued.serial.clone();
    let under_old = request_for(&old.cert_pem(), &serial);
    let before = read_response(&h.authority.ocsp(&under_old)).unwrap();
    let before = before.answer.unwrap();
    assert_eq!(before.answers[0].state, CertState::Good);

    let new = std::sync::Arc::new(CaMaterial::generate_root("New Root", START).unwrap());
    h.authority.switch_roots(mtls_ca::authority::RootSet {
        active: new.clone(),
        previous: Some(old.clone()),
        bundle_extra: vec![old.cert_der().clone()],
    });
    let after = read_response(&h.authority.ocsp(&under_old)).unwrap();
    assert_eq!(after.status, "successful");
    let after = after.answer.unwrap();
    assert_eq!(after.answers[0].state, CertState::Good);
    assert_eq!(after.responder, before.responder, "signed by the old root");

    let under_new = read_response(&h.authority.ocsp(&request_for(&new.cert_pem(), &serial)))
        .unwrap()
        .answer
        .unwrap();
    assert_eq!(under_new.answers[0].state, CertState::Unknown);
    assert_ne!(
        under_new.responder, before.responder,
        "signed by the new root"
    );

    let third = CaMaterial::generate_root("Third Root", START).unwrap();
    let foreign = read_response(&h.authority.ocsp(&request_for(&third.cert_pem(), &serial)));
    assert_eq!(foreign.unwrap().status, "unauthorized");
}
