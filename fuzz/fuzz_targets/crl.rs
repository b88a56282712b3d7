//! CRL parsing and verification as the services load a CRL file or the CA's `/api/v1/crl`:
//! `pki::pem::parse_single(.., "X509 CRL")` (PEM or DER), then `pki::crl::verify_crl` (every
//! strict rule and the signature) under both algorithm policies, and the same bytes handed to
//! `pki::verify::TrustStore`, which applies the same rules with rustls-webpki's parser next to
//! x509-parser's. The issuers are fixed certificates from fuzz/fixtures/crl_issuers (our root,
//! OpenSSL roots with and without cRLSign, an RSA root); the seed CRLs are signed by them.
//! A CRL verify_crl accepts must be accepted by the trust store too (and the reverse for CRLs
//! of these issuers), and every serial it lists must be reported revoked.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pki::crl::{verify_crl_with_policy, CrlError, RevokedSet};
use pki::sigalg::AlgorithmPolicy;
use pki::verify::{TrustOptions, TrustStore};
use rustls_pki_types::CertificateDer;

static ISSUERS: LazyLock<Vec<CertificateDer<'static>>> = LazyLock::new(|| {
    [
        &include_bytes!("../fixtures/crl_issuers/ours-p384.der")[..],
        &include_bytes!("../fixtures/crl_issuers/openssl-p256.der")[..],
        &include_bytes!("../fixtures/crl_issuers/openssl-p384-no-crlsign.der")[..],
        &include_bytes!("../fixtures/crl_issuers/openssl-rsa2048.der")[..],
    ]
    .into_iter()
    .map(|der| CertificateDer::from(der.to_vec()))
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(der) = pki::pem::parse_single(data, "X509 CRL") else {
        return;
    };
    for algorithms in [AlgorithmPolicy::EcdsaOnly, AlgorithmPolicy::WebPki] {
        let verified = verify_crl_with_policy(&der, &ISSUERS, algorithms);
        let options = TrustOptions {
            algorithms,
            ..TrustOptions::default()
        };
        let store = TrustStore::with_options(&ISSUERS, &[&der], options);
        match (&verified, &store) {
            (Ok(crl), Ok(_)) => {
                assert!(crl.crl_number.len() <= 20);
                assert!(ISSUERS
                    .iter()
                    .any(|c| pki::sha256_hex(c) == crl.issuer_fingerprint));
                let set = RevokedSet::from_crls(vec![crl.clone()]);
                for serial in &crl.serials {
                    assert!(set.is_revoked(&crl.issuer_raw, serial));
                    let mut padded = vec![0u8];
                    padded.extend_from_slice(serial);
                    assert!(set.is_revoked(&crl.issuer_raw, &padded));
                }
            }
            (Err(_), Err(_)) => {}
            // Issued by none of the roots: the trust store keeps it to check against the
            // intermediates presented later; verify_crl has no such intermediates.
            (Err(CrlError::UnknownIssuer { .. }), Ok(_)) => {}
            (Ok(_), Err(e)) => panic!("verify_crl accepts a CRL the trust store refuses: {e}"),
            (Err(e), Ok(_)) => panic!("the trust store accepts a CRL verify_crl refuses: {e}"),
        }
    }
});
