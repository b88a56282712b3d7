#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use pki::clock::ManualClock;
use pki::{CaMaterial, Curve, IssuancePolicy, SpiffeId, TrustDomain};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::{check_body, CheckedBody, Endpoint};
use crate::authority::{Authority, AuthorityConfig, SignInput};
use crate::store::SqliteStore;

const ID: &str = "spiffe://mesh.local/service/api";

fn config() -> AuthorityConfig {
    AuthorityConfig {
        trust_domain: TrustDomain::parse("mesh.local").unwrap(),
        default_ttl: Duration::hours(1),
        max_ttl: Duration::hours(24),
        admin_id: None,
        policy: IssuancePolicy::default(),
    }
}

fn csr(curve: Curve, ca: bool) -> String {
    let key = pki::keys::generate(curve).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn body(value: serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn code(endpoint: Endpoint, bytes: &[u8]) -> &'static str {
    match check_body(endpoint, bytes, &config()) {
        Ok(ok) => panic!("accepted {ok:?}"),
        Err(e) => e.code,
    }
}

#[test]
fn a_sign_body_gives_the_identity_lifetime_and_key_the_authority_uses() {
    let cfg = config();
    for (ttl, expected) in [
        (None, Duration::hours(1)),
        (Some(" "), Duration::hours(1)),
        (Some("2h"), Duration::hours(2)),
        (Some("48h"), Duration::hours(24)),
    ] {
        let bytes = body(json!({"csr": csr(Curve::P384, false), "requested_id": ID, "ttl": ttl}));
        let CheckedBody::Sign {
            requested_id,
            ttl,
            csr,
        } = check_body(Endpoint::Sign, &bytes, &cfg).unwrap()
        else {
            panic!("not a sign body")
        };
        assert_eq!(requested_id.to_string(), ID);
        assert_eq!(ttl, expected);
        assert_eq!(csr.curve, Curve::P384);
    }
    let bytes = body(json!({"csr": csr(Curve::P521, false)}));
    assert!(matches!(
        check_body(Endpoint::Renew, &bytes, &cfg).unwrap(),
        CheckedBody::Renew { csr, ttl } if csr.curve == Curve::P521 && ttl == Duration::hours(1)
    ));
    let bytes = body(json!({"serial": "0x00:4F:1a", "reason": "KEYCOMPROMISE"}));
    let CheckedBody::Revoke { serial, reason } =
        check_body(Endpoint::Revoke, &bytes, &cfg).unwrap()
    else {
        panic!("not a revoke body")
    };
    assert_eq!(serial, "4f1a");
    assert_eq!(reason.as_deref(), Some("KEYCOMPROMISE"));
}

#[test]
fn every_refusal_carries_the_code_the_api_sends() {
    let good = csr(Curve::P256, false);
    let sign = |id: &str, ttl: &str| body(json!({"csr": good, "requested_id": id, "ttl": ttl}));
    let cases: Vec<(Endpoint, Vec<u8>, &str)> = vec![
        (Endpoint::Sign, b"".to_vec(), "bad_json"),
        (Endpoint::Sign, b"{\"csr\": ".to_vec(), "bad_json"),
        (Endpoint::Sign, body(json!({"csr": good})), "bad_json"),
        (
            Endpoint::Sign,
            body(json!({"csr": good, "requested_id": ID, "admin": true})),
            "bad_json",
        ),
        (
            Endpoint::Sign,
            body(json!({"csr": 1, "requested_id": ID})),
            "bad_json",
        ),
        (
            Endpoint::Sign,
            vec![b' '; super::super::MAX_BODY + 1],
            "body_too_large",
        ),
        (
            Endpoint::Sign,
            sign("spiffe://mesh.local/", "1h"),
            "bad_spiffe_id",
        ),
        (
            Endpoint::Sign,
            sign("spiffe://mesh.local/ca/x", "1h"),
            "reserved_identity",
        ),
        (
            Endpoint::Sign,
            sign("spiffe://other.td/service/api", "1h"),
            "wrong_trust_domain",
        ),
        (Endpoint::Sign, sign(ID, "soon"), "bad_ttl"),
        (Endpoint::Sign, sign(ID, "0s"), "bad_ttl"),
        (Endpoint::Sign, sign(ID, "999ms"), "bad_ttl"),
        (Endpoint::Sign, sign(ID, "-1h"), "bad_ttl"),
        (Endpoint::Sign, sign(ID, "584542046091y"), "bad_ttl"),
        (
            Endpoint::Sign,
            body(json!({"csr": "garbage", "requested_id": ID})),
            "bad_csr",
        ),
        (
            Endpoint::Sign,
            body(json!({"csr": csr(Curve::P384, true), "requested_id": ID})),
            "csr_requests_ca",
        ),
        (
            Endpoint::Renew,
            body(json!({"csr": good, "requested_id": ID})),
            "bad_json",
        ),
        (
            Endpoint::Renew,
            body(json!({"csr": good, "ttl": 5})),
            "bad_json",
        ),
        (
            Endpoint::Renew,
            body(json!({"csr": csr(Curve::P256, true)})),
            "csr_requests_ca",
        ),
        (
            Endpoint::Revoke,
            body(json!({"reason": "superseded"})),
            "bad_json",
        ),
        (
            Endpoint::Revoke,
            body(json!({"serial": "xyz"})),
            "bad_serial",
        ),
        (Endpoint::Revoke, body(json!({"serial": ":"})), "bad_serial"),
        (
            Endpoint::Revoke,
            body(json!({"serial": "4f", "reason": "removeFromCRL"})),
            "bad_reason",
        ),
    ];
    for (endpoint, bytes, expected) in cases {
        assert_eq!(
            code(endpoint, &bytes),
            expected,
            "{endpoint:?} {}",
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(200)
                .collect::<String>()
        );
    }
}

/// The fuzz targets test `check_body`; this keeps it honest: for bodies the store would let
/// through (a valid join token, a current certificate), the real authority refuses with the
/// same code and message, and accepts what `check_body` accepts.
#[test]
fn agrees_with_the_authority_on_every_store_independent_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::create(&tmp.path().join("ca.db"), &[("trust_domain", "mesh.local")]).unwrap(),
    );
    let now = OffsetDateTime::now_utc();
    let cfg = config();
    let clock = Arc::new(ManualClock::new(now));
    let authority = Authority::new(
        CaMaterial::generate_root("Body Check Root", now).unwrap(),
        vec![],
        store.clone(),
        cfg.clone(),
        clock.clone(),
    );
    let id = SpiffeId::parse(ID).unwrap();
    let token = crate::admin::create_token(
        store.as_ref(),
        &cfg.trust_domain,
        &id,
        &[],
        &[],
        Duration::minutes(10),
        clock.as_ref(),
    )
    .unwrap();
    let same = |checked: Result<CheckedBody, crate::error::AuthorityError>,
                real: Result<(), crate::error::AuthorityError>,
                what: &str| {
        match (checked, real) {
            (Ok(_), Ok(())) => {}
            (Err(a), Err(b)) => {
                assert_eq!((a.code, &a.message), (b.code, &b.message), "{what}")
            }
            (a, b) => panic!("{what}: check_body {:?}, authority {:?}", a.err(), b.err()),
        }
    };

    let bad_sign_bodies = [
        (csr(Curve::P384, false), "soon"),
        (csr(Curve::P384, false), "0s"),
        (csr(Curve::P384, false), "584542046091y"),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n".into(),
            "1h",
        ),
        (csr(Curve::P521, true), "1h"),
    ];
    for (csr_pem, ttl) in &bad_sign_bodies {
        let bytes = body(json!({"csr": csr_pem, "requested_id": ID, "ttl": ttl}));
        let real = authority.sign(&SignInput {
            token: &token,
            csr_pem,
            requested_id: ID,
            ttl: Some(ttl),
        });
        same(
            check_body(Endpoint::Sign, &bytes, &cfg),
            real.map(|_| ()),
            ttl,
        );
    }
    let good = csr(Curve::P384, false);
    let bytes = body(json!({"csr": good, "requested_id": ID, "ttl": "2h"}));
    let issued = authority.sign(&SignInput {
        token: &token,
        csr_pem: &good,
        requested_id: ID,
        ttl: Some("2h"),
    });
    let peer = pki::pem::parse_single(
        issued.as_ref().unwrap().certificate.as_bytes(),
        "CERTIFICATE",
    )
    .unwrap();
    same(
        check_body(Endpoint::Sign, &bytes, &cfg),
        issued.map(|_| ()),
        "good sign",
    );

    for (csr_pem, ttl) in &bad_sign_bodies {
        let bytes = body(json!({"csr": csr_pem, "ttl": ttl}));
        let real = authority.renew(Some(&peer), csr_pem, Some(ttl));
        same(
            check_body(Endpoint::Renew, &bytes, &cfg),
            real.map(|_| ()),
            ttl,
        );
    }
    for (serial, reason) in [("xyz", None), ("4f", Some("removeFromCRL")), ("", None)] {
        let bytes = body(json!({"serial": serial, "reason": reason}));
        let real = authority.revoke(Some(&peer), serial, reason);
        same(
            check_body(Endpoint::Revoke, &bytes, &cfg),
            real.map(|_| ()),
            serial,
        );
    }
    let good = csr(Curve::P256, false);
    let bytes = body(json!({"csr": good, "ttl": "1h"}));
    let real = authority.renew(Some(&peer), &good, Some("1h"));
    same(
        check_body(Endpoint::Renew, &bytes, &cfg),
        real.map(|_| ()),
        "good renew",
    );
}
