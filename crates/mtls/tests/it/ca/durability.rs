//! Restarts, kill -9, the CRL as OpenSSL sees it, and tamper detection of the audit log.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

use super::common::*;

fn audit_verify(ca_dir: &std::path::Path) -> (bool, String) {
    let out = admin_in(ca_dir, &["audit", "verify"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Fetches the CRL and returns `openssl crl -text` output after `-verify` against the root.
async fn openssl_crl(ca: &Ca, tmp: &std::path::Path) -> String {
    let http = client(&ca.root_pem(), None);
    let resp = http.get(ca.url("/api/v1/crl")).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/pkix-crl");
    let der = resp.bytes().await.unwrap();
    let crl = tmp.join("ca.crl");
    let root = tmp.join("root.pem");
    std::fs::write(&crl, &der).unwrap();
    std::fs::write(&root, ca.root_pem()).unwrap();
    let (ok, out, err) = run(Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-verify", "-in"])
        .arg(&crl)
        .arg("-CAfile")
        .arg(&root));
    assert!(ok, "{err}");
    assert!(err.contains("verify OK"), "{err}");
    out
}

#[tokio::test]
async fn state_survives_restart_and_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = Ca::start_in(&dir, &[]);
    let fingerprint = ca.fingerprint.clone();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&dir.join("root.key")),
            0o600,
            "the root key must be owner-only"
        );
        assert_eq!(mode(&dir), 0o700, "the data directory must be owner-only");
        // The fingerprint printed is the SHA-256 of the root DER on disk.
        let der = pki::pem::parse_certificates(&ca.root_pem()).unwrap();
        assert_eq!(pki::sha256_hex(&der[0]), fingerprint);
    }
    let (_, a) = enroll(&ca, "spiffe://mesh.local/service/a").await;
    let (_, b) = enroll(&ca, "spiffe://mesh.local/service/b").await;
    let serial_a = a["serial"].as_str().unwrap().to_string();

    // Revoke through the CLI while the CA runs: the very next CRL lists it.
    let before = openssl_crl(&ca, tmp.path()).await;
    assert!(before.contains("No Revoked Certificates"), "{before}");
    let out = ca.admin(&["revoke", "--serial", &serial_a, "--reason", "keyCompromise"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = openssl_crl(&ca, tmp.path()).await;
    assert!(after.contains(&serial_a.to_uppercase()), "{after}");
    assert!(after.contains("Key Compromise"), "{after}");
    assert!(
        after.contains("ecdsa-with-SHA384") && after.contains("Next Update"),
        "{after}"
    );
    assert!(after.contains("Version 2"), "{after}");

    // kill -9, then restart: same root, same records, revocation kept, chain intact.
    let dir = ca.kill9();
    let ca = Ca::start_in(&dir, &[]);
    assert_eq!(ca.fingerprint, fingerprint, "the root must survive a crash");
    assert_eq!(ca.cert_count(), 2);
    let out = ca.admin(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let status_of = |serial: &str| {
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["serial"] == serial)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status_of(&serial_a), "revoked");
    assert_eq!(status_of(b["serial"].as_str().unwrap()), "valid");
    let crl = openssl_crl(&ca, tmp.path()).await;
    assert!(crl.contains(&serial_a.to_uppercase()), "{crl}");

    // Graceful restart too.
    let (_, _c) = enroll(&ca, "spiffe://mesh.local/service/c").await;
    let dir = ca.stop();
    let (ok, text) = audit_verify(&dir);
    assert!(ok, "{text}");
    // 2 API certificates (two starts) + 3 tokens + 3 issues + 1 revoke.
    assert!(text.contains("9 entries"), "{text}");
    let ca = Ca::start_in(&dir, &[]);
    assert_eq!(ca.fingerprint, fingerprint);
    assert_eq!(ca.cert_count(), 3);
}

#[tokio::test]
async fn audit_verify_detects_an_edited_row() {
    let ca = Ca::start(&[]);
    enroll(&ca, "spiffe://mesh.local/service/a").await;
    enroll(&ca, "spiffe://mesh.local/service/b").await;
    let (ok, text) = audit_verify(&ca.dir);
    assert!(ok, "{text}");

    // An attacker with write access rewrites the identity of entry 2.
    let conn = rusqlite::Connection::open(ca.dir.join("ca.db")).unwrap();
    let changed = conn
        .execute(
            "UPDATE audit SET detail = replace(detail, 'service/a', 'service/z') WHERE seq = 2",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let (ok, text) = audit_verify(&ca.dir);
    assert!(!ok);
    assert!(
        text.contains("TAMPERED at entry 2") && text.contains("edited"),
        "{text}"
    );
}

#[tokio::test]
async fn trust_domain_is_pinned_and_token_cli_checks_it() {
    let ca = Ca::start(&["--trust-domain", "prod.example"]);
    let out = ca.admin(&["token", "--spiffe-id", "spiffe://mesh.local/x"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not in this CA's trust domain prod.example")
    );
    let dir = ca.stop();
    let err = match Ca::try_start_in(&dir, &["--trust-domain", "other.example"]) {
        Ok(_) => panic!("a changed trust domain must be refused"),
        Err(e) => e,
    };
    assert!(err.contains("serves trust domain prod.example"), "{err}");
}

#[tokio::test]
async fn audit_verify_detects_a_truncated_tail() {
    let ca = Ca::start(&[]);
    enroll(&ca, "spiffe://mesh.local/service/a").await;
    let conn = rusqlite::Connection::open(ca.dir.join("ca.db")).unwrap();
    // The last entry is the issue of service/a: cutting it leaves a consistent chain.
    let last: String = conn
        .query_row(
            "SELECT event FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(last, "issue");
    let cut = conn
        .execute(
            "DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)",
            [],
        )
        .unwrap();
    assert_eq!(cut, 1);
    drop(conn);
    let (ok, text) = audit_verify(&ca.dir);
    assert!(!ok);
    assert!(text.contains("issue entry is missing"), "{text}");
}
