//! The path of `GET /ocsp/<path>` as the CA reads it (RFC 6960 A.1: the URL-encoding of the
//! base64 of a DER OCSPRequest): `pki::ocsp::decode_get_path`, the one decoder the CA's
//! handler calls, then `pki::ocsp::read_request_for` for the fixed CA certificate of
//! `ocsp_request` (the seeds in corpus/ocsp_get_path are `openssl ocsp -reqout` requests for
//! it, so the fuzzer starts past the issuer check).
//!
//! Checks, beyond "never panics": whatever decodes is at most `MAX_GET_REQUEST` base64
//! characters' worth; the RFC spelling of the decoded DER (standard base64 with '/', '+' and
//! '=' percent-encoded), the unescaped and the URL-safe spellings, and the path with every
//! character percent-encoded all decode to the same DER; and the input taken as DER itself
//! comes back from its RFC spelling, or is refused exactly when it is empty or that spelling
//! is too long.

#![no_main]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use pki::ocsp::{decode_get_path, read_request_for, MAX_GET_REQUEST};

const ISSUER: &[u8] = include_bytes!("../fixtures/crl_issuers/ours-p384.der");

/// RFC 6960 A.1 as a client writes it, independently of pki.
fn rfc_spelling(der: &[u8]) -> String {
    STANDARD
        .encode(der)
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D")
}

fn every_character_escaped(path: &str) -> String {
    path.bytes().map(|b| format!("%{b:02X}")).collect()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        if let Ok(der) = decode_get_path(path) {
            assert!(der.len() <= MAX_GET_REQUEST / 4 * 3, "{} octets", der.len());
            assert_eq!(decode_get_path(&rfc_spelling(&der)).as_ref(), Ok(&der));
            assert_eq!(decode_get_path(&STANDARD.encode(&der)).as_ref(), Ok(&der));
            assert_eq!(
                decode_get_path(&URL_SAFE_NO_PAD.encode(&der)).as_ref(),
                Ok(&der)
            );
            if !path.contains('%') {
                let escaped = every_character_escaped(path);
                assert_eq!(decode_get_path(&escaped).as_ref(), Ok(&der));
            }
            // The DER reader's own promises are ocsp_request's; here: it takes any bytes.
            let _ = read_request_for(ISSUER, &der);
        }
    }
    let spelled = rfc_spelling(data);
    match decode_get_path(&spelled) {
        Ok(der) => assert_eq!(der, data),
        Err(e) => assert!(
            data.is_empty() || STANDARD.encode(data).len() > MAX_GET_REQUEST,
            "{} octets refused: {e}",
            data.len()
        ),
    }
});
