//! Renewal cannot escape revocation: the renewal transaction re-checks the presented
//! certificate, revoking a certificate revokes everything renewed from it, and a certificate is
//! renewed once (same key: the same certificate again; another key: suspected theft, the whole
//! lineage revoked).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashSet;

use super::common::*;
use rcgen::KeyPair;
use x509_parser::prelude::FromDer;

const ADMIN: &str = "spiffe://mesh.local/admin";

fn identity(key: &KeyPair, v: &serde_json::Value) -> Identity {
    Identity {
        cert_pem: v["certificate"].as_str().unwrap().to_string(),
        key_pem: key.serialize_pem(),
    }
}

fn serial(v: &serde_json::Value) -> String {
    v["serial"].as_str().unwrap().to_string()
}

async fn crl_serials(ca: &Ca) -> HashSet<String> {
    let der = client(&ca.root_pem(), None)
        .get(ca.url("/api/v1/crl"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
    crl.iter_revoked_certificates()
        .map(|r| hex::encode(pki::serial::strip_leading_zeros(r.raw_serial())))
        .collect()
}

fn audit_verify_ok(ca: &Ca) {
    let out = ca.admin(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn a_revoked_certificate_cannot_renew_and_its_renewals_are_revoked_with_it() {
    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (x, xv) = enroll(&ca, "spiffe://mesh.local/service/x").await;
    let x_serial = serial(&xv);

    // X -> Y -> Z, then revoke X: Y and Z go with it, each with its own audit entry.
    let ky = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let (status, yv) = renew(&ca, &x, &csr_for(&ky)).await;
    assert_eq!(status, 200, "{yv}");
    let y = identity(&ky, &yv);
    let kz = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let (status, zv) = renew(&ca, &y, &csr_for(&kz)).await;
    assert_eq!(status, 200, "{zv}");
    let (y_serial, z_serial) = (serial(&yv), serial(&zv));

    let out = ca.admin(&["revoke", "--serial", &x_serial, "--reason", "keyCompromise"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec![x_serial.as_str(), y_serial.as_str(), z_serial.as_str()]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("also revoked 2 certificate(s) renewed from it"),
        "{stderr}"
    );
    let certs = certs_by_serial(&ca);
    for s in [&x_serial, &y_serial, &z_serial] {
        assert_eq!(certs[s]["status"], "revoked", "{s}");
        assert_eq!(certs[s]["revoke_reason"], "keyCompromise", "{s}");
    }
    let crl = crl_serials(&ca).await;
    assert!(
        crl.contains(&y_serial) && crl.contains(&z_serial),
        "{crl:?}"
    );

    // X (revoked) cannot renew; neither can Z.
    let (status, v) = renew(&ca, &x, &csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("certificate_revoked"))
    );
    let z = identity(&kz, &zv);
    let (status, v) = renew(&ca, &z, &csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("certificate_revoked"))
    );
    assert_eq!(ca.cert_count(), 3);

    // Through the API the answer names the renewals revoked along.
    let (w, wv) = enroll(&ca, "spiffe://mesh.local/service/w").await;
    let kw = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let (_, w2) = renew(&ca, &w, &csr_for(&kw)).await;
    let resp = client(&ca.root_pem(), Some(&identity(&kw, &w2)))
        .post(ca.url("/api/v1/revoke"))
        .json(&serde_json::json!({"serial": wv["serial"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        serde_json::json!({"revoked": serial(&wv), "also_revoked": [serial(&w2)]})
    );
    audit_verify_ok(&ca);
}

/// POST /api/v1/renew on an existing (warm) client.
async fn renew_on(http: &reqwest::Client, ca: &Ca, csr: String) -> (u16, serde_json::Value) {
    let resp = http
        .post(ca.url("/api/v1/renew"))
        .json(&serde_json::json!({ "csr": csr }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_racing_renewals_never_leaves_a_valid_child() {
    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (admin, _) = enroll(&ca, ADMIN).await;
    let admin_http = client(&ca.root_pem(), Some(&admin));
    let (mut renewed, mut refused) = (0, 0);
    for i in 0..40 {
        let (x, xv) = enroll(&ca, &format!("spiffe://mesh.local/race/x{i}")).await;
        let x_serial = serial(&xv);
        // Connections are set up first, so the requests below race each other, not handshakes.
        let x_http = client(&ca.root_pem(), Some(&x));
        for http in [&x_http, &admin_http] {
            let resp = http.get(ca.url("/api/v1/ca")).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
        }
        // The service's renewal and its retries (same key), in flight with the revocation.
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let renewals = (0..4).map(|_| renew_on(&x_http, &ca, csr_for(&key)));
        let revoke = admin_http
            .post(ca.url("/api/v1/revoke"))
            .json(&serde_json::json!({"serial": x_serial}))
            .send();
        let (results, revoked) = tokio::join!(futures::future::join_all(renewals), revoke);
        assert_eq!(revoked.unwrap().status().as_u16(), 200);
        for (status, v) in &results {
            match status {
                200 => renewed += 1,
                403 => {
                    assert_eq!(v["error"]["code"], "certificate_revoked", "{v}");
                    refused += 1;
                }
                other => panic!("unexpected {other}: {v}"),
            }
        }
        // Every certificate renewed from X is revoked (or none was issued).
        let certs = certs_by_serial(&ca);
        for c in certs.values() {
            if c["renewed_from"] == x_serial.as_str() {
                assert_eq!(
                    c["status"], "revoked",
                    "a child of revoked {x_serial} is valid: {c}"
                );
            }
        }
        for (status, v) in &results {
            if *status == 200 {
                assert_eq!(certs[&serial(v)]["status"], "revoked", "{v}");
            }
        }
    }
    eprintln!("renewals answered 200 {renewed} times, refused as revoked {refused} times");
    audit_verify_ok(&ca);
}

#[tokio::test]
async fn a_retried_renewal_gets_the_same_certificate() {
    let ca = Ca::start(&[]);
    let (x, _) = enroll(&ca, "spiffe://mesh.local/service/x").await;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let (status, first) = renew(&ca, &x, &csr_for(&key)).await;
    assert_eq!(status, 200, "{first}");
    let head = ca.admin(&["audit", "head"]).stdout;
    let count = ca.cert_count();

    // The response was "lost": the service retries with the same key (a new CSR).
    let (status, again) = renew(&ca, &x, &csr_for(&key)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, first, "a retry must get the identical certificate");
    assert_eq!(ca.cert_count(), count, "a retry stored a certificate");
    assert_eq!(
        ca.admin(&["audit", "head"]).stdout,
        head,
        "a retry was audited"
    );
    let metrics = client(&ca.root_pem(), None)
        .get(ca.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("mtls_ca_renewed_total 1\n"), "{metrics}");
}

#[tokio::test]
async fn a_second_renewal_with_another_key_revokes_the_lineage() {
    let ca = Ca::start(&[]);
    let (x, xv) = enroll(&ca, "spiffe://mesh.local/service/x").await;
    // The legitimate service renews twice: X -> Y -> Z.
    let ky = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let (_, yv) = renew(&ca, &x, &csr_for(&ky)).await;
    let kz = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let (status, zv) = renew(&ca, &identity(&ky, &yv), &csr_for(&kz)).await;
    assert_eq!(status, 200, "{zv}");
    let (xs, ys, zs) = (serial(&xv), serial(&yv), serial(&zv));

    // Someone else holding X's key renews X again, with their own key.
    let (status, v) = renew(&ca, &x, &csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], "renewal_replayed");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("suspected key theft") && msg.contains("lineage was revoked"),
        "{msg}"
    );
    // The lineage is revoked, the legitimate newest certificate included; nothing new stored.
    let certs = certs_by_serial(&ca);
    assert_eq!(certs.len(), 3);
    for s in [&xs, &ys, &zs] {
        assert_eq!(certs[s]["status"], "revoked", "{s}");
        assert_eq!(certs[s]["revoke_reason"], "keyCompromise", "{s}");
    }
    let crl = crl_serials(&ca).await;
    assert!(crl.contains(&xs) && crl.contains(&ys) && crl.contains(&zs));
    let (status, v) = renew(
        &ca,
        &identity(&kz, &zv),
        &csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1,
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("certificate_revoked"))
    );

    // The alarm is in the audit log, naming the serials, and the log still verifies.
    let conn = rusqlite::Connection::open(ca.dir.join("ca.db")).unwrap();
    let detail: String = conn
        .query_row(
            "SELECT detail FROM audit WHERE event = 'suspected_key_theft'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let d: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(d["presented_serial"], xs.as_str());
    assert_eq!(d["renewed_as"], serde_json::json!([ys]));
    assert_eq!(d["revoked"], serde_json::json!([xs, ys, zs]));
    let causes: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE event = 'revoke' AND detail LIKE '%suspected_key_theft%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(causes, 3, "one revoke entry per serial");
    assert!(ca.logs().contains("suspected_key_theft"), "{}", ca.logs());
    audit_verify_ok(&ca);
}

#[tokio::test]
async fn renewal_with_the_current_key_is_refused() {
    let ca = Ca::start(&[]);
    let (x, _) = enroll(&ca, "spiffe://mesh.local/service/x").await;
    let key = KeyPair::from_pem(&x.key_pem).unwrap();
    let (status, v) = renew(&ca, &x, &csr_for(&key)).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "key_reused");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("renewal needs a fresh key"),
        "{v}"
    );
    assert_eq!(ca.cert_count(), 1);
    // A fresh key still renews: the refusal did not count as a renewal.
    let (status, v) = renew(&ca, &x, &csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn revoke_by_identity_revokes_every_live_certificate_of_it() {
    let ca = Ca::start(&[]);
    let id = "spiffe://mesh.local/service/x";
    let (x1, x1v) = enroll(&ca, id).await;
    let (_, x2v) = enroll(&ca, id).await;
    let (status, y1v) = renew(&ca, &x1, &csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1).await;
    assert_eq!(status, 200);
    let (_, other) = enroll(&ca, "spiffe://mesh.local/service/other").await;
    // One already revoked: not revoked again.
    let out = ca.admin(&["revoke", "--serial", &serial(&x2v)]);
    assert!(out.status.success());

    let out = ca.admin(&[
        "revoke",
        "--spiffe-id",
        id,
        "--reason",
        "cessationOfOperation",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: HashSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(listed, HashSet::from([serial(&x1v), serial(&y1v)]));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("revoked 2 live certificate(s) of {id}")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs = certs_by_serial(&ca);
    assert_eq!(
        certs[&serial(&x1v)]["revoke_reason"],
        "cessationOfOperation"
    );
    assert_eq!(certs[&serial(&other)]["status"], "valid");

    // Nothing left: says so, changes nothing.
    let out = ca.admin(&["revoke", "--spiffe-id", id]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no live certificate"));

    // Exactly one of --serial and --spiffe-id.
    let out = ca.admin(&["revoke"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ca.admin(&["revoke", "--serial", "ab", "--spiffe-id", id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    audit_verify_ok(&ca);
}
