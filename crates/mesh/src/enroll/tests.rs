use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::testing::{Fail, World, ID};

fn unreachable() -> MeshError {
    Fail::Unreachable.error("/api/v1/sign")
}

#[tokio::test(start_paused = true)]
async fn a_ca_outage_does_not_burn_the_join_token() {
    let w = World::new(time::Duration::hours(1));
    let enroller = w.enroller();
    w.ca.script(&[
        Fail::Unreachable,
        Fail::Reset,
        Fail::Refused(503, "internal"),
    ]);
    let limit = Duration::from_secs(120);
    let deadline = tokio::time::Instant::now() + limit;
    let started = tokio::time::Instant::now();
    let credential = retry_until("enrolling", deadline, limit, Duration::from_secs(1), || {
        // Before every attempt: no earlier failure has used the token up.
        assert!(enroller.fresh_token_available());
        enroller.enroll()
    })
    .await
    .unwrap();
    let calls = w.ca.calls_to("/api/v1/sign");
    assert_eq!(calls.len(), 4);
    assert_eq!(started.elapsed(), Duration::from_secs(1 + 2 + 4));
    assert!(calls
        .iter()
        .all(|c| c.token.as_deref() == Some("token-one")));
    assert_eq!(credential.spiffe_id().unwrap().to_string(), ID);
    // Issued: now it is spent.
    assert!(!enroller.fresh_token_available());
    std::fs::write(w.token_file.path(), "token-two").unwrap();
    assert!(enroller.fresh_token_available());
}

#[tokio::test(start_paused = true)]
async fn a_refusal_marks_the_token_used_and_a_throttle_does_not() {
    let w = World::new(time::Duration::hours(1));
    let enroller = w.enroller();
    w.ca.script(&[Fail::Refused(429, "too_many_requests")]);
    let err = enroller.enroll().await.unwrap_err();
    assert!(is_retryable(&err));
    assert!(enroller.fresh_token_available());
    for (status, code) in [(401, "token_used"), (403, "identity_not_authorised")] {
        std::fs::write(w.token_file.path(), format!("token-{code}")).unwrap();
        assert!(enroller.fresh_token_available());
        w.ca.script(&[Fail::Refused(status, code)]);
        enroller.enroll().await.unwrap_err();
        assert!(!enroller.fresh_token_available(), "{status} {code}");
    }
}

#[tokio::test(start_paused = true)]
async fn retries_of_one_enrollment_reuse_its_key_until_the_ca_decides() {
    let w = World::new(time::Duration::hours(1));
    let enroller = w.enroller();
    // The answers lost: the CA may have issued for the first CSR; every retry sends it again.
    w.ca.script(&[
        Fail::Unreachable,
        Fail::Reset,
        Fail::Refused(503, "internal"),
    ]);
    for _ in 0..3 {
        let err = enroller.enroll().await.unwrap_err();
        assert!(is_retryable(&err), "{err}");
    }
    let credential = enroller.enroll().await.unwrap();
    let keys: Vec<Vec<u8>> =
        w.ca.calls_to("/api/v1/sign")
            .into_iter()
            .map(|c| c.spki.unwrap())
            .collect();
    assert_eq!(keys.len(), 4);
    assert!(
        keys.iter().all(|k| k == &keys[0]),
        "one key for all retries"
    );
    let (_, cert) = X509Certificate::from_der(&credential.chain[0]).unwrap();
    assert_eq!(cert.tbs_certificate.subject_pki.raw, keys[0].as_slice());

    // Issued: the next enrollment with the same token starts with a new key, and so does
    // each attempt after a refusal for good.
    w.ca.script(&[
        Fail::Refused(401, "token_used"),
        Fail::Refused(400, "bad_csr"),
    ]);
    enroller.enroll().await.unwrap_err();
    enroller.enroll().await.unwrap_err();
    enroller.enroll().await.unwrap();
    let next: Vec<Vec<u8>> = w.ca.calls_to("/api/v1/sign")[4..]
        .iter()
        .map(|c| c.spki.clone().unwrap())
        .collect();
    assert_eq!(next.len(), 3);
    assert_ne!(next[0], keys[0]);
    assert_ne!(next[1], next[0]);
    assert_ne!(next[2], next[1]);
}

