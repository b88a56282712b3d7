//! `mtls-ca root rotate|activate|retire` on a real CA and data directory: the steps refuse to
//! run out of order, the running CA's bundle, CRLs and OCSP answers follow each step without a
//! restart, `retire` lists the certificates still chaining to the old root, and every step is
//! in the audit chain. (The same sequence under load with running services:
//! e2e/root_rotation.rs; with two replicas: ca_replicas/root_rotation.rs.)
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::common::{admin_in, client, csr, sign, sign_body, Ca, Identity};

const SERVICE: &str = "spiffe://mesh.local/service/api";

fn admin(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = admin_in(dir, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs an admin command that must fail; returns its stderr, which must contain `expected`.
fn refused(dir: &Path, args: &[&str], expected: &str) -> String {
    let (ok, out, err) = admin(dir, args);
    assert!(
        !ok,
        "`{}` should have been refused:\n{out}{err}",
        args.join(" ")
    );
    assert!(err.contains(expected), "`{}`:\n{err}", args.join(" "));
    err
}

fn succeeds(dir: &Path, args: &[&str]) -> String {
    let (ok, out, err) = admin(dir, args);
    assert!(ok, "`{}` failed:\n{out}{err}", args.join(" "));
    out
}

/// Every root of the data directory (root.crt and those `root rotate` made): the CA's API
/// certificate comes from whichever is active.
fn all_roots(ca: &Ca) -> Vec<u8> {
    let mut pem = ca.root_pem();
    if let Ok(entries) = std::fs::read_dir(ca.dir.join("roots")) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "crt") {
                pem.extend(std::fs::read(path).unwrap());
            }
        }
    }
    pem
}

