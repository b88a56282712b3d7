//! Unit tests of the strict CRL path: what our CA signs passes, each rule refuses the CRL that
//! breaks it with its own error, and the revoked set answers lookups like the services need.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::test_der::{self, CrlSpec};
use crate::Curve;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use time::Duration;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A self-signed CA with the given keyUsage bits (none: no keyUsage extension at all).
fn root_with(cn: &str, usages: Vec<KeyUsagePurpose>) -> (CertificateDer<'static>, KeyPair) {
    let key = crate::keys::generate(Curve::P384).unwrap();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = usages;
    let cert = p.self_signed(&key).unwrap();
    (cert.der().clone(), key)
}

fn name_of(der: &[u8]) -> Vec<u8> {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    c.subject().as_raw().to_vec()
}

fn entry(serial_hex: &str) -> RevokedEntry {
    RevokedEntry {
        serial_hex: serial_hex.into(),
        revoked_at: now(),
        reason: Some("keyCompromise".into()),
    }
}

#[test]
fn verifies_and_indexes_a_crl_from_our_ca() {
    let ca = CaMaterial::generate_root("Root A", now()).unwrap();
    let der = sign_crl(
        &ca,
        &[entry("00ab01")],
        7,
        now(),
        now() + Duration::hours(1),
    )
    .unwrap();
    let crl = verify_crl(&der, &[ca.cert_der().clone()]).unwrap();
    assert!(crl.serials.contains(&vec![0xab, 0x01]));
    assert_eq!(crl.crl_number, vec![7]);
    assert_eq!(crl.issuer, "O=mtls-mesh, CN=Root A");
    assert_eq!(crl.issuer_fingerprint, ca.fingerprint());
    assert!(crl.next_update.is_some());
    let set = RevokedSet::from_crls(vec![crl.clone()]);
    assert!(set.is_revoked(&crl.issuer_raw, &[0x00, 0xab, 0x01]));
    assert!(!set.is_revoked(&crl.issuer_raw, &[0xab, 0x02]));
    assert!(!set.is_revoked(b"another issuer", &[0xab, 0x01]));
    assert!(set.covers(&crl.issuer_raw));
    assert_eq!(set.len(), 1);
    assert!(!set.is_empty());
    assert_eq!(set.oldest_this_update(), Some(crl.this_update));
}

#[test]
fn a_listed_certificate_is_found_from_its_der_or_its_parse() {
    let ca = CaMaterial::generate_root("Root A", now()).unwrap();
    let leaf = {
        let key = crate::keys::generate(Curve::P256).unwrap();
        let spki = crate::keys::spki_der(&key);
        let id = crate::SpiffeId::parse("spiffe://mesh.local/a").unwrap();
        let req = crate::LeafRequest {
            spiffe_id: &id,
            dns: &[],
            ips: &[],
            spki_der: &spki,
            ttl: Duration::hours(1),
            now: now(),
        };
        crate::IssuancePolicy::default()
            .issue(&req, &ca)
            .unwrap()
            .der
    };
    let serial = crate::CertInfo::from_der(&leaf).unwrap().serial_hex;
    let der = sign_crl(&ca, &[entry(&serial)], 1, now(), now() + Duration::hours(1)).unwrap();
    let set = RevokedSet::from_crls(vec![verify_crl(&der, &[ca.cert_der().clone()]).unwrap()]);
    assert!(set.is_cert_revoked(&leaf));
    let (_, parsed) = X509Certificate::from_der(&leaf).unwrap();
    assert!(set.is_cert_listed(&parsed));
    assert!(!set.is_cert_revoked(b"junk"));
    assert!(!RevokedSet::default().is_cert_revoked(&leaf));
}

