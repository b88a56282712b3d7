//! OCSP requests as the CA reads them from the network (`POST /ocsp`, `GET /ocsp/<base64>`):
//! `pki::ocsp::read_request_for`, the checks `read_request` makes, against a fixed CA
//! certificate (fuzz/fixtures/crl_issuers/ours-p384.der; the seeds in corpus/ocsp_request ask
//! about serials of that CA, so the fuzzer starts past the issuer check). A request that is
//! accepted must ask about 1 to `MAX_REQUESTS` serials, carry a nonce of 1 to `MAX_NONCE`
//! octets or none, and be cacheable exactly when it has no nonce.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::ocsp::{read_request_for, MAX_NONCE, MAX_REQUESTS};

const ISSUER: &[u8] = include_bytes!("../fixtures/crl_issuers/ours-p384.der");

fuzz_target!(|data: &[u8]| {
    let Ok(query) = read_request_for(ISSUER, data) else {
        return;
    };
    let serials = query.serials();
    assert!(
        (1..=MAX_REQUESTS).contains(&serials.len()),
        "{} serials accepted",
        serials.len()
    );
    for serial in serials {
        assert!(
            !serial.starts_with("00") && serial.len() % 2 == 0,
            "serial {serial:?} is not lowercase hex without leading zero octets"
        );
        assert!(serial
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    match query.nonce() {
        Some(nonce) => {
            assert!((1..=MAX_NONCE).contains(&nonce.len()));
            assert!(query.cache_key().is_none(), "a nonce answer was cacheable");
        }
        None => assert!(
            query.cache_key().is_some(),
            "a plain request was not cacheable"
        ),
    }
});
