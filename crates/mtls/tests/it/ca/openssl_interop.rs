//! Certificates for CSRs made by `openssl req` on every curve pass OpenSSL's strict verification.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

use super::common::*;

/// Makes an EC key and CSR with the openssl CLI; returns the CSR PEM.
fn openssl_csr(dir: &std::path::Path, curve: &str, digest: &str) -> String {
    let key = dir.join(format!("{curve}-{digest}.key"));
    let csr = dir.join(format!("{curve}-{digest}.csr"));
    let (ok, _, err) = run(Command::new("openssl")
        .args(["ecparam", "-genkey", "-noout", "-name", curve, "-out"])
        .arg(&key));
    assert!(ok, "{err}");
    let (ok, _, err) = run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-subj",
            "/CN=workload",
            &format!("-{digest}"),
            "-key",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    assert!(ok, "{err}");
    std::fs::read_to_string(csr).unwrap()
}

#[tokio::test]
async fn openssl_csrs_on_every_curve_yield_strictly_valid_certificates() {
    let ca = Ca::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root.pem");
    std::fs::write(&root, ca.root_pem()).unwrap();
    let http = client(&ca.root_pem(), None);
    let cases = [
        ("prime256v1", "sha256"),
        ("secp384r1", "sha384"),
        // The trap of rcgen issue 448: a P-384 key whose CSR is signed with SHA-256.
        ("secp384r1", "sha256"),
        ("secp521r1", "sha512"),
    ];
    for (curve, digest) in cases {
        let id = format!("spiffe://mesh.local/workload/{curve}-{digest}");
        let token = ca.token(&id, &["--dns", "svc.local", "--ip", "127.0.0.1"]);
        let csr = openssl_csr(tmp.path(), curve, digest);
        let (status, v) = sign(&http, &ca, &token, &sign_body(&csr, &id, Some("10m"))).await;
        assert_eq!(status, 200, "{curve}/{digest}: {v}");
        assert_eq!(v["spiffe_id"], id.as_str());
        let leaf = tmp.path().join(format!("{curve}-{digest}.crt"));
        std::fs::write(&leaf, v["certificate"].as_str().unwrap()).unwrap();

        for purpose in ["sslclient", "sslserver"] {
            let (ok, out, err) = run(Command::new("openssl")
                .args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile"])
                .arg(&root)
                .arg(&leaf));
            assert!(ok, "{curve}/{digest} {purpose}: {out}{err}");
        }
        let (ok, text, err) = run(Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&leaf));
        assert!(ok, "{err}");
        assert!(
            text.contains("Signature Algorithm: ecdsa-with-SHA384"),
            "{text}"
        );
        assert!(text.contains(&format!("URI:{id}")), "{text}");
        assert!(
            text.contains("DNS:svc.local") && text.contains("IP Address:127.0.0.1"),
            "{text}"
        );
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(
            text.contains(&format!("ASN1 OID: {curve}")),
            "key must keep its own curve: {text}"
        );
        // The serial we report is the one in the certificate.
        let (_, serial, _) = run(Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(&leaf));
        assert_eq!(
            serial.trim().trim_start_matches("serial=").to_lowercase(),
            v["serial"].as_str().unwrap()
        );
    }
}

#[tokio::test]
async fn external_openssl_root_serves_and_mismatched_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let rootdir = tmp.path().join("root");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/gen-root-ca.sh");
    let (ok, out, err) = run(Command::new("bash").arg(script).arg(&rootdir));
    assert!(ok, "{out}{err}");
    let cert = rootdir.join("ca.crt");
    let key = rootdir.join("ca.key");

    let ca = Ca::start_in(
        &tmp.path().join("data"),
        &[
            "--root-cert",
            cert.to_str().unwrap(),
            "--root-key",
            key.to_str().unwrap(),
        ],
    );
    let (_, leaf_resp) = enroll(&ca, "spiffe://mesh.local/service/x").await;
    let leaf = tmp.path().join("leaf.crt");
    std::fs::write(&leaf, leaf_resp["certificate"].as_str().unwrap()).unwrap();
    let (ok, out, err) = run(Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile"])
        .arg(&cert)
        .arg(&leaf));
    assert!(ok, "{out}{err}");
    drop(ca);

    // A key that does not belong to the certificate is refused at start, with both fingerprints.
    let other = tmp.path().join("other.key");
    let (ok, _, err) = run(Command::new("openssl")
        .args(["ecparam", "-genkey", "-name", "secp384r1", "-out"])
        .arg(&other));
    assert!(ok, "{err}");
    let (code, err) = Ca::start_refused(
        &tmp.path().join("data2"),
        &[
            "--root-cert",
            cert.to_str().unwrap(),
            "--root-key",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("does not match the CA certificate"), "{err}");
}

