//! A join-token sign repeated after the CA redeemed the token (its answer lost): the same key
//! for the same identity gets the certificate issued then, and nothing is stored or audited;
//! another key, or a certificate since revoked or expired, stays `token_used`, saying which.
//! A concurrent duplicate that loses the redemption gets the winner's certificate.

use std::sync::{Arc, Mutex};

use mtls_ca::authority::{Authority, Issued, SignInput};
use mtls_ca::error::AuthorityError;
use mtls_ca::store::Store;
use time::Duration;

use crate::harness::{config, csr, full_id, new_key, on_each_store, Harness};
use crate::racing_store::RacingStore;

fn head(h: &Harness) -> i64 {
    h.store.audit_head().unwrap().unwrap().seq
}

fn sign_csr(
    authority: &Authority,
    token: &str,
    id: &str,
    csr: &str,
) -> Result<Issued, AuthorityError> {
    authority.sign(&SignInput {
        token,
        csr_pem: csr,
        requested_id: &full_id(id),
        ttl: None,
    })
}

#[test]
fn a_retry_with_the_same_key_gets_the_same_certificate_and_stores_nothing() {
    on_each_store(|h| {
        let token = h.token("api", Duration::minutes(10));
        let key = new_key();
        let request = csr(&key);
        let first = sign_csr(&h.authority, &token, "api", &request).unwrap();
        let audited = head(h);
        h.advance(Duration::seconds(5));
        // The answer was lost; the client sends the same request again, then (another
        // client build) a new CSR for the same key.
        let again = sign_csr(&h.authority, &token, "api", &request)
            .unwrap_or_else(|e| panic!("{}: the same CSR again: {e}", h.name));
        let resigned = h
            .sign_with(&token, "api", &key, Some("2h"))
            .unwrap_or_else(|e| panic!("{}: a new CSR for the same key: {e}", h.name));
        for retried in [&again, &resigned] {
            assert_eq!(retried.serial, first.serial, "{}", h.name);
            assert_eq!(retried.certificate, first.certificate);
            assert_eq!(
                retried.expires_at, first.expires_at,
                "the lifetime issued then"
            );
            assert_eq!(retried.chain, first.chain);
            assert_eq!(retried.spiffe_id, first.spiffe_id);
        }
        assert_eq!(h.cert_count(), 1, "{}: exactly one certificate", h.name);
        assert_eq!(head(h), audited, "{}: no audit entry for a retry", h.name);
        let issues = h
            .store
            .list_certs()
            .unwrap()
            .into_iter()
            .filter(|c| c.serial == first.serial)
            .count();
        assert_eq!(issues, 1);
        let stored = h
            .store
            .find_token(&mtls_ca::tokens::hash(&token))
            .unwrap()
            .unwrap();
        assert_eq!(stored.used_serial.as_deref(), Some(first.serial.as_str()));
    });
}

#[test]
fn a_retry_with_another_key_or_identity_or_a_bad_csr_is_refused() {
    on_each_store(|h| {
        let token = h.token("api", Duration::minutes(10));
        let key = new_key();
        let first = h.sign_with(&token, "api", &key, None).unwrap();
        let audited = head(h);
        let e = h.sign_with(&token, "api", &new_key(), None).unwrap_err();
        assert_eq!(e.code, "token_used", "{}: {e}", h.name);
        assert!(
            e.message.contains("already been used")
                && e.message.contains("another key")
                && !e.message.contains(&first.serial),
            "{}",
            e.message
        );
        let e = h.sign_with(&token, "web", &key, None).unwrap_err();
        assert_eq!(e.code, "token_used", "{}: {e}", h.name);
        assert!(e.message.contains("service/web"), "{}", e.message);
        // The CSR is checked as for a first sign: a tampered one is bad input.
        let mut der = pki::pem::parse_single(csr(&key).as_bytes(), "CERTIFICATE REQUEST").unwrap();
        let n = der.len();
        der[n - 2] ^= 0x5a;
        let tampered = pki::pem::encode("CERTIFICATE REQUEST", &der);
        let e = sign_csr(&h.authority, &token, "api", &tampered).unwrap_err();
        assert_eq!(e.code, "bad_csr", "{}: {e}", h.name);
        assert_eq!(h.cert_count(), 1);
        assert_eq!(head(h), audited);
    });
}

#[test]
fn a_retry_after_revocation_or_expiry_is_refused_saying_so() {
    on_each_store(|h| {
        let token = h.token("gone", Duration::minutes(10));
        let key = new_key();
        let first = h.sign_with(&token, "gone", &key, None).unwrap();
        h.store
            .revoke(&first.serial, None, "admin test", h.now())
            .unwrap();
        let e = h.sign_with(&token, "gone", &key, None).unwrap_err();
        assert_eq!(e.code, "token_used", "{}: {e}", h.name);
        assert!(
            e.message.contains(&first.serial) && e.message.contains("has been revoked"),
            "{}",
            e.message
        );

        let token = h.token("old", Duration::minutes(10));
        let first = h.sign_with(&token, "old", &key, Some("1h")).unwrap();
        h.advance(Duration::hours(1));
        let e = h.sign_with(&token, "old", &key, None).unwrap_err();
        assert_eq!(e.code, "token_used", "{}: {e}", h.name);
        assert!(
            e.message.contains(&first.serial) && e.message.contains("expired at"),
            "{}",
            e.message
        );
        // One second earlier it was still answered.
        h.clock.set(first.expires_at - Duration::seconds(1));
        let again = h.sign_with(&token, "old", &key, None).unwrap();
        assert_eq!(again.serial, first.serial);
        assert_eq!(h.cert_count(), 2);
    });
}

