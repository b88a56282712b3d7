#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use pki::clock::SystemClock;
use pki::CaMaterial;

use super::*;
use crate::store::{AuditCheck, MemoryStore, SqliteStore};

fn td(name: &str) -> TrustDomain {
    TrustDomain::parse(name).unwrap()
}

fn root(name: &str) -> CaMaterial {
    CaMaterial::generate_root(name, OffsetDateTime::now_utc()).unwrap()
}

fn bundle_json(roots: &[&CaMaterial], sequence: u64) -> Vec<u8> {
    let keys: Vec<Value> = roots
        .iter()
        .map(|r| {
            serde_json::to_value(pki::jwt_svid::x509_authority_jwk(r.cert_der()).unwrap()).unwrap()
        })
        .collect();
    serde_json::json!({"keys": keys, "spiffe_sequence": sequence, "spiffe_refresh_hint": 300})
        .to_string()
        .into_bytes()
}

fn request(fingerprint: &str) -> NewFederation {
    NewFederation {
        trust_domain: "b.example".into(),
        endpoint: "https://127.0.0.1:8443/api/v1/bundle/spiffe".into(),
        endpoint_spiffe_id: "spiffe://b.example/ca".into(),
        fingerprint: fingerprint.into(),
    }
}

fn intact(store: &dyn Store) -> bool {
    matches!(store.verify_audit().unwrap(), AuditCheck::Intact { .. })
}

#[test]
fn bad_requests_are_refused_naming_the_flag() {
    let now = OffsetDateTime::now_utc();
    let fp = format!("sha256:{}", "ab".repeat(32));
    let own = td("a.example");
    let refused = |change: &dyn Fn(&mut NewFederation)| {
        let mut r = request(&fp);
        change(&mut r);
        check(&own, &r, now).unwrap_err().to_string()
    };
    assert!(check(&own, &request(&fp), now).is_ok());
    assert!(refused(&|r| r.trust_domain = "a.example".into()).contains("own trust domain"));
    assert!(refused(&|r| r.trust_domain = "B..example".into()).contains("--trust-domain"));
    assert!(refused(&|r| r.endpoint = "http://b.example/bundle".into()).contains("--endpoint"));
    assert!(
        refused(&|r| r.endpoint_spiffe_id = "spiffe://a.example/ca".into())
            .contains("--endpoint-spiffe-id")
    );
    assert!(refused(&|r| r.fingerprint = "sha256:abcd".into()).contains("--fingerprint"));
}

#[test]
fn the_first_bundle_must_hold_the_fingerprinted_root_and_changes_are_audited() {
    let store = MemoryStore::new(&[], Arc::new(SystemClock));
    let now = OffsetDateTime::now_utc();
    let (b_root, b_next, impostor) = (root("B"), root("B next"), root("Impostor"));
    let record = add(
        &store,
        &td("a.example"),
        &request(&b_root.fingerprint()),
        "cli",
        now,
    )
    .unwrap();
    assert!(matches!(
        add(
            &store,
            &td("a.example"),
            &request(&b_root.fingerprint()),
            "cli",
            now
        ),
        Err(FederationError::Exists(_))
    ));

    // A first bundle without the fingerprinted root stores nothing.
    let err = accept_fetched(&store, &record, &bundle_json(&[&impostor], 1), now).unwrap_err();
    assert!(
        matches!(err, FederationError::BootstrapFingerprint { .. }),
        "{err}"
    );
    assert_eq!(store.list_federations().unwrap()[0].bundle, None);

    let (_, stored) = accept_fetched(&store, &record, &bundle_json(&[&b_root], 1), now).unwrap();
    assert_eq!(stored, StoredBundle::Changed);
    let record = store.list_federations().unwrap().remove(0);
    assert_eq!(
        stored_roots(&record).unwrap(),
        vec![b_root.cert_der().to_vec()]
    );
    // The same bundle again: nothing new to audit.
    let (_, stored) = accept_fetched(&store, &record, &bundle_json(&[&b_root], 1), now).unwrap();
    assert_eq!(stored, StoredBundle::Unchanged);
    // Later bundles need not hold the bootstrap root (the fetch was authenticated with the
    // stored bundle): a rotation is followed.
    let (_, stored) = accept_fetched(&store, &record, &bundle_json(&[&b_next], 2), now).unwrap();
    assert_eq!(stored, StoredBundle::Changed);
    let served = federated_bundles(&store).unwrap();
    assert!(served["federated_bundles"]["b.example"]["keys"].is_array());
    assert!(intact(&store));

    remove(&store, "b.example", "cli", now).unwrap();
    assert!(matches!(
        remove(&store, "b.example", "cli", now),
        Err(FederationError::Unknown(_))
    ));
    assert_eq!(
        federated_bundles(&store).unwrap()["federated_bundles"],
        serde_json::json!({})
    );
    // A bundle fetched while the federation was being removed is not stored.
    let (_, stored) = accept_fetched(&store, &record, &bundle_json(&[&b_next], 3), now).unwrap();
    assert_eq!(stored, StoredBundle::Gone);
    assert!(intact(&store));
}

#[test]
fn audit_verify_catches_a_federation_or_bundle_written_behind_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.db");
    let store = SqliteStore::create(&path, &[("trust_domain", "a.example")]).unwrap();
    let now = OffsetDateTime::now_utc();
    let b_root = root("B");
    let record = add(
        &store,
        &td("a.example"),
        &request(&b_root.fingerprint()),
        "cli",
        now,
    )
    .unwrap();
    accept_fetched(&store, &record, &bundle_json(&[&b_root], 1), now).unwrap();
    assert!(intact(&store));

    let conn = rusqlite::Connection::open(&path).unwrap();
    // A foreign root slipped into the stored bundle.
    let swapped = String::from_utf8(bundle_json(&[&b_root, &root("Evil")], 1)).unwrap();
    conn.execute("UPDATE federations SET bundle = ?1", [&swapped])
        .unwrap();
    match store.verify_audit().unwrap() {
        AuditCheck::Mismatch { problems, .. } => assert!(
            problems
                .iter()
                .any(|p| p.contains("federations row b.example")),
            "{problems:?}"
        ),
        other => panic!("a swapped bundle must not verify: {other:?}"),
    }
    conn.execute("DELETE FROM federations", []).unwrap();
    conn.execute(
        "INSERT INTO federations VALUES ('c.example', 'https://c', 'spiffe://c.example/ca', ?1, 0, NULL, NULL)",
        [&"cd".repeat(32)],
    )
    .unwrap();
    match store.verify_audit().unwrap() {
        AuditCheck::Mismatch { problems, .. } => {
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("federations row c.example")),
                "{problems:?}"
            );
            assert!(
                problems.iter().any(|p| p.contains("federated b.example")),
                "{problems:?}"
            );
        }
        other => panic!("an inserted federation must not verify: {other:?}"),
    }
}
