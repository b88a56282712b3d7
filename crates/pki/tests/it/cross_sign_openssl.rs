//! `CaMaterial::cross_sign` against roots we make and a root made by OpenSSL
//! (scripts/gen-root-ca.sh): the cross-certificate names the root's subject and public key byte
//! for byte, OpenSSL accepts it as signed by our root and as carrying the other root's name and
//! key, and `pki::vouch` accepts it.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;

use pki::vouch::{check_cross_certificate, is_self_signed, same_subject_and_key};
use pki::CaMaterial;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

fn script(name: &str) -> String {
    format!("{}/../../scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn subject_and_spki(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    (
        c.tbs_certificate.subject.as_raw().to_vec(),
        c.tbs_certificate.subject_pki.raw.to_vec(),
    )
}

fn write_pem(dir: &Path, name: &str, der: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pki::pem::encode("CERTIFICATE", der)).unwrap();
    path.display().to_string()
}

#[test]
fn cross_certificate_for_an_openssl_root_is_byte_exact_and_openssl_accepts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let other_dir = tmp.path().join("other");
    run(Command::new("bash")
        .arg(script("gen-root-ca.sh"))
        .arg(&other_dir)
        .args(["--cn", "Next Mesh Root", "--curve", "P-521"]));
    run(Command::new("bash")
        .arg(script("sign-client-cert.sh"))
        .arg(&other_dir)
        .args([
            "worker",
            "--spiffe-id",
            "spiffe://mesh.local/service/worker",
        ]));
    let other = pki::pem::parse_certificates(&std::fs::read(other_dir.join("ca.crt")).unwrap())
        .unwrap()
        .remove(0);

    let now = OffsetDateTime::now_utc();
    let ours = CaMaterial::generate_root("mtls-mesh Root CA", now).unwrap();
    let cross = ours.cross_sign(&other, now).unwrap();

    assert_eq!(subject_and_spki(&cross), subject_and_spki(&other));
    assert!(is_self_signed(&other) && !is_self_signed(&cross));
    assert!(same_subject_and_key(&cross, &other));
    check_cross_certificate(&cross, [ours.cert_der().as_ref()], now).unwrap();

    // OpenSSL agrees: the cross-certificate is signed by our root ...
    let our_root = write_pem(tmp.path(), "ours.crt", ours.cert_der());
    let cross_pem = write_pem(tmp.path(), "cross.crt", &cross);
    let out = run(Command::new("openssl").args([
        "verify",
        "-x509_strict",
        "-CAfile",
        &our_root,
        &cross_pem,
    ]));
    assert!(out.contains(": OK"), "{out}");
    // ... and it carries the other root's name and key: taken as the only trust anchor, it
    // verifies a leaf the other root issued. (Both roots are pathlen:0, so it vouches; it is
    // not meant as an intermediate below our root.)
    let leaf = other_dir.join("worker.crt").display().to_string();
    let out = run(Command::new("openssl").args([
        "verify",
        "-x509_strict",
        "-partial_chain",
        "-CAfile",
        &cross_pem,
        &leaf,
    ]));
    assert!(out.contains(": OK"), "{out}");
    // Control: our root alone does not verify that leaf.
    let out = Command::new("openssl")
        .args(["verify", "-CAfile", &our_root, &leaf])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn cross_certificate_for_one_of_our_roots_and_refusals() {
    let now = OffsetDateTime::now_utc();
    let ours = CaMaterial::generate_root("Root A", now).unwrap();
    let next = CaMaterial::generate_root("Root B", now).unwrap();
    let cross = ours.cross_sign(next.cert_der(), now).unwrap();
    assert_eq!(subject_and_spki(&cross), subject_and_spki(next.cert_der()));
    let (_, parsed) = X509Certificate::from_der(&cross).unwrap();
    assert!(parsed.is_ca());
    assert!(parsed.key_usage().unwrap().unwrap().value.key_cert_sign());
    assert_eq!(
        parsed.tbs_certificate.issuer.as_raw(),
        X509Certificate::from_der(ours.cert_der())
            .unwrap()
            .1
            .tbs_certificate
            .subject
            .as_raw()
    );
    // Never valid past either root.
    assert!(parsed.validity().not_after.to_datetime() <= next.not_after());

    let err = ours.cross_sign(b"not a certificate", now).unwrap_err();
    assert!(err.to_string().contains("cannot parse"), "{err}");
    let err = ours
        .cross_sign(next.cert_der(), now + time::Duration::days(4000))
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}