#[tokio::test(start_paused = true)]
async fn retries_of_one_renewal_reuse_its_key_until_the_ca_decides() {
    let w = World::new(time::Duration::hours(1));
    let enroller = w.enroller();
    let current = enroller.enroll().await.unwrap();
    w.ca.script(&[
        Fail::Unreachable,
        Fail::Refused(502, "http"),
        Fail::Refused(408, "http"),
    ]);
    for _ in 0..3 {
        enroller.renew(&current).await.unwrap_err();
    }
    let renewed = enroller.renew(&current).await.unwrap();
    let keys: Vec<Vec<u8>> =
        w.ca.calls_to("/api/v1/renew")
            .into_iter()
            .map(|c| c.spki.unwrap())
            .collect();
    assert_eq!(keys.len(), 4);
    assert!(
        keys.iter().all(|k| k == &keys[0]),
        "one key for all retries"
    );
    let (_, cert) = X509Certificate::from_der(&renewed.chain[0]).unwrap();
    assert_eq!(cert.tbs_certificate.subject_pki.raw, keys[0].as_slice());

    // The next renewal (of the new certificate) starts with a fresh key; refused for good,
    // the attempt after that uses another key again.
    w.ca.script(&[
        Fail::Refused(403, "certificate_revoked"),
        Fail::Refused(403, "certificate_revoked"),
    ]);
    enroller.renew(&renewed).await.unwrap_err();
    enroller.renew(&renewed).await.unwrap_err();
    let next: Vec<Vec<u8>> = w.ca.calls_to("/api/v1/renew")[4..]
        .iter()
        .map(|c| c.spki.clone().unwrap())
        .collect();
    assert_ne!(next[0], keys[0]);
    assert_ne!(next[1], next[0]);
}

#[test]
fn classification() {
    assert!(is_retryable(&unreachable()));
    assert!(is_retryable(&Fail::Reset.error("/api/v1/sign")));
    let refused = |status| MeshError::CaRefused {
        status,
        code: "x".into(),
        message: "y".into(),
    };
    for status in [400, 401, 403, 404, 413] {
        assert!(!is_retryable(&refused(status)), "{status}");
    }
    for status in [408, 429, 500, 502, 503] {
        assert!(is_retryable(&refused(status)), "{status}");
    }
    let wrong_root = crate::error::TrustError::RootFingerprint {
        url: "https://localhost:1".into(),
        expected: "00".repeat(32),
        presented: vec!["11".repeat(32)],
    };
    assert!(!is_retryable(&wrong_root.into()));
    assert!(!is_retryable(&crate::error::ConfigError::NoCaUrl.into()));
}

#[tokio::test(start_paused = true)]
async fn retries_until_the_ca_answers() {
    let calls = AtomicU32::new(0);
    let limit = Duration::from_secs(120);
    let deadline = tokio::time::Instant::now() + limit;
    let started = tokio::time::Instant::now();
    let got = retry_until("enrolling", deadline, limit, Duration::from_secs(1), || {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 4 {
                Err(unreachable())
            } else {
                Ok(n)
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, 4);
    // 1 + 2 + 4 + 8 s of backoff.
    assert_eq!(started.elapsed(), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn refusals_fail_at_once() {
    let calls = AtomicU32::new(0);
    let limit = Duration::from_secs(120);
    let deadline = tokio::time::Instant::now() + limit;
    let started = tokio::time::Instant::now();
    let err = retry_until("enrolling", deadline, limit, Duration::from_secs(1), || {
        calls.fetch_add(1, Ordering::SeqCst);
        async {
            Err::<(), _>(MeshError::CaRefused {
                status: 401,
                code: "token_used".into(),
                message: "the join token has already been used".into(),
            })
        }
    })
    .await
    .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(err.to_string().contains("(401, token_used)"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn gives_up_at_the_deadline_with_the_cause() {
    let calls = AtomicU32::new(0);
    let limit = Duration::from_secs(120);
    let deadline = tokio::time::Instant::now() + limit;
    let err = retry_until("enrolling", deadline, limit, Duration::from_secs(1), || {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(unreachable()) }
    })
    .await
    .unwrap_err();
    assert_eq!(tokio::time::Instant::now(), deadline);
    assert!(calls.load(Ordering::SeqCst) > 5);
    let text = err.to_string();
    assert!(
        text.contains("gave up after 2m (--enroll-timeout)"),
        "{text}"
    );
    assert!(text.contains("Connection refused"), "{text}");
}
