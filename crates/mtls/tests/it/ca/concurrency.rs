//! Concurrent issuance: distinct serials under load, and one token redeemed exactly once.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashSet;

use super::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_signs_get_distinct_serials() {
    let ca = Ca::start(&[]);
    let http = client(&ca.root_pem(), None);
    let mut jobs = Vec::new();
    for i in 0..200 {
        let id = format!("spiffe://mesh.local/load/w{i}");
        let token = ca.token(&id, &[]);
        let (_, c) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]);
        jobs.push((token, sign_body(&c, &id, Some("5m"))));
    }
    let futures = jobs.iter().map(|(token, body)| {
        let http = http.clone();
        let url = ca.url("/api/v1/sign");
        async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            let v: serde_json::Value = resp.json().await.unwrap();
            v["serial"].as_str().unwrap().to_string()
        }
    });
    let serials: Vec<String> = futures::future::join_all(futures).await;
    let distinct: HashSet<&String> = serials.iter().collect();
    assert_eq!(distinct.len(), 200);
    assert_eq!(ca.cert_count(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_uses_of_one_token_give_one_certificate() {
    let ca = Ca::start(&[]);
    let http = client(&ca.root_pem(), None);
    let id = "spiffe://mesh.local/service/race";
    let token = ca.token(id, &[]);
    let bodies: Vec<serde_json::Value> = (0..20)
        .map(|_| sign_body(&csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1, id, None))
        .collect();
    let futures = bodies.iter().map(|body| {
        let http = http.clone();
        let url = ca.url("/api/v1/sign");
        let token = token.clone();
        async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let v: serde_json::Value = resp.json().await.unwrap();
            (status, v)
        }
    });
    let results = futures::future::join_all(futures).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 1, "{results:?}");
    for (s, v) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*s, 401);
        assert_eq!(v["error"]["code"], "token_used");
    }
    assert_eq!(ca.cert_count(), 1);
}
