//! The OCSP responder (docs/ca-api.md "OCSP") asked by the OpenSSL command-line client, which
//! checks the answer's signature against the root and its nonce against the request.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use rustls::pki_types::pem::PemObject;

use super::common::*;

struct Setup {
    ca: Ca,
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Setup {
    fn new(extra: &[&str]) -> Setup {
        let ca = Ca::start(extra);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root.pem");
        std::fs::write(&root, ca.root_pem()).unwrap();
        Setup { ca, dir, root }
    }

    /// Enrolls `name` and writes its certificate; returns the path and serial.
    async fn leaf(&self, name: &str) -> (PathBuf, String) {
        let (_, v) = enroll(&self.ca, &format!("spiffe://mesh.local/service/{name}")).await;
        let path = self.dir.path().join(format!("{name}.pem"));
        std::fs::write(&path, v["certificate"].as_str().unwrap()).unwrap();
        (path, v["serial"].as_str().unwrap().to_string())
    }

    /// `openssl ocsp -issuer ROOT -CAfile ROOT -url CA/ocsp ARGS...`: (success, stdout+stderr).
    fn ocsp(&self, args: &[&str]) -> (bool, String) {
        let (ok, out, err) = run(Command::new("openssl")
            .arg("ocsp")
            .arg("-issuer")
            .arg(&self.root)
            .arg("-CAfile")
            .arg(&self.root)
            .args(["-url", &self.ca.url("/ocsp")])
            .args(args));
        (ok, out + &err)
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `mtls-inspect show --format json FILE`.
fn inspect_json(file: &str) -> serde_json::Value {
    let (ok, shown, err) =
        run(Command::new(crate::programs::inspect()).args(["show", "--format", "json", file]));
    assert!(ok, "{err}");
    serde_json::from_str(&shown).unwrap()
}

/// Enrolls `good` and `revoked`, revokes the second (keyCompromise) and asks `openssl ocsp`
/// about both and the unknown serial 0x1234abcd, trusting the root only; checks the verified
/// answers and returns the good certificate's path, the answer's path and the revoked serial.
async fn good_revoked_unknown(t: &Setup) -> (PathBuf, String, String) {
    let (good, _) = t.leaf("good").await;
    let (revoked, serial) = t.leaf("revoked").await;
    let out =
        t.ca.admin(&["revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    assert!(out.status.success(), "{out:?}");

    let answer = t.path("answer.der");
    let (ok, text) = t.ocsp(&[
        "-cert",
        s(&good),
        "-cert",
        s(&revoked),
        "-serial",
        "0x1234abcd",
        "-respout",
        &answer,
    ]);
    assert!(ok, "{text}");
    // Signature checked against the root; a nonce is sent by default and a missing or
    // different one in the answer is reported ("WARNING: no nonce in response").
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(!text.to_lowercase().contains("nonce"), "{text}");
    assert!(text.contains(&format!("{}: good", s(&good))), "{text}");
    assert!(
        text.contains(&format!("{}: revoked", s(&revoked))),
        "{text}"
    );
    assert!(text.contains("Reason: keyCompromise"), "{text}");
    assert!(text.contains("0x1234abcd: unknown"), "{text}");
    assert!(text.contains("Next Update:"), "{text}");
    (good, answer, serial)
}

#[tokio::test]
async fn openssl_gets_good_revoked_and_unknown_signed_by_the_ca_with_its_nonce() {
    let t = Setup::new(&[]);
    let (_, answer, serial) = good_revoked_unknown(&t).await;

    // mtls-inspect explains the same answer.
    let v = inspect_json(&answer);
    let o = &v["objects"][0];
    assert_eq!(o["kind"], "ocsp_response");
    assert_eq!(o["status"], "successful");
    assert_eq!(o["signature_algorithm"]["name"], "ecdsa-with-SHA384");
    assert_eq!(
        o["nonce"].as_str().map(str::len),
        Some(32),
        "openssl's 16-octet nonce: {o}"
    );
    let answers: Vec<_> = o["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["serial_hex"].as_str().unwrap(),
                a["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(answers[1], (serial.as_str(), "revoked"));
    assert_eq!(answers[2], ("1234abcd", "unknown"));
    assert_eq!(answers[0].1, "good");
    assert_eq!(o["answers"][1]["reason"], "keyCompromise");
    let (ok, short, err) =
        run(Command::new(crate::programs::inspect()).args(["show", "--short", &answer]));
    assert!(ok, "{err}");
    assert!(short.contains("OCSP response | successful | "), "{short}");
    assert!(short.contains(&format!("{serial} revoked")), "{short}");
}

#[tokio::test]
async fn a_revocation_reaches_the_next_answer_although_answers_are_cached() {
    let t = Setup::new(&[]);
    let (leaf, serial) = t.leaf("svc").await;
    // Without a nonce the CA may serve the answer it signed before: twice the same bytes.
    let (first, second) = (t.path("first.der"), t.path("second.der"));
    for out in [&first, &second] {
        let (ok, text) = t.ocsp(&["-no_nonce", "-cert", s(&leaf), "-respout", out]);
        assert!(ok && text.contains(": good"), "{text}");
    }
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );

    let out = t.ca.admin(&["revoke", "--serial", &serial]);
    assert!(out.status.success(), "{out:?}");
    let (ok, text) = t.ocsp(&["-no_nonce", "-cert", s(&leaf)]);
    assert!(ok, "{text}");
    assert!(
        text.contains(": revoked"),
        "the cached 'good' outlived the revocation: {text}"
    );
}

#[tokio::test]
async fn get_and_post_give_the_same_answer() {
    let t = Setup::new(&[]);
    let (leaf, _) = t.leaf("svc").await;
    let req = t.path("req.der");
    let (ok, text) = t.ocsp(&["-no_nonce", "-cert", s(&leaf), "-reqout", &req]);
    assert!(ok, "{text}");
    let der = std::fs::read(&req).unwrap();
    let http = client(&t.ca.root_pem(), None);
    let posted = http
        .post(t.ca.url("/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(der.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(
        posted.headers()["content-type"],
        "application/ocsp-response"
    );
    let posted = posted.bytes().await.unwrap();
    // RFC 6960 A.1: the URL-encoded base64 of the DER request ('/' as %2F, '+' as %2B).
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(&der)
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D");
    let got = http
        .get(t.ca.url(&format!("/ocsp/{encoded}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap(), posted);
    // The answer verifies as one for this request.
    let resp = t.path("resp.der");
    std::fs::write(&resp, &posted).unwrap();
    let (ok, out, err) = run(Command::new("openssl")
        .args([
            "ocsp",
            "-no_nonce",
            "-reqin",
            &req,
            "-respin",
            &resp,
            "-CAfile",
        ])
        .arg(&t.root)
        .arg("-issuer")
        .arg(&t.root)
        .arg("-cert")
        .arg(&leaf));
    assert!(ok && (out.clone() + &err).contains(": good"), "{out}{err}");
}

#[tokio::test]
async fn tampered_and_foreign_requests_get_error_statuses_and_change_nothing() {
    let t = Setup::new(&[]);
    let (leaf, _) = t.leaf("svc").await;
    let req = t.path("req.der");
    let (ok, text) = t.ocsp(&["-cert", s(&leaf), "-reqout", &req]);
    assert!(ok, "{text}");
    let der = std::fs::read(&req).unwrap();

    // One bit of the issuer key hash flipped: no longer this CA's certificate.
    let issuer = std::fs::read(&t.root).unwrap();
    let hashes = issuer_hashes(&issuer);
    let at = find(&der, &hashes).expect("the SHA-1 issuer key hash is in the request");
    let mut foreign = der.clone();
    foreign[at] ^= 0x01;
    let foreign_path = t.path("foreign.der");
    std::fs::write(&foreign_path, &foreign).unwrap();
    let (_, text) = t.ocsp(&["-reqin", &foreign_path]);
    assert!(text.contains("unauthorized (6)"), "{text}");

    // Cut short (POST: openssl will not send what it cannot parse) and garbage over GET:
    // OCSPResponse { responseStatus malformedRequest(1) } in a 200 answer.
    let http = client(&t.ca.root_pem(), None);
    let truncated = http
        .post(t.ca.url("/ocsp"))
        .body(der[..der.len() - 3].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(truncated.status(), 200);
    let malformed: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x01];
    assert_eq!(&truncated.bytes().await.unwrap()[..], malformed);
    let got = http
        .get(t.ca.url("/ocsp/bm90IGFuIE9DU1AgcmVxdWVzdA=="))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(&got.bytes().await.unwrap()[..], malformed);
    // A GET path that is not base64 once percent-decoded: refused before any DER is read.
    let got = http
        .get(t.ca.url("/ocsp/not%20base64%21"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(&got.bytes().await.unwrap()[..], malformed);

    // Refusals are counted, and nothing was signed for them.
    let metrics = client(&t.ca.root_pem(), None)
        .get(t.ca.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mtls_ca_rejected_total{reason=\"ocsp_unauthorized\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mtls_ca_rejected_total{reason=\"ocsp_malformed\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mtls_ca_ocsp_answers_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn with_ocsp_url_every_certificate_names_the_responder() {
    let t = Setup::new(&["--ocsp-url", "https://ca.internal:8443/ocsp"]);
    let (leaf, _) = t.leaf("svc").await;
    let (ok, text, err) = run(Command::new("openssl")
        .args(["x509", "-noout", "-ocsp_uri", "-in"])
        .arg(&leaf));
    assert!(ok, "{err}");
    assert_eq!(text.trim(), "https://ca.internal:8443/ocsp");
    // Still a strictly valid leaf.
    let (ok, out, err) = run(Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile"])
        .arg(&t.root)
        .arg(&leaf));
    assert!(ok, "{out}{err}");

    // Without the option: no authorityInfoAccess.
    let plain = Setup::new(&[]);
    let (leaf, _) = plain.leaf("svc").await;
    let (_, text, _) = run(Command::new("openssl")
        .args(["x509", "-noout", "-ocsp_uri", "-in"])
        .arg(&leaf));
    assert_eq!(text.trim(), "");

    for bad in [
        "ftp://ca/ocsp",
        "https://",
        "https://ca/ocsp path",
        "ca.internal/ocsp",
    ] {
        let (code, out) = Ca::start_refused(
            &tempfile::tempdir().unwrap().path().join("ca"),
            &["--ocsp-url", bad],
        );
        assert_eq!(code, Some(2), "{bad}: {out}");
        assert!(out.contains("--ocsp-url"), "{bad}: {out}");
    }
}

/// SHA-1 of the root's public key BIT STRING, as a CertID carries it.
fn issuer_hashes(root_pem: &[u8]) -> Vec<u8> {
    let der = rustls::pki_types::CertificateDer::from_pem_slice(root_pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let key = &cert.tbs_certificate.subject_pki.subject_public_key.data;
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, key)
        .as_ref()
        .to_vec()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn a_delegated_responder_answers_good_revoked_and_unknown_and_is_refused_past_its_life() {
    let t = Setup::new(&["--ocsp-responder", "delegated", "--crl-validity", "1h"]);
    // Trusting only the root: openssl accepts the enclosed responder because the root issued
    // it for OCSP signing.
    let (good, answer, _) = good_revoked_unknown(&t).await;

    // The inspector names the delegated signer.
    let v = inspect_json(&answer);
    let o = &v["objects"][0];
    assert_eq!(o["signed_by"], "delegated", "{o}");
    assert_eq!(o["certificates"], 1);
    let signer = &o["signers"][0];
    assert_eq!(
        signer["subject"],
        "O=mtls-mesh, CN=mtls-mesh OCSP responder"
    );
    for flag in ["signed_this", "ocsp_signing", "nocheck"] {
        assert_eq!(signer[flag], true, "{flag}: {signer}");
    }
    let (ok, text, err) = run(Command::new(crate::programs::inspect()).args(["show", &answer]));
    assert!(ok, "{err}");
    assert!(
        text.contains("Signed by") && text.contains("a delegated responder"),
        "{text}"
    );
    assert!(
        text.contains("signer: O=mtls-mesh, CN=mtls-mesh OCSP responder"),
        "{text}"
    );

    // Four CRL periods later the responder certificate has expired: the same answer, checked
    // at that time, is refused (the answer's own dates aside).
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(5)).unix_timestamp();
    let (ok, out, err) = run(Command::new("openssl")
        .args(["ocsp", "-no_nonce", "-respin", &answer, "-issuer"])
        .arg(&t.root)
        .arg("-CAfile")
        .arg(&t.root)
        .args(["-attime", &later.to_string(), "-cert"])
        .arg(&good));
    let text = out + &err;
    assert!(!ok || !text.contains("Response verify OK"), "{text}");
    assert!(text.contains("certificate has expired"), "{text}");
}
