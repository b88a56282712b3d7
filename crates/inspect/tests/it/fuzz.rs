//! Property tests: random and mutated bytes through every parser and renderer in-process
//! (input detection for PEM/DER certificates, CSRs and CRLs, and SPIFFE bundles; the display
//! model; text, short and JSON rendering; lint; the verifier's trust store and path
//! validation). Nothing may panic.
//! (A few cases through the `mtls-inspect` program: crates/mtls/tests/it/inspect/fuzz.rs.)

#![allow(clippy::unwrap_used)]

use super::common;

use base64::Engine as _;
use mtls_inspect::input::{self, Kind};
use mtls_inspect::lint::{self, Policy};
use mtls_inspect::model::ObjectView;
use mtls_inspect::{render_json, render_text};
use pki::verify::{Purpose, TrustStore, VerifyOptions};
use proptest::prelude::*;
use rustls_pki_types::CertificateDer;
use time::macros::datetime;

const AT: time::OffsetDateTime = datetime!(2026-01-01 0:30 UTC);

fn fixture_der(name: &str) -> Vec<u8> {
    let bytes = std::fs::read(common::data_dir().join(name)).unwrap();
    input::parse(name, &bytes).unwrap().objects.remove(0).der
}

/// Everything `show`, `lint` and `verify` do with an input; must never panic.
fn exercise(bytes: &[u8]) {
    let Ok(parsed) = input::parse("fuzz", bytes) else {
        return;
    };
    let policy = Policy {
        trust_domain: None,
        max_lifetime: time::Duration::hours(24),
        max_ca_lifetime: time::Duration::days(3660),
        profile: lint::ProfileChoice::Auto,
    };
    for obj in &parsed.objects {
        if let Ok(view) = ObjectView::build(obj, AT) {
            let _ = render_text::render(&view);
            let _ = render_text::short(&view);
            let _ = render_json::to_json(&view);
        }
        if obj.kind == Kind::Certificate {
            let index = lint::IssuerIndex::new([obj.der.as_slice()]);
            let _ = lint::lint_certificate(&obj.der, &index, &policy);
            verify_both_ways(&obj.der);
        }
    }
}

/// The bytes as a leaf against a real root, and as a root for a real leaf.
fn verify_both_ways(der: &[u8]) {
    let root = CertificateDer::from(fixture_der("root.pem"));
    let leaf = fixture_der("leaf.pem");
    let opts = VerifyOptions {
        hostname: Some("localhost"),
        ..VerifyOptions::new(AT, Purpose::Client)
    };
    if let Ok(store) = TrustStore::new(std::slice::from_ref(&root), &[] as &[Vec<u8>]) {
        let _ = store.verify(der, &[CertificateDer::from(der.to_vec())], &opts);
    }
    if let Ok(store) = TrustStore::new(&[CertificateDer::from(der.to_vec())], &[der.to_vec()]) {
        let _ = store.verify(&leaf, &[], &opts);
    }
}

/// A valid object with some bytes changed, inserted or cut off.
fn mutated(name: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let base = fixture_der(name);
    let len = base.len();
    (
        proptest::collection::vec((0..len, any::<u8>()), 1..6),
        0..=len,
    )
        .prop_map(move |(flips, cut)| {
            let mut v = base.clone();
            for (i, b) in flips {
                v[i] = b;
            }
            v.truncate(cut.max(1));
            v
        })
}

/// A SPIFFE bundle of the fixture root (an x509-svid key) and a jwt-svid key, as JSON.
fn bundle_json() -> Vec<u8> {
    let root = pki::jwt_svid::x509_authority_jwk(&fixture_der("root.pem")).unwrap();
    let mut jwt = root.clone();
    jwt.use_ = Some("jwt-svid".into());
    jwt.kid = Some("k1".into());
    jwt.x5c = None;
    serde_json::json!({"keys": [root, jwt], "spiffe_sequence": 3, "spiffe_refresh_hint": 300})
        .to_string()
        .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// SPIFFE bundles with bytes changed or cut off: read, shown and linted, never a panic;
    /// what reads as a bundle reads again from its own bytes.
    #[test]
    fn mutated_spiffe_bundles_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut json = bundle_json();
        for (i, b) in flips {
            let at = i.index(json.len());
            json[at] = b;
        }
        json.truncate(cut.index(json.len()).max(1));
        exercise(&json);
        if let Ok(parsed) = input::parse("bundle", &json) {
            if parsed.objects[0].kind == Kind::SpiffeBundle {
                let doc = pki::spiffe_bundle::BundleDocument::read(&parsed.objects[0].der).unwrap();
                let _ = lint::bundle_findings(&doc);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    #[test]
    fn random_der_sequences_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut der = vec![0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8];
        der.extend(body);
        exercise(&der);
    }

    #[test]
    fn mutated_certificates_never_panic(der in mutated("leaf.pem")) {
        exercise(&der);
    }

    #[test]
    fn mutated_roots_never_panic(der in mutated("root.pem")) {
        exercise(&der);
    }

    #[test]
    fn mutated_csrs_and_crls_never_panic(csr in mutated("csr.pem"), crl in mutated("crl.pem")) {
        exercise(&csr);
        exercise(&crl);
        // A broken CRL handed to the verifier.
        let root = CertificateDer::from(fixture_der("root.pem"));
        if let Ok(store) = TrustStore::new(&[root], &[crl]) {
            let _ = store.verify(&fixture_der("leaf.pem"), &[], &VerifyOptions::new(AT, Purpose::Server));
        }
    }

    #[test]
    fn pem_wrapped_garbage_never_panics(
        label in prop::sample::select(vec!["CERTIFICATE", "CERTIFICATE REQUEST", "X509 CRL", "TRUSTED CERTIFICATE", "PRIVATE KEY", "X"]),
        body in proptest::collection::vec(any::<u8>(), 0..800),
        text in "[ -~\n]{0,64}",
    ) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&body);
        let pem = format!("{text}-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n{text}");
        exercise(pem.as_bytes());
    }
}
