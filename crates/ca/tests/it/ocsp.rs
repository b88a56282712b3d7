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
