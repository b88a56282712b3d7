//! Unit tests of the rule set: each rule on a certificate that breaks only it.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::Curve;
use rcgen::{BasicConstraints, CertificateParams, CustomExtension, IsCa, KeyUsagePurpose, SanType};
use x509_parser::prelude::FromDer;

/// A self-signed certificate with these SANs, keyUsage bits and CA flag. rcgen marks keyUsage
/// critical; `ku_not_critical` writes it as a non-critical custom extension instead.
struct Spec {
    uris: Vec<&'static str>,
    ku: Vec<KeyUsagePurpose>,
    ku_not_critical: bool,
    ca: bool,
}

impl Spec {
    fn svid() -> Spec {
        Spec {
            uris: vec!["spiffe://mesh.local/service/api"],
            ku: vec![KeyUsagePurpose::DigitalSignature],
            ku_not_critical: false,
            ca: false,
        }
    }

    fn der(&self) -> Vec<u8> {
        let key = crate::keys::generate(Curve::P256).unwrap();
        let mut p = CertificateParams::default();
        p.subject_alt_names = self
            .uris
            .iter()
            .map(|u| SanType::URI((*u).try_into().unwrap()))
            .collect();
        p.is_ca = if self.ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        if self.ku_not_critical {
            // keyUsage digitalSignature: BIT STRING, 7 unused bits, 0x80.
            p.custom_extensions = vec![CustomExtension::from_oid_content(
                &[2, 5, 29, 15],
                vec![0x03, 0x02, 0x07, 0x80],
            )];
        } else {
            p.key_usages = self.ku.clone();
        }
        p.self_signed(&key).unwrap().der().to_vec()
    }
}

fn findings(rules: SvidRules, spec: &Spec) -> LeafFindings {
    let der = spec.der();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    rules.violations(&cert)
}

fn check(spec: &Spec) -> Result<Option<SpiffeId>, SvidViolation> {
    let der = spec.der();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    SvidRules::new().check(&cert)
}

#[test]
fn a_conforming_svid_passes_and_names_its_id() {
    let id = check(&Spec::svid()).unwrap().unwrap();
    assert_eq!(id.to_string(), "spiffe://mesh.local/service/api");
    let f = findings(SvidRules::new(), &Spec::svid());
    assert!(f.judged_as_svid && f.violations.is_empty());
}

