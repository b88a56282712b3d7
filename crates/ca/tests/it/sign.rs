//! First issuance: times come from the authority's clock; a token is single-use and expires at
//! the exact second it says.

use mtls_ca::store::IssueKind;
use time::Duration;

use crate::harness::{new_key, on_each_store, Harness, START};

#[test]
fn issuance_times_come_from_the_clock() {
    on_each_store(|h| {
        h.advance(Duration::minutes(5));
        let holder = h.enroll("api", Some("2h"));
        let now = START + Duration::minutes(5);
        let info = pki::CertInfo::from_der(holder.der().as_ref()).unwrap();
        assert_eq!(info.not_after, now + Duration::hours(2), "{}", h.name);
        assert_eq!(holder.issued.expires_at, now + Duration::hours(2));
        // Backdated by the policy's 30 s for clock skew.
        assert_eq!(info.not_before, now - Duration::seconds(30));
        let record = h.store.find_cert(&holder.issued.serial).unwrap().unwrap();
        assert_eq!(record.issued_at, now);
        assert_eq!(record.kind, IssueKind::Sign);
        assert_eq!(record.status(h.now()), "valid");
    });
}

#[test]
fn lifetimes_are_clamped_to_the_maximum_and_refused_under_a_second() {
    on_each_store(|h| {
        let long = h.enroll("long", Some("30d"));
        assert_eq!(
            long.issued.expires_at,
            START + Duration::hours(24),
            "{}",
            h.name
        );
        let token = h.token("short", Duration::minutes(10));
        for ttl in ["500ms", "0s", "-5s", "soon"] {
            let e = h
                .sign_with(&token, "short", &new_key(), Some(ttl))
                .unwrap_err();
            assert_eq!(e.code, "bad_ttl", "{ttl}: {e}");
        }
        // Refusals stored nothing and left the token unused.
        assert_eq!(h.cert_count(), 1);
        h.sign_with(&token, "short", &new_key(), Some("1s"))
            .unwrap();
    });
}

#[test]
fn a_token_is_used_once() {
    on_each_store(|h| {
        let token = h.token("once", Duration::minutes(10));
        h.sign_with(&token, "once", &new_key(), None).unwrap();
        h.advance(Duration::seconds(1));
        let e = h.sign_with(&token, "once", &new_key(), None).unwrap_err();
        assert_eq!(e.code, "token_used", "{}: {e}", h.name);
        assert_eq!(h.cert_count(), 1);
        let stored = h
            .store
            .find_token(&mtls_ca::tokens::hash(&token))
            .unwrap()
            .unwrap();
        assert_eq!(stored.used_at, Some(START), "used when it was redeemed");
    });
}

#[test]
fn a_token_expires_at_the_exact_second() {
    on_each_store(|h| {
        let ttl = Duration::minutes(10);
        let early = h.token("early", ttl);
        let late = h.token("late", ttl);
        let expires = START + ttl;

        h.clock.set(expires - Duration::seconds(1));
        h.sign_with(&early, "early", &new_key(), None)
            .unwrap_or_else(|e| panic!("{}: one second before expiry: {e}", h.name));

        h.clock.set(expires);
        let e = h.sign_with(&late, "late", &new_key(), None).unwrap_err();
        assert_eq!(e.code, "token_expired", "{}: {e}", h.name);
        assert!(
            e.message.contains("2026-03-01T12:10:00Z"),
            "names the expiry: {}",
            e.message
        );
        assert_eq!(h.cert_count(), 1, "the expired token issued nothing");
    });
}

#[test]
fn token_lifetimes_outside_one_second_to_seven_days_are_refused() {
    let h = Harness::memory();
    let td = pki::TrustDomain::parse("mesh.local").unwrap();
    let id = pki::SpiffeId::parse("spiffe://mesh.local/service/x").unwrap();
    for ttl in [
        Duration::ZERO,
        Duration::milliseconds(999),
        Duration::days(7) + Duration::seconds(1),
    ] {
        let e = mtls_ca::admin::create_token(
            h.store.as_ref(),
            &td,
            &id,
            &[],
            &[],
            ttl,
            h.clock.as_ref(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("between 1s and 7d"), "{ttl}: {e}");
    }
    for ttl in [Duration::seconds(1), Duration::days(7)] {
        mtls_ca::admin::create_token(h.store.as_ref(), &td, &id, &[], &[], ttl, h.clock.as_ref())
            .unwrap();
    }
    let created = h.store.list_certs().unwrap();
    assert!(created.is_empty());
}