#[test]
fn concurrent_duplicates_with_the_same_csr_all_get_the_one_certificate() {
    on_each_store(|h| {
        let token = h.token("race", Duration::minutes(10));
        let request = csr(&new_key());
        let serials: Vec<String> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| s.spawn(|| sign_csr(&h.authority, &token, "race", &request)))
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap().unwrap().serial)
                .collect()
        });
        assert!(serials.iter().all(|s| s == &serials[0]), "{serials:?}");
        assert_eq!(h.cert_count(), 1, "{}", h.name);
    });
}

#[test]
fn the_loser_of_a_redemption_race_gets_the_winners_certificate_for_the_same_key() {
    on_each_store(|h| {
        // A rival request redeems the token after this one's checks and signature, right
        // before its redemption: the redemption finds the token used.
        let racing = Arc::new(RacingStore::new(h.store.clone()));
        let loser = Authority::new(
            h.authority.ca(),
            vec![],
            racing.clone(),
            config(),
            h.clock.clone(),
        );
        let token = h.token("race", Duration::minutes(10));
        let key = new_key();
        let request = csr(&key);
        let winner: Arc<Mutex<Option<Issued>>> = Arc::default();
        let arm = |request: String| {
            let rival = Authority::new(
                h.authority.ca(),
                vec![],
                h.store.clone(),
                config(),
                h.clock.clone(),
            );
            let (token, winner) = (token.clone(), winner.clone());
            racing.arm_redeem(move |_: &dyn Store| {
                let won = sign_csr(&rival, &token, "race", &request).unwrap();
                *winner.lock().unwrap() = Some(won);
            });
        };
        arm(request.clone());
        let lost = sign_csr(&loser, &token, "race", &request)
            .unwrap_or_else(|e| panic!("{}: the loser: {e}", h.name));
        let won = winner.lock().unwrap().take().expect("the rival ran");
        assert_eq!(lost.serial, won.serial, "{}", h.name);
        assert_eq!(lost.certificate, won.certificate);
        assert_eq!(h.cert_count(), 1, "the loser's certificate is dropped");

        // A loser with another key is refused.
        let token2 = h.token("race2", Duration::minutes(10));
        let rival = Authority::new(
            h.authority.ca(),
            vec![],
            h.store.clone(),
            config(),
            h.clock.clone(),
        );
        let winner_csr = csr(&new_key());
        racing.arm_redeem({
            let token2 = token2.clone();
            move |_: &dyn Store| {
                sign_csr(&rival, &token2, "race2", &winner_csr).unwrap();
            }
        });
        let e = sign_csr(&loser, &token2, "race2", &request).unwrap_err();
        assert_eq!(e.code, "token_used", "{}: {e}", h.name);
        assert!(e.message.contains("another key"), "{}", e.message);
        assert_eq!(h.cert_count(), 2);
    });
}

#[test]
fn a_forged_link_does_not_pass_audit_verify() {
    let h = Harness::sqlite();
    let a = h.token("a", Duration::minutes(10));
    let b = h.token("b", Duration::minutes(10));
    let unused = h.token("c", Duration::minutes(10));
    h.sign_with(&a, "a", &new_key(), None).unwrap();
    let b_cert = h.sign_with(&b, "b", &new_key(), None).unwrap();
    let db = rusqlite::Connection::open(h.store_dir().join("ca.db")).unwrap();
    let forge = |token: &str, serial: &str| {
        db.execute(
            "UPDATE tokens SET used_serial = ?1 WHERE hash = ?2",
            [serial, mtls_ca::tokens::hash(token).as_str()],
        )
        .unwrap();
    };
    let mismatch = |what: &str| match h.store.verify_audit().unwrap() {
        mtls_ca::store::AuditCheck::Mismatch { problems, .. } => {
            assert!(
                problems.iter().any(|p| p.contains("used_serial")),
                "{what}: {problems:?}"
            );
        }
        other => panic!("{what}: a forged link passed: {other:?}"),
    };
    // A used token pointed at another token's certificate.
    forge(&a, &b_cert.serial);
    mismatch("a used token's link");
    db.execute(
        "UPDATE tokens SET used_serial = NULL WHERE hash = ?1",
        [mtls_ca::tokens::hash(&a)],
    )
    .unwrap();
    mismatch("a used token's link removed");
    // A link on a token no entry redeemed.
    let sa = h
        .store
        .list_certs()
        .unwrap()
        .into_iter()
        .find(|c| c.spiffe_id.ends_with("/a"))
        .unwrap()
        .serial;
    forge(&a, &sa);
    assert!(matches!(
        h.store.verify_audit().unwrap(),
        mtls_ca::store::AuditCheck::Intact { .. }
    ));
    forge(&unused, &b_cert.serial);
    mismatch("an unused token's link");
}
