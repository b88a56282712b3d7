//! kill -9 of one replica during a burst of signings and renewals from clients that fail over
//! to the other replicas: every client enrolls and renews (a sign or renewal the killed replica
//! committed without answering is answered by the next one with the same certificate), nothing
//! a client received is lost, every stored certificate has its audit entry, and no client
//! needed more than one try per replica.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::super::ca::common::*;
use super::failover_client::FailoverClient;
use super::shared_state::Replicas;

const WORKERS: usize = 12;
const RENEWALS: usize = 3;

struct Burst {
    client: FailoverClient,
    /// Every certificate a client received: serial and PEM.
    received: Mutex<Vec<(String, String)>>,
    count: AtomicUsize,
    progress: tokio::sync::Notify,
}

impl Burst {
    fn receive(&self, body: &serde_json::Value) -> String {
        let serial = body["serial"].as_str().unwrap().to_string();
        let pem = body["certificate"].as_str().unwrap().to_string();
        self.received.lock().unwrap().push((serial, pem.clone()));
        self.count.fetch_add(1, Ordering::SeqCst);
        self.progress.notify_waiters();
        pem
    }

    /// Enrolls and renews; returns the most replicas one request needed.
    async fn worker(&self, i: usize, id: String, token: String) -> usize {
        let preferred = i % self.client.urls.len();
        // A retry on the next replica sends the same CSR (the same key): a sign the killed
        // replica committed without answering is answered with that certificate, not refused
        // as a used token.
        let (key, request) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]);
        let signed = self
            .client
            .post(
                preferred,
                "/api/v1/sign",
                Some(&token),
                None,
                &sign_body(&request, &id, None),
            )
            .await
            .unwrap_or_else(|e| panic!("{id}: no replica answered the sign: {e}"));
        assert_eq!(signed.status, 200, "{id}: {}", signed.body);
        let mut max_attempts = signed.attempts;
        let mut holder = Identity {
            cert_pem: self.receive(&signed.body),
            key_pem: key.serialize_pem(),
        };
        for _ in 0..RENEWALS {
            // A retry on the next replica sends the same CSR (the same key): a renewal the
            // killed replica committed is answered with that certificate, not refused.
            let (key, request) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]);
            let renewed = self
                .client
                .post(
                    preferred,
                    "/api/v1/renew",
                    None,
                    Some(&holder),
                    &serde_json::json!({ "csr": request }),
                )
                .await
                .unwrap_or_else(|e| panic!("{id}: no replica answered the renewal: {e}"));
            assert_eq!(renewed.status, 200, "{id}: {}", renewed.body);
            max_attempts = max_attempts.max(renewed.attempts);
            holder = Identity {
                cert_pem: self.receive(&renewed.body),
                key_pem: key.serialize_pem(),
            };
        }
        max_attempts
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_a_replica_during_a_burst_loses_no_certificate_a_client_received() {
    let mut r = Replicas::start(3, &[]);
    let jobs: Vec<(String, String)> = (0..WORKERS)
        .map(|i| {
            let id = format!("spiffe://mesh.local/burst/w{i}");
            let token = r.token(&id);
            (id, token)
        })
        .collect();
    let burst = Arc::new(Burst {
        client: FailoverClient {
            urls: r.cas.iter().map(|ca| ca.url("")).collect(),
            root_pem: r.cas[0].root_pem(),
        },
        received: Mutex::new(Vec::new()),
        count: AtomicUsize::new(0),
        progress: tokio::sync::Notify::new(),
    });
    let workers: Vec<_> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, (id, token))| {
            let burst = burst.clone();
            tokio::spawn(async move { burst.worker(i, id, token).await })
        })
        .collect();

    // Once a third of the certificates are out, replica 0 dies mid-burst (a third of the
    // clients prefer it).
    let total = WORKERS * (1 + RENEWALS);
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let notified = burst.progress.notified();
            if burst.count.load(Ordering::SeqCst) >= total / 3 {
                break;
            }
            notified.await;
        }
    })
    .await
    .expect("a third of the burst within 60 s");
    r.cas.remove(0).kill9();
    let at_kill = burst.count.load(Ordering::SeqCst);

    for worker in workers {
        let max_attempts = worker.await.unwrap();
        assert!(
            max_attempts <= 2,
            "one dead replica costs at most one more try, not {max_attempts}"
        );
    }
    let received = burst.received.lock().unwrap().clone();
    assert!(
        at_kill < received.len(),
        "the kill landed mid-burst ({at_kill} of {} received before it)",
        received.len()
    );
    assert_eq!(
        received.len(),
        WORKERS * (1 + RENEWALS),
        "every client got every certificate"
    );

    // Every certificate a client received is stored, as received.
    let stored: HashMap<String, serde_json::Value> = {
        let out = r.admin(&["list", "--format", "json"]);
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["serial"].as_str().unwrap().to_string(), c.clone()))
            .collect()
    };
    // One certificate per token: a retried sign stored nothing new.
    let signed = stored.values().filter(|c| c["kind"] == "sign").count();
    assert_eq!(signed, WORKERS, "one certificate per join token");
    for (serial, pem) in &received {
        let der = pki::pem::parse_certificates(pem.as_bytes())
            .unwrap()
            .remove(0);
        let row = stored
            .get(serial)
            .unwrap_or_else(|| panic!("certificate {serial} was received but is not stored"));
        assert_eq!(row["fingerprint"], pki::sha256_hex(&der), "{serial}");
    }
    // And every stored certificate has its audit entry: `audit verify` replays the chain
    // against the tables and names any row no entry created.
    let verdict = r.audit_verify();
    assert!(
        verdict.contains("audit log intact") && verdict.contains("tables match it"),
        "{verdict}"
    );
}
