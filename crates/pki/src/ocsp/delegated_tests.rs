//! Answers signed by a delegated responder: their shape, and OpenSSL's verdict on them (accepted
//! with the root as trust anchor or the responder as VA; refused when the responder has
//! expired or lacks id-kp-OCSPSigning, which proves the check can fail).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_ASN1};
use time::Duration;

use super::responder::ResponderProfile;
use super::tests::{ca, cert_id, request};
use super::*;

const SERIAL: &[u8] = &[0x12, 0x34];

fn answer(ca: &CaMaterial, responder: &DelegatedResponder, now: OffsetDateTime) -> Vec<u8> {
    let query = read_request(ca, &request(vec![cert_id(ca, SHA1, SERIAL)], None)).unwrap();
    sign_response(
        Signer::Delegated(responder),
        &query,
        &[CertState::Good],
        now,
        now + Duration::hours(1),
    )
    .unwrap()
}

#[test]
fn a_delegated_answer_names_and_carries_its_responder_and_ends_before_it() {
    let ca = ca();
    let now =
        OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    // A responder with 30 minutes left: the answer's nextUpdate is cut to its NotAfter.
    let responder = DelegatedResponder::issue(&ca, now, Duration::minutes(30)).unwrap();
    let der = answer(&ca, &responder, now);

    let response = OcspResponse::from_der(&der).unwrap();
    let bytes = response.response_bytes.unwrap();
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
    let certs = basic.certs.as_ref().unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].to_der().unwrap(), responder.cert_der());
    // Signed by the responder's key, not the CA's.
    let (_, cert) = X509Certificate::from_der(responder.cert_der()).unwrap();
    let key = &cert.tbs_certificate.subject_pki.subject_public_key.data;
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, key.to_vec())
        .verify(
            &basic.tbs_response_data.to_der().unwrap(),
            basic.signature.raw_bytes(),
        )
        .expect("signed by the delegated responder");
    assert_eq!(
        basic.tbs_response_data.responder_id,
        ResponderId::ByKey(
            OctetString::new(
                digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, key)
                    .as_ref()
                    .to_vec()
            )
            .unwrap()
        )
    );

    let read = read_response(&der).unwrap().answer.unwrap();
    assert_eq!(read.certificates, 1);
    let signer = &read.signers[0];
    assert!(signer.is_responder && signer.ocsp_signing && signer.nocheck);
    assert_eq!(signer.serial_hex, responder.serial_hex());
    assert_eq!(signer.subject, "O=mtls-mesh, CN=mtls-mesh OCSP responder");
    assert_eq!(signer.issuer, "O=mtls-mesh, CN=ocsp test CA");
    assert_eq!(signer.not_after, now + Duration::minutes(30));
    assert_eq!(read.answers[0].next_update, Some(responder.not_after()));
}

/// `openssl ocsp -respin` on `der` for serial 0x1234, trusting `trust` (`-CAfile ROOT` or
/// `-VAfile RESPONDER`); (verified, output).
fn openssl_verdict(
    dir: &Path,
    ca: &CaMaterial,
    der: &[u8],
    trust: &str,
    anchor: &[u8],
) -> (bool, String) {
    let (root, anchor_path, resp) = (
        dir.join("root.pem"),
        dir.join("anchor.pem"),
        dir.join("resp.der"),
    );
    std::fs::write(&root, ca.cert_pem()).unwrap();
    std::fs::write(&anchor_path, anchor).unwrap();
    std::fs::write(&resp, der).unwrap();
    let out = Command::new("openssl")
        .args(["ocsp", "-no_nonce", "-issuer"])
        .arg(&root)
        // After -issuer: openssl builds the CertID from the issuer named before it.
        .args(["-serial", "0x1234"])
        .arg("-respin")
        .arg(&resp)
        .arg(trust)
        .arg(&anchor_path)
        .output()
        .expect("openssl must be installed for this test (Debian package openssl)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let verified = out.status.success() && text.contains("Response verify OK");
    (verified, text)
}

#[test]
fn openssl_accepts_a_delegated_answer_and_refuses_an_expired_or_unfit_responder() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let root_pem = ca.cert_pem().into_bytes();
    let now = OffsetDateTime::now_utc();

    let fit = DelegatedResponder::issue(&ca, now, Duration::hours(4)).unwrap();
    let der = answer(&ca, &fit, now);
    let (ok, text) = openssl_verdict(dir.path(), &ca, &der, "-CAfile", &root_pem);
    assert!(ok && text.contains("0x1234: good"), "{text}");
    let responder_pem = crate::pem::encode("CERTIFICATE", fit.cert_der());
    let (ok, text) = openssl_verdict(dir.path(), &ca, &der, "-VAfile", responder_pem.as_bytes());
    assert!(ok && text.contains("0x1234: good"), "{text}");

    // Expired an hour ago (the answer was signed while it was valid); and issued by the CA,
    // valid, but not for OCSP signing.
    let then = now - Duration::hours(3);
    for (what, lifetime, ocsp_signing, at, refusal) in [
        (
            "an expired responder",
            2,
            true,
            then,
            "certificate has expired",
        ),
        (
            "a responder without id-kp-OCSPSigning",
            4,
            false,
            now,
            "missing ocspsigning usage",
        ),
    ] {
        let responder = ResponderProfile {
            lifetime: Duration::hours(lifetime),
            ocsp_signing,
        }
        .issue(&ca, at)
        .unwrap();
        let der = answer(&ca, &responder, at);
        let (ok, text) = openssl_verdict(dir.path(), &ca, &der, "-CAfile", &root_pem);
        assert!(!ok, "{what} was accepted: {text}");
        assert!(text.to_lowercase().contains(refusal), "{what}: {text}");
    }
}