#[test]
fn same_name_other_key_unknown_issuer_tampering_and_junk_are_refused() {
    let ca = CaMaterial::generate_root("Root A", now()).unwrap();
    let other = CaMaterial::generate_root("Root A", now()).unwrap();
    let der = sign_crl(&ca, &[], 1, now(), now() + Duration::hours(1)).unwrap();

    let err = verify_crl(&der, &[other.cert_der().clone()]).unwrap_err();
    assert!(matches!(err, CrlError::BadSignature { .. }), "{err}");
    assert_eq!(err.code(), "crl_signature");
    assert!(
        err.to_string().starts_with(
            "the signature on the CRL from O=mtls-mesh, CN=Root A does not verify with an EC \
             P-384 key of the issuer certificate (SHA-256 "
        ),
        "{err}"
    );
    // With the real root among same-named ones, the CRL verifies.
    verify_crl(&der, &[other.cert_der().clone(), ca.cert_der().clone()]).unwrap();

    let stranger = CaMaterial::generate_root("Stranger", now()).unwrap();
    let err = verify_crl(&der, &[stranger.cert_der().clone()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the CRL is issued by O=mtls-mesh, CN=Root A, which is none of the issuers given \
         [O=mtls-mesh, CN=Stranger]"
    );
    assert_eq!(err.code(), "crl_unknown_issuer");

    let mut tampered = der.clone();
    let n = tampered.len();
    tampered[n - 3] ^= 1;
    let err = verify_crl(&tampered, &[ca.cert_der().clone()]).unwrap_err();
    assert!(matches!(err, CrlError::BadSignature { .. }), "{err}");

    let err = verify_crl(b"junk", &[ca.cert_der().clone()]).unwrap_err();
    assert!(err.is_malformed(), "{err}");
    assert_eq!(err.code(), "crl_malformed");

    let mut trailing = der.clone();
    trailing.extend_from_slice(&[0, 0]);
    let err = verify_crl(&trailing, &[ca.cert_der().clone()]).unwrap_err();
    assert_eq!(err, CrlError::TrailingData { count: 2 });
    assert_eq!(err.to_string(), "2 trailing bytes follow the CRL");
}

#[test]
fn a_trust_anchor_must_have_crl_sign() {
    // rustls-webpki checks cRLSign on intermediates only; here a root without it is refused.
    let (root, key) = root_with("No CRL Sign", vec![KeyUsagePurpose::KeyCertSign]);
    let der = test_der::crl(&CrlSpec::ours(), &name_of(&root), &key);
    let err = verify_crl(&der, std::slice::from_ref(&root)).unwrap_err();
    assert_eq!(
        err,
        CrlError::IssuerNotCrlSigner {
            issuer: "CN=No CRL Sign".into(),
            present: vec!["keyCertSign".into()],
        }
    );
    assert_eq!(
        err.to_string(),
        "the CRL issuer CN=No CRL Sign lacks cRLSign in its keyUsage (it has [keyCertSign]); \
         only a certificate with cRLSign may sign CRLs (RFC 5280 4.2.1.3)"
    );

    // No keyUsage extension at all: refused too (RFC 5280 4.2.1.3 requires it on CA
    // certificates that sign CRLs).
    let (root, key) = root_with("No Key Usage", vec![]);
    let der = test_der::crl(&CrlSpec::ours(), &name_of(&root), &key);
    let err = verify_crl(&der, std::slice::from_ref(&root)).unwrap_err();
    assert_eq!(
        err,
        CrlError::IssuerWithoutKeyUsage {
            issuer: "CN=No Key Usage".into()
        }
    );
    assert_eq!(err.code(), "crl_issuer_no_key_usage");

    // The hand-made CRL itself is fine: with cRLSign the same construction passes.
    let (root, key) = root_with(
        "Good",
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
    );
    let der = test_der::crl(&CrlSpec::ours(), &name_of(&root), &key);
    let crl = verify_crl(&der, &[root]).unwrap();
    assert_eq!(crl.crl_number, vec![1]);
}

#[test]
fn the_crl_number_must_be_present_non_critical_and_valid() {
    let (root, key) = root_with(
        "Root",
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
    );
    let name = name_of(&root);
    let roots = std::slice::from_ref(&root);

    let der = test_der::crl(&CrlSpec::ours().without_extensions(), &name, &key);
    let err = verify_crl(&der, roots).unwrap_err();
    assert_eq!(err.code(), "crl_no_number");
    assert!(
        err.to_string()
            .contains("create the crlnumber file (`echo 01 > crlnumber`)"),
        "{err}"
    );

    let mut spec = CrlSpec::ours();
    spec.extensions = vec![test_der::extension(
        test_der::OID_CRL_NUMBER,
        true,
        &test_der::tlv(0x02, &[1]),
    )];
    let err = verify_crl(&test_der::crl(&spec, &name, &key), roots).unwrap_err();
    assert_eq!(
        err,
        CrlError::CrlNumberCritical {
            issuer: "CN=Root".into()
        }
    );

    for (content, reason) in [
        (vec![0xff], "it is negative"),
        (
            [vec![0x01], vec![0u8; 20]].concat(),
            "it is 21 octets long; RFC 5280 allows at most 20",
        ),
    ] {
        let mut spec = CrlSpec::ours();
        spec.extensions = vec![test_der::extension(
            test_der::OID_CRL_NUMBER,
            false,
            &test_der::tlv(0x02, &content),
        )];
        let err = verify_crl(&test_der::crl(&spec, &name, &key), roots).unwrap_err();
        assert_eq!(
            err,
            CrlError::InvalidCrlNumber {
                issuer: "CN=Root".into(),
                reason: reason.into()
            }
        );
    }
    // 20 octets is the maximum and fine.
    let mut spec = CrlSpec::ours();
    spec.extensions = vec![test_der::extension(
        test_der::OID_CRL_NUMBER,
        false,
        &test_der::tlv(0x02, &[0x7f; 20]),
    )];
    assert_eq!(
        verify_crl(&test_der::crl(&spec, &name, &key), roots)
            .unwrap()
            .crl_number,
        vec![0x7f; 20]
    );
}

#[test]
fn algorithms_must_agree_and_fit_the_issuer_key() {
    let (root, key) = root_with(
        "Root",
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
    );
    let name = name_of(&root);
    let roots = std::slice::from_ref(&root);

    // Outer signatureAlgorithm differs from tbsCertList.signature.
    let mut spec = CrlSpec::ours();
    spec.outer_alg = test_der::ALG_ECDSA_SHA256;
    let err = verify_crl(&test_der::crl(&spec, &name, &key), roots).unwrap_err();
    assert_eq!(
        err.to_string(),
        "its signatureAlgorithm (ecdsa-with-SHA256) differs from tbsCertList.signature \
         (ecdsa-with-SHA384); RFC 5280 5.1.1.2 requires the two to be identical"
    );

    // An RSA or Ed25519 algorithm over the root's EC key, under either policy.
    for (alg, name_of_alg) in [
        (test_der::ALG_RSA_SHA256, "sha256WithRSAEncryption"),
        (test_der::ALG_ED25519, "ED25519"),
    ] {
        let mut spec = CrlSpec::ours();
        spec.inner_alg = alg;
        spec.outer_alg = alg;
        let der = test_der::crl(&spec, &name, &key);
        for policy in [AlgorithmPolicy::EcdsaOnly, AlgorithmPolicy::WebPki] {
            let err = verify_crl_with_policy(&der, roots, policy).unwrap_err();
            assert_eq!(
                err,
                CrlError::AlgorithmKeyMismatch {
                    issuer: "CN=Root".into(),
                    algorithm: name_of_alg.into(),
                    key: "an EC P-384 key".into(),
                },
                "{policy}"
            );
        }
    }

    // ecdsa-with-SHA512 on P-384 is outside the services' policy (rustls does not offer it).
    let mut spec = CrlSpec::ours();
    spec.inner_alg = test_der::ALG_ECDSA_SHA512;
    spec.outer_alg = test_der::ALG_ECDSA_SHA512;
    let err = verify_crl(&test_der::crl(&spec, &name, &key), roots).unwrap_err();
    assert_eq!(err.code(), "crl_algorithm_not_allowed");
    assert!(
        err.to_string().contains("the ecdsa algorithm policy"),
        "{err}"
    );
}

#[test]
fn critical_extensions_it_cannot_honour_are_refused() {
    let (root, key) = root_with(
        "Root",
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
    );
    let mut spec = CrlSpec::ours();
    // A delta CRL: its indicator is critical, and a delta is not a complete list.
    spec.extensions.push(test_der::extension(
        test_der::OID_DELTA_CRL,
        true,
        &test_der::tlv(0x02, &[1]),
    ));
    let err = verify_crl(
        &test_der::crl(&spec, &name_of(&root), &key),
        std::slice::from_ref(&root),
    )
    .unwrap_err();
    assert_eq!(
        err,
        CrlError::UnsupportedCriticalExtension {
            issuer: "CN=Root".into(),
            oids: vec!["2.5.29.27".into()],
        }
    );

    // An issuingDistributionPoint limiting the list to CA certificates: it says nothing about
    // end entities, so it must not be taken as a complete list.
    let mut spec = CrlSpec::ours();
    spec.extensions.push(test_der::extension(
        test_der::OID_ISSUING_DISTRIBUTION_POINT,
        true,
        // SEQUENCE { onlyContainsCACerts [2] TRUE }
        &[0x30, 0x03, 0x82, 0x01, 0xff],
    ));
    let err = verify_crl(
        &test_der::crl(&spec, &name_of(&root), &key),
        std::slice::from_ref(&root),
    )
    .unwrap_err();
    assert_eq!(
        err,
        CrlError::PartialScope {
            issuer: "CN=Root".into(),
            scope: "onlyContainsCACerts".into(),
        }
    );

    // An entry naming another issuer (an indirect CRL's certificateIssuer, critical).
    let mut spec = CrlSpec::ours();
    spec.serials = vec![vec![0x0a]];
    spec.entry_extensions = vec![test_der::extension(
        test_der::OID_CERTIFICATE_ISSUER,
        true,
        &[0x30, 0x03, 0x82, 0x01, b'x'],
    )];
    let err = verify_crl(&test_der::crl(&spec, &name_of(&root), &key), &[root]).unwrap_err();
    assert_eq!(err.code(), "crl_unsupported_critical_extension");
    assert!(
        err.to_string()
            .ends_with("2.5.29.29 (in the entry for serial 0a)"),
        "{err}"
    );
}

#[test]
fn an_intermediate_with_crl_sign_may_issue_crls() {
    let ca = CaMaterial::generate_root("Root", now()).unwrap();
    let key = crate::keys::generate(Curve::P384).unwrap();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Int");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let int = p.signed_by(&key, ca.issuer()).unwrap().der().clone();
    let mut spec = CrlSpec::ours();
    spec.serials = vec![vec![0x01, 0x02]];
    let der = test_der::crl(&spec, &name_of(&int), &key);
    let crl = verify_crl(&der, &[ca.cert_der().clone(), int]).unwrap();
    assert_eq!(crl.issuer, "CN=Int");
    assert!(crl.serials.contains(&vec![0x01, 0x02]));
}

#[test]
fn the_revoked_set_keeps_the_newest_crl_of_an_issuer() {
    let ca = CaMaterial::generate_root("Root A", now()).unwrap();
    let roots = [ca.cert_der().clone()];
    let old = sign_crl(&ca, &[entry("01")], 5, now(), now() + Duration::hours(1)).unwrap();
    let new = sign_crl(&ca, &[entry("02")], 300, now(), now() + Duration::hours(1)).unwrap();
    let old = verify_crl(&old, &roots).unwrap();
    let new = verify_crl(&new, &roots).unwrap();
    assert!(old.is_superseded_by(&new));
    assert!(!new.is_superseded_by(&old));
    for order in [
        vec![old.clone(), new.clone()],
        vec![new.clone(), old.clone()],
    ] {
        let set = RevokedSet::from_crls(order);
        assert!(set.is_revoked(&new.issuer_raw, &[0x02]));
        assert!(!set.is_revoked(&new.issuer_raw, &[0x01]));
        assert_eq!(set.crls().count(), 1);
    }
}

/// Re-encodings of the parts of a CRL its signature does not cover (the outer SEQUENCE, the
/// outer signatureAlgorithm and the signatureValue BIT STRING): each keeps the signature valid,
/// and x509-parser reads them (it does not check a tag's class), but they are not DER, and
/// rustls-webpki refuses them. Found by the fuzz target `crl` (docs/fuzzing.md): `verify_crl`
/// accepted a CRL whose signatureAlgorithm SEQUENCE tag 0x30 had become 0x70 while
/// `TrustStore` refused it, so the services and mtls-inspect disagreed about one CRL.
#[test]
fn a_crl_is_refused_unless_it_is_strict_der_even_where_the_signature_does_not_reach() {
    let ca = CaMaterial::generate_root("Root DER", now()).unwrap();
    let der = sign_crl(&ca, &[entry("4f1a")], 9, now(), now() + Duration::hours(1)).unwrap();
    let issuers = [ca.cert_der().clone()];
    verify_crl(&der, &issuers).unwrap();
    // Offsets: outer header (4 bytes, 0x30 0x82 len len), the signed TBS, then the outer
    // AlgorithmIdentifier, then the BIT STRING.
    let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
    let alg_at = 4 + crl.tbs_cert_list.as_ref().len();
    assert_eq!(der[alg_at], 0x30);
    let alg_len = 2 + usize::from(der[alg_at + 1]);
    let bits_at = alg_at + alg_len;
    assert_eq!(der[bits_at], 0x03);

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for (what, at, tag) in [
        ("signatureAlgorithm as [APPLICATION 16]", alg_at, 0x70),
        ("signatureAlgorithm as [PRIVATE 16]", alg_at, 0xf0),
        ("signatureValue as [APPLICATION 3]", bits_at, 0x43),
        ("the CertificateList as [APPLICATION 16]", 0, 0x70),
    ] {
        let mut v = der.clone();
        v[at] = tag;
        cases.push((what, v));
    }
    for (what, bad) in cases {
        let err = verify_crl(&bad, &issuers).expect_err(what);
        assert_eq!(err.code(), "crl_not_der", "{what}: {err}");
        assert!(err.is_malformed());
        assert!(
            err.to_string()
                .starts_with("the CRL from O=mtls-mesh, CN=Root DER is not encoded as RFC 5280"),
            "{err}"
        );
        // The trust store (mtls-inspect, the TLS verifiers) gives the same verdict.
        let store = crate::verify::TrustStore::new(&issuers, &[bad.as_slice()]).unwrap_err();
        assert!(
            store.to_string().contains(&err.to_string()),
            "{what}: {store}"
        );
    }
}
