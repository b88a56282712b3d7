//! OCSP requests (`ocsp_request`) made by `openssl ocsp -reqout` for the CRL target's own CA
//! certificate (fixtures/crl_issuers/ours-p384.der, which the target embeds: the requests get
//! past the issuer check), the same requests as `GET /ocsp/<path>` paths (`ocsp_get_path`:
//! base64 by `openssl base64`, URL-encoded in each way clients do), and OCSP responses (`ocsp_response`) signed by `pki::ocsp` as the
//! CA answers: by the CA and by a delegated responder, good, revoked and unknown, with and
//! without a nonce, and the error statuses.

use std::path::Path;

use pki::ocsp::{read_request, sign_response, CertState, DelegatedResponder, Signer};
use pki::CaMaterial;
use time::{Duration, OffsetDateTime};

use crate::openssl::OpenSsl;
use crate::out::Corpus;

/// `openssl ocsp -reqout` for `issuer` (PEM file in the openssl directory) and `serials`.
fn request(ssl: &OpenSsl, issuer: &str, serials: &[&str], extra: &[&str]) -> Vec<u8> {
    // OpenSSL wants the digest (-sha256) before the serials.
    let mut args = vec!["ocsp", "-issuer", issuer, "-reqout", "req.der"];
    args.extend_from_slice(extra);
    for s in serials {
        args.extend(["-serial", s]);
    }
    ssl.run(&args);
    ssl.read("req.der")
}

/// Writes the request seeds; returns the ones the GET path seeds are made of, by seed name.
pub fn write_requests(
    corpus: &Corpus,
    issuers_dir: &Path,
    ssl: &OpenSsl,
) -> Vec<(&'static str, Vec<u8>)> {
    let der = std::fs::read(issuers_dir.join("ours-p384.der")).unwrap();
    ssl.write("ours.der", &der);
    ssl.run(&[
        "x509", "-inform", "DER", "-in", "ours.der", "-out", "ours.pem",
    ]);
    let serial = "0x3a8f0e1d2c4b5a69788796a5b4c3d2e1f0011223";
    corpus.write("one-nonce.der", request(ssl, "ours.pem", &[serial], &[]));
    corpus.write(
        "one-no-nonce.der",
        request(ssl, "ours.pem", &[serial], &["-no_nonce"]),
    );
    corpus.write(
        "sha256-certid.der",
        request(ssl, "ours.pem", &[serial], &["-sha256", "-no_nonce"]),
    );
    corpus.write(
        "three-serials-nonce.der",
        request(ssl, "ours.pem", &[serial, "0x01", "0x7f"], &[]),
    );
    let many: Vec<String> = (1..=17).map(|i| format!("0x{i:02x}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    corpus.write(
        "refused-seventeen-serials.der",
        request(ssl, "ours.pem", &many, &["-no_nonce"]),
    );
    let other = ssl.root("other", "ec:P-384", "Other CA", "keyCertSign,cRLSign");
    ssl.write("other.pem", other);
    corpus.write(
        "refused-other-issuer.der",
        request(ssl, "other.pem", &[serial], &[]),
    );
    let sha1 = request(ssl, "ours.pem", &[serial], &["-no_nonce"]);
    corpus.write("refused-truncated.der", &sha1[..sha1.len() - 3]);
    vec![
        ("one-nonce", request(ssl, "ours.pem", &[serial], &[])),
        ("one-no-nonce", sha1),
        (
            "sha256-certid",
            request(ssl, "ours.pem", &[serial], &["-sha256", "-no_nonce"]),
        ),
        (
            "three-serials-nonce",
            request(ssl, "ours.pem", &[serial, "0x01", "0x7f"], &[]),
        ),
        (
            "refused-seventeen-serials",
            request(ssl, "ours.pem", &many, &["-no_nonce"]),
        ),
        (
            "refused-other-issuer",
            request(ssl, "other.pem", &[serial], &[]),
        ),
    ]
}

/// `requests` (from [`write_requests`]) as `GET /ocsp/<path>` paths: each in the RFC 6960 A.1
/// spelling (standard base64, '/', '+' and '=' percent-encoded), one also in the other
/// spellings clients send, and paths the decoder refuses.
pub fn write_get_paths(corpus: &Corpus, requests: &[(&str, Vec<u8>)], ssl: &OpenSsl) {
    let base64 = |der: &[u8]| {
        ssl.write("get.der", der);
        let out = ssl.run(&["base64", "-A", "-in", "get.der"]);
        String::from_utf8(out).unwrap().trim().to_string()
    };
    let rfc = |b64: &str| {
        b64.replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D")
    };
    for (name, der) in requests {
        corpus.write(&format!("{name}.txt"), rfc(&base64(der)));
    }
    let (_, plain) = &requests[1];
    let b64 = base64(plain);
    let unpadded = b64.trim_end_matches('=');
    corpus.write("unescaped-no-nonce.txt", &b64);
    corpus.write("unpadded-no-nonce.txt", unpadded);
    corpus.write(
        "url-safe-no-nonce.txt",
        b64.replace('+', "-").replace('/', "_"),
    );
    corpus.write(
        "lowercase-escapes-no-nonce.txt",
        rfc(&b64)
            .replace("%2F", "%2f")
            .replace("%2B", "%2b")
            .replace("%3D", "%3d"),
    );
    let escaped: String = unpadded.bytes().map(|b| format!("%{b:02X}")).collect();
    corpus.write("every-character-escaped-no-nonce.txt", escaped);
    corpus.write("refused-cut-short.txt", &unpadded[..unpadded.len() - 5]);
    corpus.write(
        "refused-bad-escape.txt",
        format!("{}%zz{}", &b64[..8], &b64[8..]),
    );
    corpus.write("refused-not-base64.txt", "not%20base64%21");
    corpus.write("refused-empty.txt", "");
}

pub fn write_responses(corpus: &Corpus, ssl: &OpenSsl) {
    let now = OffsetDateTime::now_utc();
    let ca = CaMaterial::generate_root("OCSP Seeds Root", now).unwrap();
    ssl.write("seeds-ca.pem", ca.cert_pem());
    let serials = ["0x3a8f0e1d2c4b5a69788796a5b4c3d2e1f0011223", "0x01", "0x7f"];
    let states = [
        CertState::Good,
        CertState::Revoked {
            at: now - Duration::minutes(5),
            reason: Some("keyCompromise".into()),
        },
        CertState::Unknown,
    ];
    let next = now + Duration::minutes(10);
    for (name, extra) in [("nonce", &[][..]), ("no-nonce", &["-no_nonce"][..])] {
        let der = request(ssl, "seeds-ca.pem", &serials, extra);
        let query = read_request(&ca, &der).unwrap();
        let by_ca = sign_response(Signer::Ca(&ca), &query, &states, now, next).unwrap();
        corpus.write(&format!("by-ca-{name}.der"), by_ca);
        let responder = DelegatedResponder::issue(&ca, now, Duration::hours(1)).unwrap();
        let delegated =
            sign_response(Signer::Delegated(&responder), &query, &states, now, next).unwrap();
        corpus.write(&format!("delegated-{name}.der"), delegated);
    }
    corpus.write("try-later.der", pki::ocsp::try_later_response());
    corpus.write(
        "malformed-request.der",
        pki::ocsp::OcspError::Malformed("seed".into()).response_der(),
    );
}
