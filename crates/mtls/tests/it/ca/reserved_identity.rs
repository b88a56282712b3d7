//! `spiffe://<td>/ca` and everything under it belong to the CA's own API certificate: no token,
//! no certificate and no admin identity may name them.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::common::*;
use mtls_ca::store::{IssueKind, SqliteStore, Store, TokenRecord};
use time::OffsetDateTime;

const RESERVED: [&str; 2] = ["spiffe://mesh.local/ca", "spiffe://mesh.local/ca/x"];

#[tokio::test]
async fn token_cli_refuses_reserved_ids() {
    let ca = Ca::start(&[]);
    for id in RESERVED {
        let out = ca.admin(&["token", "--spiffe-id", id]);
        assert_eq!(out.status.code(), Some(2), "token for {id} was created");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{id} is reserved for the CA's own API identity")),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "a token was printed for {id}");
    }
    // Neighbours of the reserved path are ordinary workload IDs.
    ca.token("spiffe://mesh.local/cafe", &[]);
    ca.token("spiffe://mesh.local/service/ca", &[]);
}

/// Writes a token for `id` straight into the store, as an older version or an attacker with
/// write access could have.
fn plant_token(ca: &Ca, id: &str, secret: &str) {
    let store = SqliteStore::open(&ca.dir.join("ca.db")).unwrap();
    let now = OffsetDateTime::now_utc();
    store
        .insert_token(&TokenRecord {
            hash: mtls_ca::tokens::hash(secret),
            spiffe_id: id.into(),
            dns: vec![],
            ips: vec![],
            created_at: now,
            expires_at: now + time::Duration::minutes(10),
            used_at: None,
            used_serial: None,
            revoked_at: None,
        })
        .unwrap();
}

#[tokio::test]
async fn sign_refuses_a_stored_token_for_a_reserved_id() {
    let ca = Ca::start(&[]);
    let http = client(&ca.root_pem(), None);
    for (i, id) in RESERVED.iter().enumerate() {
        let secret = format!("mtj_planted-reserved-token-{i}");
        plant_token(&ca, id, &secret);
        let (_, c) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
        let (status, v) = sign(&http, &ca, &secret, &sign_body(&c, id, None)).await;
        assert_eq!(status, 403, "{v}");
        assert_eq!(v["error"]["code"], "reserved_identity", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("reserved for the CA's own API certificate"),
            "{msg}"
        );
    }
    assert_eq!(ca.cert_count(), 0, "a reserved identity was issued");
}

#[tokio::test]
async fn renewal_of_a_stored_certificate_with_a_reserved_id_is_refused() {
    let ca = Ca::start(&[]);
    // A certificate for spiffe://mesh.local/ca issued with the CA's own root and recorded as if
    // an older version had issued it against a token.
    let root = pki::CaMaterial::load(
        &std::fs::read(ca.dir.join("root.crt")).unwrap(),
        &std::fs::read(ca.dir.join("root.key")).unwrap(),
    )
    .unwrap();
    let id = pki::SpiffeId::parse(RESERVED[0]).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let now = OffsetDateTime::now_utc();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let issued = pki::IssuancePolicy::default()
        .issue(
            &pki::LeafRequest {
                spiffe_id: &id,
                dns: &[],
                ips: &[],
                spki_der: &spki,
                ttl: time::Duration::hours(1),
                now,
            },
            &root,
        )
        .unwrap();
    let secret = "mtj_planted-reserved-cert";
    plant_token(&ca, RESERVED[0], secret);
    let store = SqliteStore::open(&ca.dir.join("ca.db")).unwrap();
    store
        .redeem_token(
            &mtls_ca::tokens::hash(secret),
            now,
            &mtls_ca::store::CertRecord {
                serial: issued.serial_hex.clone(),
                spiffe_id: id.to_string(),
                dns: vec![],
                ips: vec![],
                not_before: issued.not_before,
                not_after: issued.not_after,
                issued_at: now,
                kind: IssueKind::Sign,
                renewed_from: None,
                fingerprint: pki::sha256_hex(&issued.der),
                pem: issued.pem.clone(),
                revoked_at: None,
                revoke_reason: None,
            },
        )
        .unwrap();
    let holder = Identity {
        cert_pem: issued.pem,
        key_pem: key.serialize_pem(),
    };
    let (_, c) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let resp = client(&ca.root_pem(), Some(&holder))
        .post(ca.url("/api/v1/renew"))
        .json(&serde_json::json!({ "csr": c }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "reserved_identity", "{v}");
    assert_eq!(ca.cert_count(), 1, "the renewal stored a certificate");
}

#[test]
fn admin_id_naming_a_reserved_id_is_refused_at_start() {
    for id in RESERVED {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let (code, err) = Ca::start_refused(&dir, &["--admin-id", id]);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains(&format!("--admin-id {id} is reserved")),
            "{err}"
        );
        assert!(
            !dir.join("root.key").exists() && !dir.join("ca.db").exists(),
            "a refused start created the CA"
        );
    }
}
