//! The delegated OCSP responder certificate (`--ocsp-responder delegated`, docs/ca-api.md
//! "OCSP") is stored like every certificate the CA signs: `list` shows it, `audit verify`
//! accounts for it, and revoking it makes the CA sign with a new one.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;

use super::common::*;

/// Asks `openssl ocsp` about `leaf`, trusting the root only; returns the verified answer's
/// text (`-resp_text`: it holds the enclosed responder certificate as PEM).
fn ask(ca: &Ca, dir: &Path, leaf: &Path) -> String {
    let root = dir.join("root.pem");
    let (ok, out, err) = run(Command::new("openssl")
        .arg("ocsp")
        .arg("-issuer")
        .arg(&root)
        .arg("-CAfile")
        .arg(&root)
        .args(["-url", &ca.url("/ocsp"), "-resp_text", "-cert"])
        .arg(leaf));
    let text = out + &err;
    assert!(ok, "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains(": good"), "{text}");
    text
}

/// The responder certificate enclosed in an answer's text, written to `file`.
fn enclosed_responder(text: &str, file: &Path) -> String {
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    std::fs::write(file, &text[begin..end]).unwrap();
    let (ok, out, err) = run(Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-serial",
            "-fingerprint",
            "-sha256",
            "-in",
        ])
        .arg(file));
    assert!(ok, "{err}");
    out
}

/// The `ocsp-responder` rows of `mtls-ca list --format json`.
fn responder_rows(ca: &Ca) -> Vec<serde_json::Value> {
    let out = ca.admin(&["list", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "ocsp-responder")
        .cloned()
        .collect()
}

fn audit_verifies(ca: &Ca) {
    let out = ca.admin(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// "serial=4A..." and "sha256 Fingerprint=AB:CD..." as the store spells them.
fn serial_and_fingerprint(x509_out: &str) -> (String, String) {
    let field = |name: &str| {
        x509_out
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .replace(':', "")
            .to_lowercase()
    };
    (field("serial="), field("sha256 Fingerprint="))
}

#[tokio::test]
async fn the_delegated_responder_is_listed_audited_and_replaced_once_revoked() {
    let ca = Ca::start(&["--ocsp-responder", "delegated", "--crl-validity", "1h"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.pem"), ca.root_pem()).unwrap();
    let (_, v) = enroll(&ca, "spiffe://mesh.local/service/svc").await;
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, v["certificate"].as_str().unwrap()).unwrap();

    let text = ask(&ca, dir.path(), &leaf);
    let first_file = dir.path().join("responder1.pem");
    let (serial, fingerprint) = serial_and_fingerprint(&enclosed_responder(&text, &first_file));

    // Stored: the row is the certificate that signed the answer, with no SPIFFE ID.
    let rows = responder_rows(&ca);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["serial"], serial.as_str(), "{rows:?}");
    assert_eq!(rows[0]["fingerprint"], fingerprint.as_str(), "{rows:?}");
    assert_eq!(rows[0]["spiffe_id"], "", "{rows:?}");
    assert_eq!(rows[0]["status"], "valid", "{rows:?}");
    let out = ca.admin(&["list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&serial) && l.ends_with("(OCSP responder)")),
        "{listed}"
    );
    // Its chain verifies to the root, for OCSP signing.
    let (ok, out, err) = run(Command::new("openssl")
        .args([
            "verify",
            "-x509_strict",
            "-purpose",
            "ocsphelper",
            "-CAfile",
        ])
        .arg(dir.path().join("root.pem"))
        .arg(&first_file));
    assert!(ok, "{out}{err}");
    // The audit chain accounts for the row.
    audit_verifies(&ca);

    // Revoked: the next answer is signed by a new responder, stored too; the old one is
    // listed as revoked.
    let out = ca.admin(&["revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    assert!(out.status.success(), "{out:?}");
    let text = ask(&ca, dir.path(), &leaf);
    let (second, _) = serial_and_fingerprint(&enclosed_responder(
        &text,
        &dir.path().join("responder2.pem"),
    ));
    assert_ne!(second, serial, "the revoked responder signed again");
    let rows = responder_rows(&ca);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let status = |s: &str| {
        rows.iter()
            .find(|r| r["serial"] == s)
            .map(|r| r["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status(&serial).as_deref(), Some("revoked"), "{rows:?}");
    assert_eq!(status(&second).as_deref(), Some("valid"), "{rows:?}");
    audit_verifies(&ca);
}
