//! kill -9 of `mtls-ca` during a burst of concurrent signings, which the SQLite store commits in
//! shared batches (group commit, crates/ca/src/store/sqlite_batch.rs): every certificate a
//! client received is stored, byte for byte, and `audit verify` passes on the dead CA's files.
//! Whatever was in an uncommitted batch was never answered, so losing it loses nothing.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};

use mtls_ca::store::{SqliteStore, Store};

use super::common::*;

const CLIENTS: usize = 48;
/// Answers received before the kill.
const KILL_AFTER: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_burst_keeps_every_answered_certificate_and_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = Ca::start_in(&dir, &[]);
    let http = client(&ca.root_pem(), None);
    let url = ca.url("/api/v1/sign");
    let jobs: Vec<(String, serde_json::Value)> = (0..CLIENTS)
        .map(|i| {
            let id = format!("spiffe://mesh.local/burst/w{i}");
            let token = ca.token(&id, &[]);
            let (_, c) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]);
            (token, sign_body(&c, &id, Some("5m")))
        })
        .collect();

    // Every answer received: (serial, certificate PEM).
    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let (answered_tx, mut answered_rx) = tokio::sync::mpsc::channel::<()>(CLIENTS);
    let mut tasks = Vec::new();
    for (token, body) in jobs {
        let (http, url, received, answered_tx) = (
            http.clone(),
            url.clone(),
            received.clone(),
            answered_tx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let Ok(resp) = http.post(url).bearer_auth(token).json(&body).send().await else {
                return;
            };
            if resp.status() != 200 {
                return;
            }
            let Ok(v) = resp.json::<serde_json::Value>().await else {
                return;
            };
            let serial = v["serial"].as_str().unwrap().to_string();
            let pem = v["certificate"].as_str().unwrap().to_string();
            received.lock().unwrap().push((serial, pem));
            let _ = answered_tx.send(()).await;
        }));
    }
    drop(answered_tx);
    // Once a few certificates are out, the others are in flight (some in an open batch): kill.
    for _ in 0..KILL_AFTER {
        tokio::time::timeout(std::time::Duration::from_secs(60), answered_rx.recv())
            .await
            .expect("no certificate within 60 s")
            .expect("every request failed before the kill");
    }
    let dir = ca.kill9();
    for t in tasks {
        t.await.unwrap();
    }

    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty());
    let store = SqliteStore::open(&dir.join("ca.db")).unwrap();
    for (serial, pem) in &received {
        let stored = store
            .find_cert(serial)
            .unwrap()
            .unwrap_or_else(|| panic!("certificate {serial} was answered but is not stored"));
        assert_eq!(&stored.pem, pem, "{serial}");
    }
    drop(store);
    let out = admin_in(&dir, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "audit verify after kill -9: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "received {} of {CLIENTS} certificates before the kill",
        received.len()
    );
}
