//! A join-token sign is safe to retry on another replica: a sign one replica committed, whose
//! answer never reached the client (the replica killed after its commit), is answered by the
//! next replica with the same certificate when the retry carries the same CSR key; concurrent
//! duplicates of one request spread over the replicas all get the one certificate.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::super::ca::common::*;
use super::shared_state::Replicas;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_committed_by_a_killed_replica_is_answered_by_the_next_with_its_certificate() {
    let mut r = Replicas::start(3, &[]);
    let id = "spiffe://mesh.local/service/lost";
    let token = r.token(id);
    let http = client(&r.cas[0].root_pem(), None);
    let body = sign_body(&csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1, id, None);
    // Replica 0 commits the redemption; its answer is lost with it.
    let (status, committed) = sign(&http, &r.cas[0], &token, &body).await;
    assert_eq!(status, 200, "{committed}");
    r.cas.remove(0).kill9();

    let (status, retried) = sign(&http, &r.cas[0], &token, &body).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["serial"], committed["serial"]);
    assert_eq!(retried["certificate"], committed["certificate"]);
    assert_eq!(retried["chain"], committed["chain"]);
    // Another key through the third replica: refused, nothing stored.
    let other = sign_body(&csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1, id, None);
    let (status, v) = sign(&http, &r.cas[1], &token, &other).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["code"], "token_used", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another key"),
        "{v}"
    );
    assert_eq!(r.cert_count(), 1);
    let verdict = r.audit_verify();
    assert!(verdict.contains("audit log intact"), "{verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_duplicates_of_one_sign_over_three_replicas_all_get_the_one_certificate() {
    let r = Replicas::start(3, &[]);
    let id = "spiffe://mesh.local/service/dup";
    let token = r.token(id);
    let http = client(&r.cas[0].root_pem(), None);
    let body = sign_body(&csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1, id, None);
    let requests = (0..30).map(|i| {
        let (http, token, body) = (http.clone(), token.clone(), body.clone());
        let url = r.cas[i % 3].url("/api/v1/sign");
        async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let v: serde_json::Value = resp.json().await.unwrap();
            (status, v)
        }
    });
    let results = futures::future::join_all(requests).await;
    for (status, v) in &results {
        assert_eq!(*status, 200, "{v}");
        assert_eq!(v["serial"], results[0].1["serial"]);
        assert_eq!(v["certificate"], results[0].1["certificate"]);
    }
    assert_eq!(r.cert_count(), 1);
    let verdict = r.audit_verify();
    assert!(verdict.contains("audit log intact"), "{verdict}");
}
