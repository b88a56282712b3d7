//! Expired certificates leave the CRL: the authority is driven in-process with explicit times,
//! so the test needs no waiting for a certificate to expire.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use mtls_ca::authority::{Authority, AuthorityConfig, SignInput};
use mtls_ca::store::{SqliteStore, Store};
use pki::{CaMaterial, IssuancePolicy, SpiffeId, TrustDomain};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;

fn revoked_serials(der: &[u8]) -> Vec<String> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).unwrap();
    crl.iter_revoked_certificates()
        .map(|r| hex::encode(pki::serial::strip_leading_zeros(r.raw_serial())))
        .collect()
}

#[test]
fn revoked_entries_leave_the_crl_once_expired_and_new_revocations_appear_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<SqliteStore> = Arc::new(
        SqliteStore::create(&tmp.path().join("ca.db"), &[("trust_domain", "mesh.local")]).unwrap(),
    );
    let now = OffsetDateTime::now_utc();
    let td = TrustDomain::parse("mesh.local").unwrap();
    let authority = Authority::new(
        CaMaterial::generate_root("CRL Expiry Root", now).unwrap(),
        vec![],
        store.clone(),
        AuthorityConfig {
            trust_domain: td.clone(),
            default_ttl: Duration::hours(1),
            max_ttl: Duration::hours(24),
            admin_id: None,
            policy: IssuancePolicy::default(),
        },
    );
    let issue = |name: &str, ttl: &str| {
        let id = SpiffeId::parse(&format!("spiffe://mesh.local/service/{name}")).unwrap();
        let token = mtls_ca::admin::create_token(
            store.as_ref(),
            &td,
            &id,
            &[],
            &[],
            Duration::minutes(10),
            now,
        )
        .unwrap();
        let key = pki::keys::generate(pki::Curve::P384).unwrap();
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let input = SignInput {
            token: &token,
            csr_pem: &csr,
            requested_id: &id.to_string(),
            ttl: Some(ttl),
        };
        authority.sign(&input, now).unwrap().serial
    };
    let brief = issue("brief", "2s");
    let long = issue("long", "1h");

    assert!(revoked_serials(&authority.crl(now).unwrap()).is_empty());
    store.revoke(&brief, None, "test", now).unwrap();
    assert_eq!(
        revoked_serials(&authority.crl(now).unwrap()),
        vec![brief.clone()]
    );

    // Three seconds later the brief certificate has expired: the CRL is re-signed without it,
    // although no revocation happened in between.
    let later = now + Duration::seconds(3);
    assert!(revoked_serials(&authority.crl(later).unwrap()).is_empty());

    // A revocation shows in the very next CRL, whatever the cache holds.
    store
        .revoke(&long, Some("keyCompromise"), "test", later)
        .unwrap();
    assert_eq!(revoked_serials(&authority.crl(later).unwrap()), vec![long]);
}
