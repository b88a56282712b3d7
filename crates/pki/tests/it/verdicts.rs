//! The verdict table: for each kind of certificate, what `pki::verify` decides with the
//! services' defaults (ECDSA only, the X509-SVID rule set; `mtls-inspect verify` without options)
//! and with the Web PKI algorithm policy (`mtls-inspect verify --algorithms webpki`), as an
//! accept or the refusal's error code. A running mtls-server must give the same verdict for the
//! same client certificate; a table test on the mesh side compares the two.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use pki::policy::{IssuancePolicy, LeafRequest};
use pki::verify::{AlgorithmPolicy, Purpose, TrustOptions, TrustStore, VerifyOptions};
use pki::{CaMaterial, Curve, SpiffeId};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

/// The expected verdict: accepted (with the SPIFFE ID it reports, if any) or the error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Accept(Option<&'static str>),
    Refuse(&'static str),
}
use Verdict::{Accept, Refuse};

const ID: &str = "spiffe://mesh.local/service/api";

/// The PKI every row is issued from: an ECDSA root like the CA's and an RSA root.
struct Roots {
    ecdsa: CaMaterial,
    rsa_der: CertificateDer<'static>,
    rsa: Issuer<'static, KeyPair>,
}

fn roots() -> Roots {
    let ecdsa = CaMaterial::generate_root("Root A", T0 - Duration::days(1)).unwrap();
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "RSA Root");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = T0 - Duration::days(1);
    p.not_after = T0 + Duration::days(30);
    let rsa_der = p.self_signed(&key).unwrap().der().clone();
    Roots {
        ecdsa,
        rsa_der,
        rsa: Issuer::new(p, key),
    }
}

/// A client leaf like the CA's, with the changes a row makes.
fn base(uris: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "leaf");
    p.distinguished_name = dn;
    p.not_before = T0 - Duration::hours(1);
    p.not_after = T0 + Duration::hours(1);
    p.serial_number = Some(SerialNumber::from_slice(
        &pki::serial::random_serial().unwrap(),
    ));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    p.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().unwrap()))
        .collect();
    p
}

fn p256() -> KeyPair {
    pki::keys::generate(Curve::P256).unwrap()
}