/// Runs `openssl s_client` against the CA with extra arguments and returns its combined output.
fn s_client(ca: &Ca, extra: &[&str]) -> (bool, String) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root.pem");
    std::fs::write(&root, ca.root_pem()).unwrap();
    // stdin is /dev/null: EOF right after the handshake ends the session.
    let (ok, out, err) = run(Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", ca.port),
            "-servername",
            "localhost",
            "-CAfile",
        ])
        .arg(&root)
        .args(extra));
    (ok, format!("{out}{err}"))
}

#[test]
fn ca_api_is_tls13_only_with_p384_and_p521() {
    let ca = Ca::start(&[]);
    let (_, out) = s_client(&ca, &["-tls1_3", "-groups", "P-521"]);
    assert!(out.contains("Server Temp Key: ECDH, secp521r1"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let (_, out) = s_client(&ca, &["-tls1_3", "-groups", "P-384"]);
    assert!(
        out.contains("TLS_AES_256_GCM_SHA384") && out.contains("Server Temp Key: ECDH, secp384r1"),
        "{out}"
    );
    let (ok, out) = s_client(&ca, &["-tls1_2"]);
    assert!(
        !ok && out.contains("alert protocol version"),
        "TLS 1.2 must be refused: {out}"
    );
    let (ok, out) = s_client(&ca, &["-tls1_3", "-groups", "P-256"]);
    assert!(!ok, "a P-256-only client must not negotiate: {out}");
}

#[tokio::test]
async fn bundle_publishes_overlap_roots_with_cross_certificates_and_ca_only_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts");
    let next_root = tmp.path().join("next");
    let (ok, out, err) = run(Command::new("bash")
        .arg(format!("{scripts}/gen-root-ca.sh"))
        .arg(&next_root));
    assert!(ok, "{out}{err}");
    // A certificate that is not self-signed stands for an operator's own cross-certificate.
    let (ok, out, err) = run(Command::new("bash")
        .arg(format!("{scripts}/sign-client-cert.sh"))
        .arg(&next_root)
        .args(["given", "--spiffe-id", "spiffe://mesh.local/service/given"]));
    assert!(ok, "{out}{err}");
    let extra = next_root.join("ca.crt");
    let given = next_root.join("given.crt");
    let ca = Ca::start(&[
        "--bundle-extra",
        extra.to_str().unwrap(),
        "--bundle-extra",
        given.to_str().unwrap(),
    ]);
    let http = client(&ca.root_pem(), None);
    let own = http
        .get(ca.url("/api/v1/ca"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bundle = http
        .get(ca.url("/api/v1/bundle"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let own_certs = pki::pem::parse_certificates(own.as_bytes()).unwrap();
    let bundle_certs = pki::pem::parse_certificates(bundle.as_bytes()).unwrap();
    assert_eq!(own_certs.len(), 1);
    assert_eq!(pki::sha256_hex(&own_certs[0]), ca.fingerprint);
    assert_eq!(bundle_certs.len(), 4, "{bundle}");
    assert_eq!(
        bundle_certs[0], own_certs[0],
        "the CA's own root comes first"
    );
    let next = pki::pem::parse_certificates(&std::fs::read(&extra).unwrap()).unwrap();
    assert_eq!(bundle_certs[1], next[0]);
    // Then the cross-certificate by which our root vouches for the extra root.
    let cross = &bundle_certs[2];
    assert!(pki::vouch::same_subject_and_key(cross, &next[0]));
    pki::vouch::check_cross_certificate(
        cross,
        [own_certs[0].as_ref()],
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    // Then what the operator gave, as given.
    let given = pki::pem::parse_certificates(&std::fs::read(&given).unwrap()).unwrap();
    assert_eq!(bundle_certs[3], given[0]);
}
