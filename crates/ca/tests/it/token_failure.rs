//! A CA key in a PKCS#11 token (SoftHSM2 in a temp dir of the test's own) that stops working
//! while the CA runs: the error the operator sees names the token problem (the signing error
//! that reaches the CLI and the API's "internal error" log line, and `/healthz`), not rcgen's
//! reasonless "remote key error".

use std::path::Path;
use std::sync::Arc;

use mtls_ca::error::Kind;
use mtls_ca::pkcs11::{KeyUri, TokenAccess, TokenKey};
use pki::CaMaterial;
use testkit::softhsm::{SoftHsm, MODULE};
use time::Duration;

use crate::harness::{new_key, Harness, START};

const PIN: &str = "4711-user-pin";
const MISSING: &str = "token \"mesh-ca\" holds no private key labelled \"ca-key\"";

#[test]
fn a_token_key_deleted_under_the_ca_is_named_in_the_signing_error_and_in_healthz() {
    let tmp = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::new(&tmp.path().join("softhsm"));
    hsm.init_token("mesh-ca", PIN);
    // The module reads SOFTHSM2_CONF when it initialises, in this process; this is the only
    // test of this binary that loads SoftHSM2 in-process.
    std::env::set_var("SOFTHSM2_CONF", &hsm.conf);
    std::fs::write(tmp.path().join("pin"), format!("{PIN}\n")).unwrap();
    let access = TokenAccess::new(Path::new(MODULE), &tmp.path().join("pin")).unwrap();
    let uri: KeyUri = "pkcs11:token=mesh-ca;object=ca-key".parse().unwrap();
    let (key, generated) = TokenKey::open_or_generate(&access, &uri).unwrap();
    assert!(generated);
    let key = Arc::new(key);
    let ca = CaMaterial::generate_root_with(
        "Token Test Root",
        pki::CaKey::device(key.clone()).unwrap(),
        START - Duration::days(1),
    )
    .unwrap();
    let h = Harness::memory_with_ca(ca);
    let ca = h.authority.ca();
    h.enroll("web", None);
    assert_eq!(h.authority.health(), Ok(()));

    // An operator deletes the key in the token by mistake.
    key.destroy_behind_its_back().unwrap();

    // The CA's health says so at its next probe, before any signature has failed.
    h.advance(mtls_ca::authority::HEALTH_CACHE);
    let early = h.authority.health().unwrap_err();
    assert!(
        early.contains("the CA key cannot be used") && early.contains(MISSING),
        "{early}"
    );

    // What a CLI command or the API's log line prints: the PKI error, naming the token.
    let err = pki::crl::sign_crl(&ca, &[], 7, START, START + Duration::hours(1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("signing the CRL") && err.contains(MISSING) && err.contains(&uri.to_string()),
        "{err}"
    );
    assert!(!err.contains("Remote key"), "{err}");

    // The caller of the API learns nothing internal; the CA's health says what is wrong.
    let token = h.token("db", Duration::minutes(10));
    let refused = h.sign_with(&token, "db", &new_key(), None).unwrap_err();
    assert_eq!(refused.kind, Kind::Internal);
    assert!(!refused.message.contains("ca-key"), "{}", refused.message);
    h.advance(mtls_ca::authority::HEALTH_CACHE);
    let reason = h.authority.health().unwrap_err();
    assert!(
        reason.contains("the CA key's last signature failed") && reason.contains(MISSING),
        "{reason}"
    );
}
