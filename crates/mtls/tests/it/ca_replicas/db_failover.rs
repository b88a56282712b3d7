//! The database goes away under a running CA: the last good CRL keeps being served and
//! readiness says the store is down; a crashed primary replaced by its promoted synchronous
//! standby (multi-host URL) is followed by the CA without losing any certificate it handed out.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use tokio::time::Instant;

use super::super::ca::common::*;
use testkit::postgres::PgCluster;

async fn get(http: &reqwest::Client, url: String) -> (u16, Vec<u8>) {
    let resp = http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

async fn metrics(http: &reqwest::Client, ca: &Ca) -> String {
    String::from_utf8(get(http, ca.url("/metrics")).await.1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_down_the_last_good_crl_is_served_and_readiness_is_degraded() {
    // A cluster of its own: this test stops and starts its server.
    let mut cluster = PgCluster::start();
    let url = cluster.new_database();
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::start_in(&tmp.path().join("ca"), &["--store", &url]);
    let dir = tmp.path().join("other");
    super::shared_state::copy_root(&ca.dir, &dir);
    // A second replica that has not signed a CRL yet: it has no good copy to fall back on.
    let fresh = Ca::start_in(&dir, &["--store", &url]);
    let http = client(&ca.root_pem(), None);
    let (status, crl) = get(&http, ca.url("/api/v1/crl")).await;
    assert_eq!(status, 200);
    let up = metrics(&http, &ca).await;
    assert!(up.contains("\nmtls_ca_store_up 1\n"), "{up}");

    cluster.stop_server();
    let (status, served) = get(&http, ca.url("/api/v1/crl")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&served));
    assert_eq!(served, crl, "the last good CRL, byte for byte");
    // The bundle needs no database at all.
    let (status, bundle) = get(&http, ca.url("/api/v1/bundle")).await;
    assert_eq!((status, bundle), (200, ca.root_pem()));
    // Readiness: /healthz 503, the store gauge 0, the stale CRL counted.
    let (status, health) = get(&http, ca.url("/healthz")).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&health));
    let down = metrics(&http, &ca).await;
    assert!(
        down.contains("\nmtls_ca_store_up 0\n")
            && down.contains("\nmtls_ca_crl_served_stale_total 1\n"),
        "{down}"
    );
    // Logged (the log is read from the CA's stderr as it comes: wait for the line).
    ca.proc.wait_for(
        |l| l.contains("serving the last good CRL"),
        Duration::from_secs(10),
    );
    // No good copy: 503 with Retry-After, as for every other call that needs the database.
    let resp = http.get(fresh.url("/api/v1/crl")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "store_unreachable", "{v}");

    cluster.start_server();
    let (status, _) = get(&http, fresh.url("/api/v1/crl")).await;
    assert_eq!(status, 200);
    let up = metrics(&http, &ca).await;
    assert!(up.contains("\nmtls_ca_store_up 1\n"), "{up}");
}

/// Signs with `token` on `ca`, retrying after `Retry-After` while the CA answers 503, until
/// `deadline`; returns the certificate's serial and PEM.
async fn sign_when_ready(
    http: &reqwest::Client,
    ca: &Ca,
    token: &str,
    id: &str,
    deadline: Instant,
) -> (String, String) {
    let body = sign_body(&csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1, id, None);
    loop {
        let (status, v) = sign(http, ca, token, &body).await;
        if status == 200 {
            return (
                v["serial"].as_str().unwrap().to_string(),
                v["certificate"].as_str().unwrap().to_string(),
            );
        }
        assert_eq!(status, 503, "{v}");
        assert_eq!(v["error"]["code"], "store_unreachable", "{v}");
        assert!(Instant::now() < deadline, "the CA did not sign again: {v}");
        // What Retry-After asks for (1 s).
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_primary_crashes_the_ca_follows_the_promoted_standby_and_lost_nothing() {
    let mut primary = PgCluster::start();
    let url = primary.new_database();
    let db = url.rsplit('/').next().unwrap().to_string();
    let mut standby = primary.standby(&[]);
    // Synchronous replication: a commit returns (and the CA answers) only once the standby has
    // the transaction, so a promoted standby holds every certificate a client was given.
    primary.psql(
        "postgres",
        "ALTER SYSTEM SET synchronous_standby_names = '*'",
    );
    primary.psql("postgres", "SELECT pg_reload_conf()");
    let multi = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{db}?target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::start_in(&tmp.path().join("ca"), &["--store", &multi]);
    assert_eq!(
        primary.psql("postgres", "SELECT sync_state FROM pg_stat_replication"),
        "sync"
    );
    let http = client(&ca.root_pem(), None);
    let ids: Vec<String> = (0..6)
        .map(|i| format!("spiffe://mesh.local/failover/s{i}"))
        .collect();
    let tokens: Vec<String> = ids
        .iter()
        .map(|id| ca.token(id, &["--store", &multi]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = Vec::new();
    for i in 0..3 {
        received.push(sign_when_ready(&http, &ca, &tokens[i], &ids[i], deadline).await);
    }

    primary.crash_server();
    // The primary is gone and the standby is read-only: 503, nothing issued.
    let body = sign_body(&csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1, &ids[3], None);
    let resp = http
        .post(ca.url("/api/v1/sign"))
        .bearer_auth(&tokens[3])
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let (status, _) = get(&http, ca.url("/healthz")).await;
    assert_eq!(status, 503);

    standby.promote();
    for i in 3..6 {
        received.push(sign_when_ready(&http, &ca, &tokens[i], &ids[i], deadline).await);
    }
    // Healthy again once the verdict cached during the outage (one second) has expired.
    while get(&http, ca.url("/healthz")).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "/healthz stayed 503 after the failover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every certificate handed out, before and after the failover, is on the new primary
    // (the standby's own URL: the old primary is gone for good).
    let stored = standby.psql(&db, "SELECT serial FROM certs");
    for (serial, _) in &received {
        assert!(
            stored.lines().any(|l| l == serial),
            "{serial} was handed out but is not on the promoted standby: {stored}"
        );
    }
    let out = ca.admin(&["--store", &standby.url(&db), "audit", "verify"]);
    let verdict = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && verdict.contains("audit log intact"),
        "{verdict}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