/// One row: what the certificate is, how to make it, the two verdicts.
struct Row {
    what: &'static str,
    make: fn(&Roots) -> Vec<u8>,
    services: Verdict,
    web_pki: Verdict,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            what: "issued by the CA's policy",
            make: |r| {
                let key = p256();
                let id = SpiffeId::parse(ID).unwrap();
                let spki = pki::keys::spki_der(&key);
                let req = LeafRequest {
                    spiffe_id: &id,
                    dns: &[],
                    ips: &[],
                    spki_der: &spki,
                    ttl: Duration::hours(1),
                    now: T0,
                };
                IssuancePolicy::default().issue(&req, &r.ecdsa).unwrap().der
            },
            services: Accept(Some(ID)),
            web_pki: Accept(Some(ID)),
        },
        Row {
            what: "SPIFFE ID plus an https:// URI",
            make: |r| sign(base(&[ID, "https://example.com/"]), p256(), r),
            services: Refuse("multiple_uri_sans"),
            web_pki: Refuse("multiple_uri_sans"),
        },
        Row {
            what: "SPIFFE ID without keyUsage",
            make: |r| {
                let mut p = base(&[ID]);
                p.key_usages = vec![];
                sign(p, p256(), r)
            },
            services: Refuse("key_usage_missing"),
            web_pki: Refuse("key_usage_missing"),
        },
        Row {
            what: "SPIFFE ID with a non-critical keyUsage",
            make: |r| {
                let mut p = base(&[ID]);
                p.key_usages = vec![];
                p.custom_extensions = vec![CustomExtension::from_oid_content(
                    &[2, 5, 29, 15],
                    vec![0x03, 0x02, 0x07, 0x80],
                )];
                sign(p, p256(), r)
            },
            services: Refuse("key_usage_not_critical"),
            web_pki: Refuse("key_usage_not_critical"),
        },
        Row {
            what: "SPIFFE ID, keyUsage keyEncipherment only",
            make: |r| {
                let mut p = base(&[ID]);
                p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
                sign(p, p256(), r)
            },
            services: Refuse("key_usage_no_digital_signature"),
            web_pki: Refuse("key_usage_no_digital_signature"),
        },
        Row {
            what: "SPIFFE ID, keyUsage with keyCertSign",
            make: |r| {
                let mut p = base(&[ID]);
                p.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyCertSign,
                ];
                sign(p, p256(), r)
            },
            services: Refuse("key_usage_ca_bits"),
            web_pki: Refuse("key_usage_ca_bits"),
        },
        Row {
            what: "SPIFFE ID on a CA:TRUE certificate",
            make: |r| {
                let mut p = base(&[ID]);
                p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                sign(p, p256(), r)
            },
            services: Refuse("ca_used_as_leaf"),
            web_pki: Refuse("ca_used_as_leaf"),
        },
        Row {
            what: "upper-case SPIFFE:// scheme",
            make: |r| sign(base(&["SPIFFE://mesh.local/service/api"]), p256(), r),
            services: Refuse("invalid_spiffe_id"),
            web_pki: Refuse("invalid_spiffe_id"),
        },
        Row {
            what: "SPIFFE ID with an invalid trust domain",
            make: |r| sign(base(&["spiffe://Mesh.local/service/api"]), p256(), r),
            services: Refuse("invalid_spiffe_id"),
            web_pki: Refuse("invalid_spiffe_id"),
        },
        Row {
            what: "plain certificate without keyUsage (OpenSSL static mode)",
            make: |r| {
                let mut p = base(&[]);
                p.key_usages = vec![];
                p.subject_alt_names = vec![SanType::DnsName("localhost".try_into().unwrap())];
                sign(p, p256(), r)
            },
            services: Accept(None),
            web_pki: Accept(None),
        },
        Row {
            what: "plain certificate with two https:// URIs",
            make: |r| {
                sign(
                    base(&["https://a.example/", "https://b.example/"]),
                    p256(),
                    r,
                )
            },
            services: Accept(None),
            web_pki: Accept(None),
        },
        Row {
            what: "plain certificate, keyUsage keyEncipherment only",
            make: |r| {
                let mut p = base(&[]);
                p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
                sign(p, p256(), r)
            },
            services: Refuse("key_usage_no_digital_signature"),
            web_pki: Refuse("key_usage_no_digital_signature"),
        },
        Row {
            what: "plain certificate, keyUsage with cRLSign",
            make: |r| {
                let mut p = base(&[]);
                p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
                sign(p, p256(), r)
            },
            services: Refuse("key_usage_ca_bits"),
            web_pki: Refuse("key_usage_ca_bits"),
        },
        Row {
            what: "RSA key, signed by the ECDSA root",
            make: |r| {
                let key =
                    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                        .unwrap();
                sign(base(&[ID]), key, r)
            },
            services: Refuse("key_algorithm_not_allowed"),
            web_pki: Accept(Some(ID)),
        },
        Row {
            what: "Ed25519 key, signed by the ECDSA root",
            make: |r| {
                let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
                sign(base(&[ID]), key, r)
            },
            services: Refuse("key_algorithm_not_allowed"),
            web_pki: Accept(Some(ID)),
        },
        Row {
            what: "ECDSA key, signed by an RSA root (sha256WithRSAEncryption)",
            make: |r| {
                base(&[ID])
                    .signed_by(&p256(), &r.rsa)
                    .unwrap()
                    .der()
                    .to_vec()
            },
            services: Refuse("algorithm_not_allowed"),
            web_pki: Accept(Some(ID)),
        },
        Row {
            what: "EKU serverAuth only, presented as a client",
            make: |r| {
                let mut p = base(&[ID]);
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                sign(p, p256(), r)
            },
            services: Refuse("missing_eku"),
            web_pki: Refuse("missing_eku"),
        },
        Row {
            what: "expired",
            make: |r| {
                let mut p = base(&[ID]);
                p.not_before = T0 - Duration::hours(3);
                p.not_after = T0 - Duration::hours(2);
                sign(p, p256(), r)
            },
            services: Refuse("expired"),
            web_pki: Refuse("expired"),
        },
    ]
}

fn sign(p: CertificateParams, key: KeyPair, r: &Roots) -> Vec<u8> {
    p.signed_by(&key, r.ecdsa.issuer()).unwrap().der().to_vec()
}

fn verdict(store: &TrustStore, leaf: &[u8]) -> Verdict {
    match store.verify(leaf, &[], &VerifyOptions::new(T0, Purpose::Client)) {
        Ok(v) => Accept(v.spiffe_id.map(|id| {
            if id.to_string() == ID {
                ID
            } else {
                "another ID"
            }
        })),
        Err(e) => Refuse(e.code()),
    }
}

#[test]
fn each_certificate_gets_the_expected_verdict() {
    let r = roots();
    let trusted = [r.ecdsa.cert_der().clone(), r.rsa_der.clone()];
    let services = TrustStore::new(&trusted, &[] as &[Vec<u8>]).unwrap();
    let web_pki = TrustStore::with_options(
        &trusted,
        &[] as &[Vec<u8>],
        TrustOptions {
            algorithms: AlgorithmPolicy::WebPki,
            ..TrustOptions::default()
        },
    )
    .unwrap();
    let mut wrong = Vec::new();
    for row in rows() {
        let leaf = (row.make)(&r);
        let got = (verdict(&services, &leaf), verdict(&web_pki, &leaf));
        if got != (row.services, row.web_pki) {
            wrong.push(format!(
                "{}: expected {:?} / {:?}, got {:?} / {:?}",
                row.what, row.services, row.web_pki, got.0, got.1
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
