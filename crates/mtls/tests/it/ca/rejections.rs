//! Every refusal of the API over real HTTPS: status, code, message, and nothing stored.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::common::*;
use time::OffsetDateTime;

const ID: &str = "spiffe://mesh.local/service/api";

fn assert_error(status: u16, v: &serde_json::Value, want_status: u16, code: &str, needle: &str) {
    assert_eq!(status, want_status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(needle),
        "message {msg:?} should contain {needle:?}"
    );
}

#[tokio::test]
async fn sign_rejections_store_nothing() {
    let ca = Ca::start(&[]);
    let http = client(&ca.root_pem(), None);
    let (_, good_csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let token = ca.token(ID, &["--dns", "api.local", "--ip", "127.0.0.1"]);

    // No token, malformed header, unknown token.
    let resp = http
        .post(ca.url("/api/v1/sign"))
        .json(&sign_body(&good_csr, ID, None))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_error(
        status,
        &resp.json().await.unwrap(),
        401,
        "token_missing",
        "Authorization",
    );
    let resp = http
        .post(ca.url("/api/v1/sign"))
        .header("Authorization", "Basic abc")
        .json(&sign_body(&good_csr, ID, None))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_error(
        status,
        &resp.json().await.unwrap(),
        401,
        "token_missing",
        "Bearer",
    );
    let (s, v) = sign(
        &http,
        &ca,
        "mtj_not-a-real-token",
        &sign_body(&good_csr, ID, None),
    )
    .await;
    assert_error(s, &v, 401, "token_unknown", "not known");

    // Oversized body: 413 before parsing.
    let huge = "x".repeat(70 * 1024);
    let (s, v) = sign(
        &http,
        &ca,
        &token,
        &serde_json::json!({"csr": huge, "requested_id": ID}),
    )
    .await;
    assert_error(s, &v, 413, "body_too_large", "64 KiB");

    // Malformed JSON and unknown fields.
    let resp = http
        .post(ca.url("/api/v1/sign"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"csr\": ")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_error(
        status,
        &resp.json().await.unwrap(),
        400,
        "bad_json",
        "not valid JSON",
    );
    let (s, v) = sign(
        &http,
        &ca,
        &token,
        &serde_json::json!({"csr": good_csr, "requested_id": ID, "is_ca": true}),
    )
    .await;
    assert_error(s, &v, 400, "bad_json", "unknown field");

    // Token for another identity; SAN outside the allow-list.
    let (s, v) = sign(
        &http,
        &ca,
        &token,
        &sign_body(&good_csr, "spiffe://mesh.local/service/other", None),
    )
    .await;
    assert_error(
        s,
        &v,
        403,
        "identity_not_authorised",
        "is for spiffe://mesh.local/service/api, not spiffe://mesh.local/service/other",
    );
    let (_, evil_csr) = csr(
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &["api.local", "evil.example"],
    );
    let (s, v) = sign(&http, &ca, &token, &sign_body(&evil_csr, ID, None)).await;
    assert_error(s, &v, 403, "san_not_allowed", "DNS:evil.example");

    // CSR asking for CA:TRUE.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let (s, v) = sign(&http, &ca, &token, &sign_body(&ca_csr, ID, None)).await;
    assert_error(s, &v, 400, "csr_requests_ca", "CA:TRUE");

    // RSA key, tampered signature, garbage CSR, bad SPIFFE ID, bad ttl.
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(std::process::Command::new("openssl")
        .args([
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=rsa", "-keyout",
        ])
        .arg(tmp.path().join("rsa.key"))
        .arg("-out")
        .arg(tmp.path().join("rsa.csr")));
    assert!(ok, "{err}");
    let rsa_csr = std::fs::read_to_string(tmp.path().join("rsa.csr")).unwrap();
    let (s, v) = sign(&http, &ca, &token, &sign_body(&rsa_csr, ID, None)).await;
    assert_error(s, &v, 400, "bad_csr", "RSA");
    let (_, csr_a) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let mut der = pki::pem::parse_single(csr_a.as_bytes(), "CERTIFICATE REQUEST").unwrap();
    let n = der.len();
    der[n - 2] ^= 0x5a;
    let tampered = pki::pem::encode("CERTIFICATE REQUEST", &der);
    let (s, v) = sign(&http, &ca, &token, &sign_body(&tampered, ID, None)).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_csr");
    let (s, v) = sign(
        &http,
        &ca,
        &token,
        &sign_body(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            ID,
            None,
        ),
    )
    .await;
    assert_error(s, &v, 400, "bad_csr", "invalid CSR");
    let (s, v) = sign(
        &http,
        &ca,
        &token,
        &sign_body(&good_csr, "spiffe://mesh.local/service/api", Some("soon")),
    )
    .await;
    assert_error(s, &v, 400, "bad_ttl", "soon");

    // None of the above stored anything, and the token is still good.
    assert_eq!(ca.cert_count(), 0);
    let (s, v) = sign(&http, &ca, &token, &sign_body(&good_csr, ID, None)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ca.cert_count(), 1);

    // Used token: the same CSR again (its answer lost) gets the same certificate; a CSR for
    // another key is refused.
    let (s, again) = sign(&http, &ca, &token, &sign_body(&good_csr, ID, None)).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["serial"], v["serial"]);
    assert_eq!(again["certificate"], v["certificate"]);
    let other_csr = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1;
    let (s, v) = sign(&http, &ca, &token, &sign_body(&other_csr, ID, None)).await;
    assert_error(s, &v, 401, "token_used", "another key");
    assert_eq!(ca.cert_count(), 1);

    // Metrics count refusals by reason.
    let metrics = http
        .get(ca.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mtls_ca_rejected_total{reason=\"san_not_allowed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mtls_ca_issued_total 1"), "{metrics}");
    // Tokens never appear in logs.
    assert!(!ca.logs().contains(&token), "token leaked into the log");
}

#[tokio::test]
async fn expired_token_is_refused() {
    let ca = Ca::start(&[]);
    // Write an already expired token straight into the store (the CLI refuses such TTLs).
    let store = mtls_ca::store::SqliteStore::open(&ca.dir.join("ca.db")).unwrap();
    let now = OffsetDateTime::now_utc();
    let token = "mtj_expired-token-for-test";
    mtls_ca::store::Store::insert_token(
        &store,
        &mtls_ca::store::TokenRecord {
            hash: mtls_ca::tokens::hash(token),
            spiffe_id: ID.into(),
            dns: vec![],
            ips: vec![],
            created_at: now - time::Duration::minutes(20),
            expires_at: now - time::Duration::minutes(10),
            used_at: None,
            used_serial: None,
            revoked_at: None,
        },
    )
    .unwrap();
    let (_, c) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (s, v) = sign(
        &client(&ca.root_pem(), None),
        &ca,
        token,
        &sign_body(&c, ID, None),
    )
    .await;
    assert_error(s, &v, 401, "token_expired", "expired at");
    assert_eq!(ca.cert_count(), 0);
}

#[tokio::test]
async fn renew_revoke_and_list_need_the_right_certificate() {
    let ca = Ca::start(&["--admin-id", "spiffe://mesh.local/admin"]);
    let anon = client(&ca.root_pem(), None);
    let (_, c) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);

    // Renewal without a client certificate.
    let resp = anon
        .post(ca.url("/api/v1/renew"))
        .json(&serde_json::json!({"csr": c}))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    assert_error(
        s,
        &resp.json().await.unwrap(),
        401,
        "client_certificate_required",
        "mTLS",
    );

    let (alice, alice_v) = enroll(&ca, "spiffe://mesh.local/service/alice").await;
    let (bob, bob_v) = enroll(&ca, "spiffe://mesh.local/service/bob").await;
    let (admin, _) = enroll(&ca, "spiffe://mesh.local/admin").await;
    let alice_http = client(&ca.root_pem(), Some(&alice));
    let bob_http = client(&ca.root_pem(), Some(&bob));
    let admin_http = client(&ca.root_pem(), Some(&admin));

    // Renewal keeps the identity; a CSR asking for more is refused.
    let (_, more) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &["extra.local"]);
    let resp = alice_http
        .post(ca.url("/api/v1/renew"))
        .json(&serde_json::json!({"csr": more}))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    assert_error(
        s,
        &resp.json().await.unwrap(),
        403,
        "san_not_allowed",
        "DNS:extra.local",
    );
    let resp = alice_http
        .post(ca.url("/api/v1/renew"))
        .json(&serde_json::json!({"csr": c, "ttl": "5m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let renewed: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(renewed["spiffe_id"], "spiffe://mesh.local/service/alice");
    assert_ne!(renewed["serial"], alice_v["serial"]);

    // Listing needs the admin identity.
    let resp = alice_http
        .get(ca.url("/api/v1/certs"))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    assert_error(
        s,
        &resp.json().await.unwrap(),
        403,
        "not_admin",
        "spiffe://mesh.local/admin",
    );
    let resp = admin_http
        .get(ca.url("/api/v1/certs"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let list: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(list["certificates"].as_array().unwrap().len(), 4);

    // Bob may not revoke Alice's certificate; unknown serials are 404.
    let resp = bob_http
        .post(ca.url("/api/v1/revoke"))
        .json(&serde_json::json!({"serial": alice_v["serial"]}))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    assert_error(
        s,
        &resp.json().await.unwrap(),
        403,
        "not_allowed",
        "only the admin identity or the holder",
    );
    let resp = admin_http
        .post(ca.url("/api/v1/revoke"))
        .json(&serde_json::json!({"serial": "abcdef"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let resp = admin_http
        .post(ca.url("/api/v1/revoke"))
        .json(&serde_json::json!({"serial": bob_v["serial"], "reason": "bogus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    // The holder revokes its own certificate; then that certificate can no longer renew.
    let resp = bob_http
        .post(ca.url("/api/v1/revoke"))
        .json(&serde_json::json!({"serial": bob_v["serial"], "reason": "keyCompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
    let resp = bob_http
        .post(ca.url("/api/v1/renew"))
        .json(&serde_json::json!({"csr": c}))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    assert_error(
        s,
        &resp.json().await.unwrap(),
        403,
        "certificate_revoked",
        "revoked",
    );
    // Revoking twice is a conflict, not a second audit entry.
    let resp = admin_http
        .post(ca.url("/api/v1/revoke"))
        .json(&serde_json::json!({"serial": bob_v["serial"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);

    // A certificate from another CA cannot even complete the handshake for renewal.
    let other = Ca::start(&[]);
    let (stranger, _) = enroll(&other, "spiffe://mesh.local/service/alice").await;
    let stranger_http = client(&ca.root_pem(), Some(&stranger));
    let result = stranger_http
        .post(ca.url("/api/v1/renew"))
        .json(&serde_json::json!({"csr": c}))
        .send()
        .await;
    match result {
        Err(_) => {}
        Ok(resp) => panic!("a foreign certificate was accepted: {}", resp.status()),
    }
}

#[tokio::test]
async fn unknown_endpoint_is_json_404() {
    let ca = Ca::start(&[]);
    let resp = client(&ca.root_pem(), None)
        .get(ca.url("/api/v2/nothing"))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    assert_error(
        s,
        &resp.json().await.unwrap(),
        404,
        "not_found",
        "ca-api.md",
    );
}