async fn enroll(ca: &Ca, id: &str) -> Identity {
    let token = ca.token(id, &[]);
    let (key, csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (status, v) = sign(
        &client(&all_roots(ca), None),
        ca,
        &token,
        &sign_body(&csr, id, None),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    Identity {
        cert_pem: v["certificate"].as_str().unwrap().to_string(),
        key_pem: key.serialize_pem(),
    }
}

async fn renew(ca: &Ca, holder: &Identity) -> Identity {
    let (key, csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let resp = client(&all_roots(ca), Some(holder))
        .post(ca.url("/api/v1/renew"))
        .json(&serde_json::json!({ "csr": csr }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    Identity {
        cert_pem: v["certificate"].as_str().unwrap().to_string(),
        key_pem: key.serialize_pem(),
    }
}

async fn get(ca: &Ca, path: &str) -> (u16, Vec<u8>) {
    let resp = client(&all_roots(ca), None)
        .get(ca.url(path))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

fn certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap())
        .collect()
}

fn self_signed(certs: &[CertificateDer<'static>]) -> Vec<String> {
    certs
        .iter()
        .filter(|c| pki::vouch::is_self_signed(c))
        .map(|c| pki::sha256_hex(c))
        .collect()
}

fn serial_of(identity: &Identity) -> String {
    let der = certs(identity.cert_pem.as_bytes()).remove(0);
    pki::CertInfo::from_der(&der).unwrap().serial_hex
}

/// `openssl crl` checks the CRL's signature against `issuer_pem`; true when it verifies.
fn crl_verifies(dir: &Path, crl_der: &[u8], issuer_pem: &[u8], name: &str) -> (bool, String) {
    let (crl, ca) = (
        dir.join(format!("{name}.crl")),
        dir.join(format!("{name}-ca.pem")),
    );
    std::fs::write(&crl, crl_der).unwrap();
    std::fs::write(&ca, issuer_pem).unwrap();
    let out = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&crl)
        .arg("-CAfile")
        .arg(&ca)
        .output()
        .expect("openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("verify OK"), text)
}

fn pem(der: &[u8]) -> Vec<u8> {
    pki::pem::encode("CERTIFICATE", der).into_bytes()
}

/// How long a running CA may take to follow a rotation step (it reads the state every second).
const FOLLOW: std::time::Duration = std::time::Duration::from_secs(15);

/// Waits until the running CA logs that it serves `phase` (after `mark`); returns the line.
fn follows(ca: &Ca, mark: usize, phase: &str) -> String {
    ca.proc
        .try_wait_for_after(
            mark,
            |l| l.contains(&format!("now serving phase {phase}")),
            FOLLOW,
        )
        .unwrap_or_else(|| panic!("the CA never switched to {phase}:\n{}", ca.logs()))
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_activate_retire_in_order_with_the_bundle_crls_and_audit_following() {
    let ca = Ca::start(&[]);
    let dir = ca.dir.clone();
    let old_fp = ca.fingerprint.clone();
    let old_root = ca.root_pem();

    // Out of order before any rotation.
    refused(
        &dir,
        &["root", "activate"],
        "run `mtls-ca root rotate` first",
    );
    refused(&dir, &["root", "retire"], "run `mtls-ca root rotate` first");
    assert!(succeeds(&dir, &["root", "status"]).contains("phase: none"));

    // A service holding a leaf of the old root.
    let holder = enroll(&ca, SERVICE).await;
    let old_leaf_serial = serial_of(&holder);

    // Rotate while no CA runs: nothing publishes the new root, so `activate` must wait.
    let dir = ca.stop();
    let out = succeeds(&dir, &["root", "rotate"]);
    let new_fp = out
        .trim()
        .strip_prefix("new root fingerprint (SHA-256): ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert_ne!(new_fp, old_fp);
    let key = dir.join("roots").join(format!("{new_fp}.key"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    refused(&dir, &["root", "rotate"], "a root rotation is pending");
    refused(
        &dir,
        &["root", "retire"],
        "run `mtls-ca root activate` first",
    );
    refused(
        &dir,
        &["root", "activate"],
        "no CA has published the new root",
    );

    // A starting CA publishes both roots and the cross-certificates both ways.
    let ca = Ca::start_in(&dir, &[]);
    assert_eq!(ca.fingerprint, old_fp, "the old root still signs");
    let (status, bundle) = get(&ca, "/api/v1/bundle").await;
    assert_eq!(status, 200);
    let bundle = certs(&bundle);
    assert_eq!(self_signed(&bundle), vec![old_fp.clone(), new_fp.clone()]);
    let new_root = bundle
        .iter()
        .find(|c| pki::sha256_hex(c) == new_fp)
        .unwrap()
        .clone();
    let old_root_der = certs(&old_root).remove(0);
    let crosses: Vec<_> = bundle
        .iter()
        .filter(|c| !pki::vouch::is_self_signed(c))
        .collect();
    assert_eq!(crosses.len(), 2, "a cross-certificate each way");
    let now = time::OffsetDateTime::now_utc();
    assert!(crosses
        .iter()
        .any(|c| pki::vouch::same_subject_and_key(c, &new_root)
            && pki::vouch::check_cross_certificate(c, [old_root_der.as_ref()], now).is_ok()));
    assert!(crosses
        .iter()
        .any(|c| pki::vouch::same_subject_and_key(c, &old_root_der)
            && pki::vouch::check_cross_certificate(c, [new_root.as_ref()], now).is_ok()));
    let (status, spiffe) = get(&ca, "/api/v1/bundle/spiffe").await;
    assert_eq!(status, 200);
    let spiffe: serde_json::Value = serde_json::from_slice(&spiffe).unwrap();
    let x509_keys = spiffe["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["use"] == "x509-svid")
        .count();
    assert_eq!(x509_keys, 2, "{spiffe}");

    // Published only just now: the default overlap refuses, --force overrides.
    refused(&dir, &["root", "activate"], "has been published only since");
    let mark = ca.proc.mark();
    succeeds(&dir, &["root", "activate", "--force"]);
    refused(&dir, &["root", "activate", "--force"], "is already active");
    refused(&dir, &["root", "rotate"], "a root rotation is pending");

    // The running CA switches: the new root signs; the old root's leaf still renews and is
    // still revocable through the old root's own CRL.
    let line = follows(&ca, mark, "Activated");
    assert!(line.contains(&new_fp), "{line}");
    let renewed = renew(&ca, &holder).await;
    let renewed_der = certs(renewed.cert_pem.as_bytes()).remove(0);
    assert!(pki::intermediate::check_issued_by(&renewed_der, &new_root).is_ok());

    // New enrolments get the new root too.
    let fresh = enroll(&ca, "spiffe://mesh.local/service/fresh").await;
    let fresh_der = certs(fresh.cert_pem.as_bytes()).remove(0);
    assert!(pki::intermediate::check_issued_by(&fresh_der, &new_root).is_ok());

    // The old leaf (renewed, so still valid until it expires) blocks retirement.
    let err = refused(
        &dir,
        &["root", "retire"],
        "valid certificate(s) still chain to the old root",
    );
    assert!(err.contains(&old_leaf_serial), "{err}");
    assert!(err.contains(SERVICE), "{err}");
    assert!(err.contains("not after"), "{err}");
    let status_out = succeeds(&dir, &["root", "status"]);
    assert!(status_out.contains(&old_leaf_serial), "{status_out}");

    // One CRL per root: each verifies with its own root only.
    let work = tempfile::tempdir().unwrap();
    let (status, old_crl) = get(&ca, &format!("/api/v1/crl?issuer={old_fp}")).await;
    assert_eq!(status, 200);
    let (status, new_crl) = get(&ca, &format!("/api/v1/crl?issuer={new_fp}")).await;
    assert_eq!(status, 200);
    let (status, default_crl) = get(&ca, "/api/v1/crl").await;
    assert_eq!(status, 200);
    let (ok, text) = crl_verifies(work.path(), &old_crl, &old_root, "old");
    assert!(ok, "{text}");
    let (ok, text) = crl_verifies(work.path(), &new_crl, &pem(&new_root), "new");
    assert!(ok, "{text}");
    let (ok, _) = crl_verifies(work.path(), &old_crl, &pem(&new_root), "old-by-new");
    assert!(!ok, "the old root's CRL must not verify with the new root");
    let (ok, text) = crl_verifies(work.path(), &default_crl, &pem(&new_root), "default");
    assert!(ok, "GET /api/v1/crl is the active root's: {text}");
    let (status, _) = get(&ca, &format!("/api/v1/crl?issuer={}", "ab".repeat(32))).await;
    assert_eq!(status, 404, "no CRL as an unknown root");

    // Revoking the old leaf lists it on the old root's CRL and unblocks retirement.
    let (ok, out, err) = admin(&dir, &["revoke", "--serial", &old_leaf_serial]);
    assert!(ok, "{out}{err}");
    let (_, old_crl) = get(&ca, &format!("/api/v1/crl?issuer={old_fp}")).await;
    let (ok, text) = crl_verifies(work.path(), &old_crl, &old_root, "old-after");
    assert!(ok, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .replace(':', "")
            .contains(&old_leaf_serial.to_ascii_lowercase()),
        "the revoked old-root leaf is on the old root's CRL:\n{text}"
    );
    let mark = ca.proc.mark();
    succeeds(&dir, &["root", "retire"]);
    refused(&dir, &["root", "retire"], "was already retired");
    refused(&dir, &["root", "activate"], "no root rotation to activate");

    // The running CA publishes only the new root; the old root signs nothing any more.
    follows(&ca, mark, "Retired");
    let (_, bundle) = get(&ca, "/api/v1/bundle").await;
    assert_eq!(self_signed(&certs(&bundle)), vec![new_fp.clone()]);
    assert_eq!(certs(&bundle).len(), 1);
    let (status, _) = get(&ca, &format!("/api/v1/crl?issuer={old_fp}")).await;
    assert_eq!(status, 404);

    // So does a CA starting on the directory.
    let dir = ca.stop();
    let ca = Ca::start_in(&dir, &[]);
    assert_eq!(ca.fingerprint, new_fp);

    // Every step is in the audit chain, and the chain still replays.
    let (ok, out, err) = admin(&dir, &["audit", "verify"]);
    assert!(ok, "{out}{err}");
    let db = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
    let events: Vec<String> = db
        .prepare("SELECT event FROM audit WHERE event LIKE 'root_%' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(events, ["root_rotate", "root_activate", "root_retire"]);

    // A second rotation may start once the first is retired.
    let out = succeeds(&dir, &["root", "rotate"]);
    assert!(out.contains("new root fingerprint"), "{out}");
}

/// After `activate` the running CA answers OCSP for the leaves of both roots, each answer
/// signed by the root the request names: `openssl ocsp -issuer old-root` verifies `good` and
/// then `revoked` for a leaf of the old root, `-issuer new-root` verifies a leaf of the new
/// one, and a CertID naming no served root is `unauthorized`. After `retire` the old root is
/// not answered for any more.
#[tokio::test(flavor = "multi_thread")]
async fn after_activate_ocsp_answers_for_each_root_are_signed_by_that_root() {
    let ca = Ca::start(&[]);
    let dir = ca.dir.clone();
    let work = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &[u8]| {
        let path = work.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let old_root = write("old.crt", &ca.root_pem());
    let old_leaf = enroll(&ca, "spiffe://mesh.local/service/old").await;
    let old_leaf_path = write("old-leaf.crt", old_leaf.cert_pem.as_bytes());

    let mark = ca.proc.mark();
    let out = succeeds(&dir, &["root", "rotate"]);
    let new_fp = out
        .trim()
        .strip_prefix("new root fingerprint (SHA-256): ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    follows(&ca, mark, "Rotated");
    let mark = ca.proc.mark();
    succeeds(&dir, &["root", "activate", "--force"]);
    follows(&ca, mark, "Activated");
    let new_root = write(
        "new.crt",
        &std::fs::read(dir.join("roots").join(format!("{new_fp}.crt"))).unwrap(),
    );
    let new_leaf = enroll(&ca, "spiffe://mesh.local/service/new").await;
    let new_leaf_path = write("new-leaf.crt", new_leaf.cert_pem.as_bytes());

    let ocsp = |issuer: &Path, cert: &Path| {
        let (ok, out, err) = super::common::run(
            Command::new("openssl")
                .arg("ocsp")
                .arg("-issuer")
                .arg(issuer)
                .arg("-CAfile")
                .arg(issuer)
                .arg("-cert")
                .arg(cert)
                .args(["-url", &ca.url("/ocsp")]),
        );
        (ok, out + &err)
    };
    let (ok, out) = ocsp(&old_root, &old_leaf_path);
    assert!(ok, "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("old-leaf.crt: good"), "{out}");
    let (ok, out) = ocsp(&new_root, &new_leaf_path);
    assert!(ok, "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("new-leaf.crt: good"), "{out}");
    // The old leaf with the new root as issuer: openssl hashes the leaf's issuer name (the old
    // root's) with the new root's key, a CertID naming no root this CA serves.
    let (_, out) = ocsp(&new_root, &old_leaf_path);
    assert!(out.contains("unauthorized"), "{out}");

    let (ok, out, err) = admin(
        &dir,
        &[
            "revoke",
            "--reason",
            "keyCompromise",
            "--serial",
            &serial_of(&old_leaf),
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out) = ocsp(&old_root, &old_leaf_path);
    assert!(ok, "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("old-leaf.crt: revoked"), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");

    // Retired: the old root's certificates are no longer answered for.
    let mark = ca.proc.mark();
    succeeds(&dir, &["root", "retire"]);
    follows(&ca, mark, "Retired");
    let (_, out) = ocsp(&old_root, &old_leaf_path);
    assert!(out.contains("unauthorized"), "{out}");
    let (ok, out) = ocsp(&new_root, &new_leaf_path);
    assert!(ok && out.contains("new-leaf.crt: good"), "{out}");
}

#[test]
fn a_two_tier_ca_is_refused_with_a_pointer_to_the_ceremony() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let offline = tmp.path().join("offline");
    let pass = tmp.path().join("pass");
    std::fs::write(&pass, "a passphrase of some length\n").unwrap();
    let (ok, out, err) = admin(
        &dir,
        &[
            "init",
            "--offline-root",
            &offline.display().to_string(),
            "--passphrase-file",
            &pass.display().to_string(),
        ],
    );
    assert!(ok, "{out}{err}");
    for step in ["rotate", "activate", "retire"] {
        let err = refused(&dir, &["root", step], "works on single-tier CAs only");
        assert!(err.contains("Root rotation of a two-tier CA"), "{err}");
    }
    assert!(!dir.join("roots").exists(), "nothing made");
}
