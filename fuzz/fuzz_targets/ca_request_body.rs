//! The CA's JSON request bodies: the bytes of a `POST /api/v1/sign`, `/renew` or `/revoke` body
//! through `mtls_ca::api::check_body` (size, serde with `deny_unknown_fields`, then the SPIFFE
//! ID, TTL, CSR, serial and reason exactly as the authority checks them), without a database.
//! Every input is tried against all three endpoints. A refusal is always a client error with a
//! stable code and a message, never an internal error; what passes obeys the policy (no
//! reserved or foreign identity, a lifetime between 1 s and the maximum, no CA request, a
//! normalised serial, a known reason) and an accepted sign body can be issued.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mtls_ca::api::{check_body, CheckedBody, Endpoint};
use mtls_ca::authority::AuthorityConfig;
use mtls_ca::error::Kind;
use pki::policy::{IssuancePolicy, LeafRequest};
use pki::{CaMaterial, CertInfo, TrustDomain, VerifiedCsr};
use time::{Duration, OffsetDateTime};

static CFG: LazyLock<AuthorityConfig> = LazyLock::new(|| AuthorityConfig {
    trust_domain: TrustDomain::parse("mesh.local").unwrap_or_else(|e| panic!("{e}")),
    default_ttl: Duration::hours(1),
    max_ttl: Duration::hours(24),
    admin_id: None,
    policy: IssuancePolicy::default(),
});

static CA: LazyLock<CaMaterial> = LazyLock::new(|| {
    CaMaterial::generate_root("Fuzz Root", OffsetDateTime::now_utc())
        .unwrap_or_else(|e| panic!("cannot make the fuzz root: {e}"))
});

/// Every code `check_body` may answer with (docs/ca-api.md).
const CODES: &[&str] = &[
    "body_too_large",
    "bad_json",
    "bad_spiffe_id",
    "reserved_identity",
    "wrong_trust_domain",
    "bad_ttl",
    "bad_csr",
    "csr_requests_ca",
    "bad_serial",
    "bad_reason",
];

fn check_lifetime_and_key(ttl: Duration, csr: &VerifiedCsr) {
    assert!(
        ttl >= Duration::seconds(1) && ttl <= CFG.max_ttl,
        "ttl {ttl}"
    );
    assert!(!csr.requests_ca);
}

fuzz_target!(|body: &[u8]| {
    for endpoint in [Endpoint::Sign, Endpoint::Renew, Endpoint::Revoke] {
        match check_body(endpoint, body, &CFG) {
            Ok(CheckedBody::Sign {
                requested_id,
                ttl,
                csr,
            }) => {
                assert_eq!(endpoint, Endpoint::Sign);
                assert!(!requested_id.is_reserved_for_ca());
                assert_eq!(requested_id.trust_domain(), &CFG.trust_domain);
                check_lifetime_and_key(ttl, &csr);
                let issued = CFG
                    .policy
                    .issue(
                        &LeafRequest {
                            spiffe_id: &requested_id,
                            dns: &[],
                            ips: &[],
                            spki_der: &csr.spki_der,
                            ttl,
                            now: OffsetDateTime::now_utc(),
                        },
                        &CA,
                    )
                    .unwrap_or_else(|e| panic!("an accepted sign body cannot be issued: {e}"));
                let info = CertInfo::from_der(&issued.der).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(info.uris, vec![requested_id.to_string()]);
                assert!(!info.is_ca);
            }
            Ok(CheckedBody::Renew { ttl, csr }) => {
                assert_eq!(endpoint, Endpoint::Renew);
                check_lifetime_and_key(ttl, &csr);
            }
            Ok(CheckedBody::Revoke { serial, reason }) => {
                assert_eq!(endpoint, Endpoint::Revoke);
                assert!(
                    !serial.is_empty() && serial.len() % 2 == 0,
                    "serial {serial:?}"
                );
                assert!(serial
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
                assert!(
                    serial == "00" || !serial.starts_with("00"),
                    "serial {serial:?}"
                );
                if let Some(r) = reason {
                    assert!(pki::crl::parse_reason(&r).is_some(), "reason {r:?}");
                }
            }
            Err(e) => {
                assert!(
                    matches!(e.kind, Kind::BadRequest | Kind::Forbidden),
                    "{:?} {}: {}",
                    e.kind,
                    e.code,
                    e.message
                );
                assert!(CODES.contains(&e.code), "unexpected code {}", e.code);
                assert!(!e.message.is_empty());
            }
        }
    }
});