#[test]
fn a_spiffe_id_next_to_another_uri_is_refused() {
    // The services used to pick the spiffe:// URI out of several; an X509-SVID has exactly one.
    let spec = Spec {
        uris: vec!["spiffe://mesh.local/service/api", "https://example.com/"],
        ..Spec::svid()
    };
    let err = check(&spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate has 2 URI SANs [spiffe://mesh.local/service/api, https://example.com/]; an \
         X509-SVID carries exactly one"
    );
    assert_eq!(err.code(), "multiple_uri_sans");
}

#[test]
fn an_svid_needs_a_critical_key_usage_with_digital_signature() {
    let err = check(&Spec {
        ku: vec![],
        ..Spec::svid()
    })
    .unwrap_err();
    assert_eq!(err, SvidViolation::KeyUsageMissing);
    let err = check(&Spec {
        ku_not_critical: true,
        ..Spec::svid()
    })
    .unwrap_err();
    assert_eq!(err, SvidViolation::KeyUsageNotCritical);
    let err = check(&Spec {
        ku: vec![KeyUsagePurpose::KeyEncipherment],
        ..Spec::svid()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key usage lacks digitalSignature (it has [keyEncipherment]); a TLS 1.3 ECDSA end-entity \
         certificate must be able to sign, and SPIFFE X509-SVIDs require digitalSignature"
    );
    let err = check(&Spec {
        ku: vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ],
        ..Spec::svid()
    })
    .unwrap_err();
    assert_eq!(
        err,
        SvidViolation::CaKeyUsage {
            usage: "keyCertSign and cRLSign",
            present: vec![
                "digitalSignature".into(),
                "keyCertSign".into(),
                "cRLSign".into()
            ],
        }
    );
}

#[test]
fn an_svid_is_not_a_ca() {
    let err = check(&Spec {
        ca: true,
        ..Spec::svid()
    })
    .unwrap_err();
    assert_eq!(err.code(), "svid_ca");
}

#[test]
fn the_scheme_is_recognised_in_any_case() {
    let err = check(&Spec {
        uris: vec!["SPIFFE://mesh.local/x", "https://example.com/"],
        ..Spec::svid()
    })
    .unwrap_err();
    assert_eq!(err.code(), "multiple_uri_sans");
    let err = check(&Spec {
        uris: vec!["SPIFFE://mesh.local/x"],
        ..Spec::svid()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "URI SAN SPIFFE://mesh.local/x is not a valid SPIFFE ID: the scheme must be lowercase \
         \"spiffe://\""
    );
}

#[test]
fn a_certificate_without_a_spiffe_id_follows_the_web_pki_rule() {
    // No keyUsage at all: unrestricted, and several non-SPIFFE URIs are no concern of ours.
    let plain = Spec {
        uris: vec!["https://a.example/", "https://b.example/"],
        ku: vec![],
        ..Spec::svid()
    };
    assert_eq!(check(&plain), Ok(None));
    let f = findings(SvidRules::new(), &plain);
    assert!(!f.judged_as_svid);
    // A keyUsage that is present must allow signing and must not carry the CA bits.
    let err = check(&Spec {
        uris: vec![],
        ku: vec![KeyUsagePurpose::KeyEncipherment],
        ..Spec::svid()
    })
    .unwrap_err();
    assert_eq!(err.code(), "key_usage_no_digital_signature");
    let err = check(&Spec {
        uris: vec![],
        ku: vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign],
        ..Spec::svid()
    })
    .unwrap_err();
    assert_eq!(err.code(), "key_usage_ca_bits");
    // A non-critical keyUsage is fine outside the SVID rules.
    assert_eq!(
        check(&Spec {
            uris: vec![],
            ku_not_critical: true,
            ..Spec::svid()
        }),
        Ok(None)
    );
}

#[test]
fn requiring_an_id_judges_every_certificate_as_an_svid() {
    let rules = SvidRules::requiring_spiffe_id();
    assert!(rules.requires_spiffe_id());
    let f = findings(
        rules,
        &Spec {
            uris: vec![],
            ..Spec::svid()
        },
    );
    assert_eq!(f.violations, vec![SvidViolation::NoUriSan]);
    let f = findings(
        rules,
        &Spec {
            uris: vec!["https://example.com/"],
            ..Spec::svid()
        },
    );
    assert_eq!(f.violations[0].code(), "invalid_spiffe_id");
}

#[test]
fn every_violation_is_listed_for_lint() {
    let f = findings(
        SvidRules::new(),
        &Spec {
            uris: vec!["spiffe://mesh.local/a", "spiffe://mesh.local/b"],
            ku: vec![
                KeyUsagePurpose::KeyEncipherment,
                KeyUsagePurpose::KeyCertSign,
            ],
            ku_not_critical: false,
            ca: true,
        },
    );
    let codes: Vec<_> = f.violations.iter().map(SvidViolation::code).collect();
    assert_eq!(
        codes,
        [
            "multiple_uri_sans",
            "svid_ca",
            "key_usage_no_digital_signature",
            "key_usage_ca_bits"
        ]
    );
}

fn signing(uris: Vec<&'static str>, ku: Vec<KeyUsagePurpose>, ca: bool) -> Vec<SvidViolation> {
    let der = Spec {
        uris,
        ku,
        ku_not_critical: false,
        ca,
    }
    .der();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    signing_violations(&cert)
}

#[test]
fn signing_certificates() {
    use KeyUsagePurpose::*;
    assert_eq!(
        signing(
            vec!["spiffe://mesh.local"],
            vec![KeyCertSign, CrlSign],
            true
        ),
        vec![]
    );
    assert_eq!(signing(vec![], vec![KeyCertSign], true), vec![]);
    let v = signing(vec!["spiffe://mesh.local/ca"], vec![KeyCertSign], true);
    assert_eq!(
        v,
        vec![SvidViolation::SigningIdHasPath {
            id: "spiffe://mesh.local/ca".into(),
            trust_domain: "mesh.local".into()
        }]
    );
    assert_eq!(
        v[0].to_string(),
        "signing certificate carries the SPIFFE ID spiffe://mesh.local/ca, which has a path; a \
         signing certificate's SPIFFE ID must be the trust domain alone (spiffe://mesh.local)"
    );
    let v = signing(
        vec!["spiffe://mesh.local", "https://example.com/"],
        vec![DigitalSignature],
        false,
    );
    let codes: Vec<_> = v.iter().map(SvidViolation::code).collect();
    assert_eq!(
        codes,
        [
            "multiple_uri_sans",
            "signing_not_ca",
            "signing_no_key_cert_sign"
        ]
    );
    let v = signing(vec!["spiffe://Mesh.local"], vec![], true);
    let codes: Vec<_> = v.iter().map(SvidViolation::code).collect();
    assert_eq!(codes, ["invalid_spiffe_id", "key_usage_missing"]);
}
