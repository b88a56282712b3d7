//! Unit tests of the verifier: one per failure, each checking the exact message.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::certinfo::colon_hex;
use crate::crl::CrlError;
use crate::crl::{sign_crl, RevokedEntry};
use crate::policy::{IssuancePolicy, LeafRequest};
use crate::root::CaMaterial;
use crate::svid::SvidViolation;
use crate::{keys, Curve};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber,
};
use time::macros::datetime;
use time::Duration;

const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn root(name: &str) -> CaMaterial {
    CaMaterial::generate_root(name, T0 - Duration::days(1)).unwrap()
}

/// A leaf exactly as our CA issues it, valid for one hour from `now`.
fn leaf_at(ca: &CaMaterial, spiffe: &str, now: OffsetDateTime) -> Vec<u8> {
    let key = keys::generate(Curve::P256).unwrap();
    let spki = key.subject_public_key_info();
    let spiffe_id = id(spiffe);
    let dns = vec!["localhost".to_string()];
    let ips = vec!["127.0.0.1".parse().unwrap()];
    let req = LeafRequest {
        spiffe_id: &spiffe_id,
        dns: &dns,
        ips: &ips,
        spki_der: &spki,
        ttl: Duration::hours(1),
        now,
    };
    IssuancePolicy::default().issue(&req, ca).unwrap().der
}

fn leaf(ca: &CaMaterial) -> Vec<u8> {
    leaf_at(ca, "spiffe://mesh.local/service/api", T0)
}

fn params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.not_before = T0 - Duration::hours(1);
    p.not_after = T0 + Duration::hours(1);
    p.serial_number = Some(SerialNumber::from_slice(
        &crate::serial::random_serial().unwrap(),
    ));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.subject_alt_names = vec![SanType::URI(
        "spiffe://mesh.local/service/api".try_into().unwrap(),
    )];
    p
}

fn ca_params(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = params(cn);
    p.is_ca = match path_len {
        Some(n) => IsCa::Ca(BasicConstraints::Constrained(n)),
        None => IsCa::Ca(BasicConstraints::Unconstrained),
    };
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.extended_key_usages = vec![];
    p.subject_alt_names = vec![];
    p
}

fn sign(p: CertificateParams, issuer: &Issuer<'_, impl rcgen::SigningKey>) -> Vec<u8> {
    let key = keys::generate(Curve::P256).unwrap();
    p.signed_by(&key, issuer).unwrap().der().to_vec()
}

/// An intermediate CA under `issuer`: its DER and an issuer to sign with.
fn intermediate(
    p: CertificateParams,
    issuer: &Issuer<'_, impl rcgen::SigningKey>,
) -> (Vec<u8>, Issuer<'static, KeyPair>) {
    let key = keys::generate(Curve::P384).unwrap();
    let der = p.signed_by(&key, issuer).unwrap().der().to_vec();
    (der, Issuer::new(p, key))
}

fn cd(der: &[u8]) -> CertificateDer<'static> {
    CertificateDer::from(der.to_vec())
}

fn opts(purpose: Purpose) -> VerifyOptions<'static> {
    VerifyOptions::new(T0, purpose)
}

fn check(
    leaf: &[u8],
    inter: &[Vec<u8>],
    roots: &[&CaMaterial],
    crls: &[Vec<u8>],
    o: &VerifyOptions<'_>,
) -> Result<Verified, VerifyError> {
    let inter: Vec<_> = inter.iter().map(|d| cd(d)).collect();
    let roots: Vec<_> = roots.iter().map(|r| r.cert_der().clone()).collect();
    verify_chain(leaf, &inter, &roots, crls, o)
}

fn err(
    leaf: &[u8],
    inter: &[Vec<u8>],
    roots: &[&CaMaterial],
    crls: &[Vec<u8>],
    o: &VerifyOptions<'_>,
) -> (VerifyError, String) {
    let e = check(leaf, inter, roots, crls, o).unwrap_err();
    let msg = e.to_string();
    (e, msg)
}

fn serial_colon(der: &[u8]) -> String {
    colon_hex(&CertInfo::from_der(der).unwrap().serial_hex).to_ascii_lowercase()
}

#[test]
fn valid_leaf_reports_the_path_and_identity() {
    let ca = root("Root A");
    let l = leaf(&ca);
    let expected = ExpectedIdentity::SpiffeId(id("spiffe://mesh.local/service/api"));
    for purpose in [Purpose::Server, Purpose::Client, Purpose::Any] {
        let o = VerifyOptions {
            hostname: Some("localhost"),
            identity: Some(&expected),
            ..opts(purpose)
        };
        let v = check(&l, &[], &[&ca], &[], &o).unwrap();
        assert_eq!(
            v.spiffe_id.as_ref().map(ToString::to_string).as_deref(),
            Some("spiffe://mesh.local/service/api")
        );
        assert_eq!(v.chain.len(), 2);
        assert_eq!(v.root().unwrap().fingerprint, ca.fingerprint());
        assert_eq!(v.root().unwrap().subject, "O=mtls-mesh, CN=Root A");
        assert_eq!(v.purpose, purpose);
        assert!(!v.revocation_checked);
        assert!(v.warnings.is_empty());
        assert_eq!(v.leaf.fingerprint, crate::sha256_hex(&l));
    }
    // The IP SAN is a valid hostname too, and a trust domain is enough.
    let td = ExpectedIdentity::TrustDomain(TrustDomain::parse("mesh.local").unwrap());
    let o = VerifyOptions {
        hostname: Some("127.0.0.1"),
        identity: Some(&td),
        ..opts(Purpose::Server)
    };
    check(&l, &[], &[&ca], &[], &o).unwrap();
}

#[test]
fn trust_store_exposes_root_names() {
    let a = root("Root A");
    let list = crl(&a, &[], T0 + Duration::hours(1));
    let store = TrustStore::new(&[a.cert_der().clone()], &[list]).unwrap();
    assert_eq!(store.counts(), (1, 1));
    assert_eq!(store.root_subjects(), ["O=mtls-mesh, CN=Root A"]);
    let der = store.root_subjects_der();
    let (_, name) = x509_parser::x509::X509Name::from_der(&der[0]).unwrap();
    assert_eq!(name.to_string(), "O=mtls-mesh, CN=Root A");
}

#[test]
fn any_of_several_roots_may_anchor_the_path() {
    let a = root("Root A");
    let b = root("Root B");
    let v = check(&leaf(&b), &[], &[&a, &b], &[], &opts(Purpose::Server)).unwrap();
    assert_eq!(v.root().unwrap().subject, "O=mtls-mesh, CN=Root B");
}

#[test]
fn expired_and_not_yet_valid_give_both_times() {
    let ca = root("Root A");
    let l = leaf_at(&ca, "spiffe://mesh.local/a", T0 - Duration::hours(3));
    let (e, msg) = err(&l, &[], &[&ca], &[], &opts(Purpose::Server));
    assert!(matches!(e, VerifyError::Expired { .. }), "{e:?}");
    assert_eq!(
        msg,
        "certificate expired at 2026-03-01T10:00:00Z, checked at 2026-03-01T12:00:00Z"
    );

    let l = leaf_at(&ca, "spiffe://mesh.local/a", T0 + Duration::hours(2));
    let (e, msg) = err(&l, &[], &[&ca], &[], &opts(Purpose::Server));
    assert!(matches!(e, VerifyError::NotYetValid { .. }), "{e:?}");
    // NotBefore is backdated 30 seconds by the issuance policy.
    assert_eq!(
        msg,
        "certificate is not yet valid until 2026-03-01T13:59:30Z, checked at 2026-03-01T12:00:00Z"
    );
}

#[test]
fn expired_intermediate_is_named() {
    let ca = root("Root A");
    let mut ip = ca_params("Int", None);
    ip.not_after = T0 - Duration::minutes(1);
    ip.not_before = T0 - Duration::days(1);
    let (int_der, int) = intermediate(ip, ca.issuer());
    let l = sign(params("leaf"), &int);
    let (_, msg) = err(&l, &[int_der], &[&ca], &[], &opts(Purpose::Server));
    assert_eq!(
        msg,
        "intermediate certificate CN=Int expired at 2026-03-01T11:59:00Z, checked at 2026-03-01T12:00:00Z"
    );
}

#[test]
fn unknown_issuer_names_issuer_and_roots() {
    let a = root("Root A");
    let b = root("Root B");
    let (e, msg) = err(&leaf(&a), &[], &[&b], &[], &opts(Purpose::Server));
    assert!(matches!(e, VerifyError::UnknownIssuer { .. }), "{e:?}");
    assert_eq!(
        msg,
        "issuer O=mtls-mesh, CN=Root A is not in the roots [O=mtls-mesh, CN=Root B]"
    );
}

#[test]
fn unknown_issuer_follows_the_intermediates() {
    let a = root("Root A");
    let b = root("Root B");
    let (int_der, int) = intermediate(ca_params("Int", None), a.issuer());
    let l = sign(params("leaf"), &int);
    let (_, msg) = err(&l, &[int_der], &[&b], &[], &opts(Purpose::Server));
    assert_eq!(
        msg,
        "issuer O=mtls-mesh, CN=Root A is not in the roots [O=mtls-mesh, CN=Root B]"
    );
}

#[test]
fn same_name_different_key_is_a_bad_signature() {
    let real = root("Root A");
    let impostor = root("Root A");
    let (e, msg) = err(&leaf(&real), &[], &[&impostor], &[], &opts(Purpose::Server));
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e:?}");
    assert!(
        msg.starts_with("the signature on O=mtls-mesh, CN=spiffe://mesh.local/service/api does not verify with the public key of O=mtls-mesh, CN=Root A"),
        "{msg}"
    );
}

#[test]
fn intermediates_build_a_path() {
    let ca = root("Root A");
    let (int_der, int) = intermediate(ca_params("Int", None), ca.issuer());
    let l = sign(params("leaf"), &int);
    let v = check(
        &l,
        std::slice::from_ref(&int_der),
        &[&ca],
        &[],
        &opts(Purpose::Client),
    )
    .unwrap();
    let subjects: Vec<_> = v.chain.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects, ["CN=leaf", "CN=Int", "O=mtls-mesh, CN=Root A"]);
    // Without the intermediate the leaf's issuer is unknown.
    let (_, msg) = err(&l, &[], &[&ca], &[], &opts(Purpose::Server));
    assert!(
        msg.starts_with("issuer CN=Int is not in the roots"),
        "{msg}"
    );
}

#[test]
fn ca_certificate_cannot_be_a_leaf() {
    let ca = root("Root A");
    let mut p = ca_params("Sub CA", None);
    p.subject_alt_names = vec![SanType::URI(
        "spiffe://mesh.local/service/api".try_into().unwrap(),
    )];
    let l = sign(p, ca.issuer());
    let (e, msg) = err(&l, &[], &[&ca], &[], &opts(Purpose::Any));
    assert!(matches!(e, VerifyError::CaUsedAsLeaf { .. }), "{e:?}");
    assert_eq!(
        msg,
        "certificate is a CA (CA:TRUE) and cannot be used as a leaf"
    );
}

#[test]
fn non_ca_issuer_is_named() {
    let ca = root("Root A");
    let mut p = params("Not a CA");
    p.subject_alt_names = vec![];
    let (int_der, int) = intermediate(p, ca.issuer());
    let l = sign(params("leaf"), &int);
    let (e, msg) = err(&l, &[int_der], &[&ca], &[], &opts(Purpose::Server));
    assert!(matches!(e, VerifyError::NotACa { .. }), "{e:?}");
    assert_eq!(msg, "CN=Not a CA issues another certificate of the chain but is not a CA (basicConstraints CA:TRUE is missing)");
}

#[test]
fn path_length_constraint() {
    let ca = root("Root A");
    let (i1_der, i1) = intermediate(ca_params("Int 1", Some(0)), ca.issuer());
    let (i2_der, i2) = intermediate(ca_params("Int 2", None), &i1);
    let l = sign(params("leaf"), &i2);
    let (e, msg) = err(&l, &[i1_der, i2_der], &[&ca], &[], &opts(Purpose::Server));
    assert!(matches!(e, VerifyError::PathLen { .. }), "{e:?}");
    assert_eq!(msg, "the chain CN=leaf <- CN=Int 2 <- CN=Int 1 is longer than a pathLenConstraint of its CAs allows");
}

#[test]
fn purpose_needs_the_matching_eku() {
    let ca = root("Root A");
    let mut p = params("server only");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let l = sign(p, ca.issuer());
    check(&l, &[], &[&ca], &[], &opts(Purpose::Server)).unwrap();
    check(&l, &[], &[&ca], &[], &opts(Purpose::Any)).unwrap();
    let (e, msg) = err(&l, &[], &[&ca], &[], &opts(Purpose::Client));
    assert!(matches!(e, VerifyError::MissingEku { .. }), "{e:?}");
    assert_eq!(
        msg,
        "certificate lacks clientAuth EKU (it has [serverAuth])"
    );

    let mut p = params("client only");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let l = sign(p, ca.issuer());
    let (_, msg) = err(&l, &[], &[&ca], &[], &opts(Purpose::Server));
    assert_eq!(
        msg,
        "certificate lacks serverAuth EKU (it has [clientAuth])"
    );
}

#[test]
fn intermediate_eku_restriction_is_named() {
    let ca = root("Root A");
    let mut ip = ca_params("Servers CA", None);
    ip.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (int_der, int) = intermediate(ip, ca.issuer());
    let l = sign(params("leaf"), &int);
    let (e, msg) = err(&l, &[int_der], &[&ca], &[], &opts(Purpose::Client));
    assert!(
        matches!(e, VerifyError::IssuerEkuRestriction { .. }),
        "{e:?}"
    );
    assert_eq!(
        msg,
        "intermediate CN=Servers CA limits EKU to [serverAuth], which excludes clientAuth"
    );
}

#[test]
fn empty_eku_extension() {
    let ca = root("Root A");
    let mut p = params("empty eku");
    p.extended_key_usages = vec![];
    p.custom_extensions = vec![CustomExtension::from_oid_content(
        &[2, 5, 29, 37],
        vec![0x30, 0x00],
    )];
    let l = sign(p, ca.issuer());
    let (e, msg) = err(&l, &[], &[&ca], &[], &opts(Purpose::Server));
    assert!(matches!(e, VerifyError::EmptyEku { .. }), "{e:?}");
    assert_eq!(msg, "certificate has an empty extendedKeyUsage extension");
}

#[test]
fn unknown_critical_extension() {
    let ca = root("Root A");
    let mut p = params("odd");
    let mut ext =
        CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]);
    ext.set_criticality(true);
    p.custom_extensions = vec![ext];
    let l = sign(p, ca.issuer());
    let (e, msg) = err(&l, &[], &[&ca], &[], &opts(Purpose::Server));
    assert!(
        matches!(e, VerifyError::UnsupportedCriticalExtension { .. }),
        "{e:?}"
    );
    assert_eq!(msg, "certificate has a critical extension the verifier does not understand (1.3.6.1.4.1.99999.1)");
}

#[test]
fn hostname_must_be_in_the_sans() {
    let ca = root("Root A");
    let l = leaf(&ca);
    let o = VerifyOptions {
        hostname: Some("localhost2"),
        ..opts(Purpose::Server)
    };
    let (e, msg) = err(&l, &[], &[&ca], &[], &o);
    assert!(matches!(e, VerifyError::HostnameMismatch { .. }), "{e:?}");
    assert_eq!(
        msg,
        "hostname localhost2 is not in the certificate's SANs [localhost, 127.0.0.1]"
    );
    let o = VerifyOptions {
        hostname: Some("10.0.0.1"),
        ..opts(Purpose::Server)
    };
    let (_, msg) = err(&l, &[], &[&ca], &[], &o);
    assert_eq!(
        msg,
        "hostname 10.0.0.1 is not in the certificate's SANs [localhost, 127.0.0.1]"
    );
    let o = VerifyOptions {
        hostname: Some("not a name!"),
        ..opts(Purpose::Server)
    };
    let (e, msg) = err(&l, &[], &[&ca], &[], &o);
    assert!(matches!(e, VerifyError::InvalidHostname { .. }), "{e:?}");
    assert_eq!(
        msg,
        "hostname \"not a name!\" is neither a DNS name nor an IP address"
    );
}

#[test]
fn spiffe_id_must_match() {
    let ca = root("Root A");
    let l = leaf_at(&ca, "spiffe://a/x", T0);
    let want = ExpectedIdentity::SpiffeId(id("spiffe://b/x"));
    let o = VerifyOptions {
        identity: Some(&want),
        ..opts(Purpose::Client)
    };
    let (e, msg) = err(&l, &[], &[&ca], &[], &o);
    assert!(matches!(e, VerifyError::SpiffeIdMismatch { .. }), "{e:?}");
    assert_eq!(
        msg,
        "certificate is valid for spiffe://a/x, not spiffe://b/x"
    );

    let td = ExpectedIdentity::TrustDomain(TrustDomain::parse("mesh.local").unwrap());
    let o = VerifyOptions {
        identity: Some(&td),
        ..opts(Purpose::Client)
    };
    let (e, msg) = err(&l, &[], &[&ca], &[], &o);
    assert!(
        matches!(e, VerifyError::TrustDomainMismatch { .. }),
        "{e:?}"
    );
    assert_eq!(
        msg,
        "certificate is valid for spiffe://a/x, which is not in trust domain mesh.local"
    );
}

#[test]
fn spiffe_rule_needs_exactly_one_valid_uri_san() {
    let ca = root("Root A");
    let want = ExpectedIdentity::SpiffeId(id("spiffe://mesh.local/service/api"));
    let o = VerifyOptions {
        identity: Some(&want),
        ..opts(Purpose::Server)
    };

    let mut p = params("no uri");
    p.subject_alt_names = vec![SanType::DnsName("localhost".try_into().unwrap())];
    let (e, msg) = err(&sign(p, ca.issuer()), &[], &[&ca], &[], &o);
    assert!(matches!(e, VerifyError::NoUriSan { .. }), "{e:?}");
    assert_eq!(
        msg,
        "certificate has no URI SAN, so no SPIFFE ID; expected spiffe://mesh.local/service/api"
    );

    let mut p = params("two uris");
    p.subject_alt_names = vec![
        SanType::URI("spiffe://mesh.local/service/api".try_into().unwrap()),
        SanType::URI("spiffe://mesh.local/service/other".try_into().unwrap()),
    ];
    let (e, msg) = err(&sign(p, ca.issuer()), &[], &[&ca], &[], &o);
    assert!(
        matches!(e, VerifyError::Svid(SvidViolation::MultipleUriSans { .. })),
        "{e:?}"
    );
    assert_eq!(msg, "certificate has 2 URI SANs [spiffe://mesh.local/service/api, spiffe://mesh.local/service/other]; an X509-SVID carries exactly one");

    let mut p = params("bad id");
    p.subject_alt_names = vec![SanType::URI(
        "spiffe://Mesh.local/service/api".try_into().unwrap(),
    )];
    let (e, msg) = err(&sign(p, ca.issuer()), &[], &[&ca], &[], &o);
    assert!(
        matches!(e, VerifyError::Svid(SvidViolation::InvalidSpiffeId { .. })),
        "{e:?}"
    );
    assert_eq!(msg, "URI SAN spiffe://Mesh.local/service/api is not a valid SPIFFE ID: the trust domain must be lowercase (found 'M')");

    // Without an expected identity the rule still applies to a certificate that carries a
    // SPIFFE ID: a spiffe:// URI next to an https:// one is refused (the services and
    // `mtls-inspect verify` used to accept it).
    let mut p = params("two uris");
    p.subject_alt_names = vec![
        SanType::URI("spiffe://mesh.local/a".try_into().unwrap()),
        SanType::URI("https://example.com/".try_into().unwrap()),
    ];
    let (e, msg) = err(
        &sign(p, ca.issuer()),
        &[],
        &[&ca],
        &[],
        &opts(Purpose::Server),
    );
    assert_eq!(e.code(), "multiple_uri_sans");
    assert_eq!(msg, "certificate has 2 URI SANs [spiffe://mesh.local/a, https://example.com/]; an X509-SVID carries exactly one");
    // Two URIs and no SPIFFE ID: a plain Web PKI certificate, accepted without an identity.
    let mut p = params("plain");
    p.subject_alt_names = vec![
        SanType::URI("https://a.example/".try_into().unwrap()),
        SanType::URI("https://b.example/".try_into().unwrap()),
    ];
    let v = check(
        &sign(p, ca.issuer()),
        &[],
        &[&ca],
        &[],
        &opts(Purpose::Server),
    )
    .unwrap();
    assert!(v.spiffe_id.is_none());
}

fn crl(ca: &CaMaterial, revoked: &[&[u8]], next_update: OffsetDateTime) -> Vec<u8> {
    let entries: Vec<RevokedEntry> = revoked
        .iter()
        .map(|der| RevokedEntry {
            serial_hex: CertInfo::from_der(der).unwrap().serial_hex,
            revoked_at: T0 - Duration::minutes(10),
            reason: Some("keyCompromise".into()),
        })
        .collect();
    sign_crl(ca, &entries, 7, T0 - Duration::minutes(5), next_update).unwrap()
}

#[test]
fn revoked_leaf_names_serial_time_and_reason() {
    let ca = root("Root A");
    let l = leaf(&ca);
    let other = leaf(&ca);
    let list = crl(&ca, &[&l], T0 + Duration::hours(1));
    let (e, msg) = err(
        &l,
        &[],
        &[&ca],
        std::slice::from_ref(&list),
        &opts(Purpose::Server),
    );
    assert!(matches!(e, VerifyError::Revoked { .. }), "{e:?}");
    assert_eq!(
        msg,
        format!(
            "certificate is revoked (serial {}, revoked at 2026-03-01T11:50:00Z, reason keyCompromise)",
            serial_colon(&l)
        )
    );
    let v = check(&other, &[], &[&ca], &[list], &opts(Purpose::Server)).unwrap();
    assert!(v.revocation_checked);
}

#[test]
fn revocation_status_unknown_without_a_crl_from_the_issuer() {
    let a = root("Root A");
    let b = root("Root B");
    let l = leaf(&a);
    let list_b = crl(&b, &[], T0 + Duration::hours(1));
    let (e, msg) = err(
        &l,
        &[],
        &[&a, &b],
        std::slice::from_ref(&list_b),
        &opts(Purpose::Server),
    );
    assert!(matches!(e, VerifyError::RevocationUnknown { .. }), "{e:?}");
    assert_eq!(msg, "revocation status of certificate is unknown: no CRL from its issuer O=mtls-mesh, CN=Root A was given (CRLs from [O=mtls-mesh, CN=Root B])");

    // The policy may allow it.
    let roots = [a.cert_der().clone(), b.cert_der().clone()];
    let store = TrustStore::new(&roots, &[list_b])
        .unwrap()
        .with_revocation_policy(RevocationPolicy {
            allow_unknown_status: true,
            ..RevocationPolicy::default()
        });
    let v = store.verify(&l, &[], &opts(Purpose::Server)).unwrap();
    assert!(!v.revocation_checked);
}

#[test]
fn stale_crl_is_rejected_unless_allowed() {
    let ca = root("Root A");
    let l = leaf(&ca);
    let list = crl(&ca, &[], T0 - Duration::minutes(1));
    let (e, msg) = err(
        &l,
        &[],
        &[&ca],
        std::slice::from_ref(&list),
        &opts(Purpose::Server),
    );
    assert!(matches!(e, VerifyError::CrlExpired { .. }), "{e:?}");
    assert_eq!(msg, "the CRL from O=mtls-mesh, CN=Root A is out of date: nextUpdate was 2026-03-01T11:59:00Z, checked at 2026-03-01T12:00:00Z");
    let store = TrustStore::new(&[ca.cert_der().clone()], &[list])
        .unwrap()
        .with_revocation_policy(RevocationPolicy {
            enforce_next_update: false,
            ..RevocationPolicy::default()
        });
    store.verify(&l, &[], &opts(Purpose::Server)).unwrap();
}

#[test]
fn crl_signed_by_another_key_is_rejected() {
    let ca = root("Root A");
    let impostor = root("Root A");
    let list = crl(&impostor, &[], T0 + Duration::hours(1));
    // Refused when the store is built, before any certificate is looked at.
    let e = TrustStore::new(&[ca.cert_der().clone()], &[list]).unwrap_err();
    assert_eq!(e.code(), "crl_signature");
    assert!(
        e.to_string().starts_with(
            "CRL #1 is refused: the signature on the CRL from O=mtls-mesh, CN=Root A does not \
             verify with an EC P-384 key of the issuer certificate (SHA-256 "
        ),
        "{e}"
    );
    assert!(
        matches!(&e, VerifyError::Crl { error: CrlError::BadSignature { fingerprint, .. }, .. } if *fingerprint == ca.fingerprint()),
        "{e:?}"
    );
}

#[test]
fn chain_revocation_checks_intermediates() {
    let ca = root("Root A");
    let (int_der, int) = intermediate(ca_params("Int", None), ca.issuer());
    let l = sign(params("leaf"), &int);
    let root_crl = crl(&ca, &[&int_der], T0 + Duration::hours(1));
    // The intermediate's own CRL (it has cRLSign) lists nothing.
    let int_crl = {
        let p = rcgen::CertificateRevocationListParams {
            this_update: T0 - Duration::minutes(5),
            next_update: T0 + Duration::hours(1),
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: vec![],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        p.signed_by(&int).unwrap().der().to_vec()
    };
    let roots = [ca.cert_der().clone()];
    let inter = [cd(&int_der)];
    let store = TrustStore::new(&roots, &[root_crl, int_crl])
        .unwrap()
        .with_revocation_policy(RevocationPolicy {
            check_chain: true,
            ..RevocationPolicy::default()
        });
    let e = store
        .verify(&l, &inter, &opts(Purpose::Server))
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("intermediate certificate CN=Int is revoked (serial "),
        "{e}"
    );
}

#[test]
fn malformed_inputs_are_named() {
    let ca = root("Root A");
    let roots = [ca.cert_der().clone()];
    let e = verify_chain(
        b"garbage",
        &[],
        &roots,
        &[] as &[Vec<u8>],
        &opts(Purpose::Any),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot parse the end-entity certificate"),
        "{e}"
    );
    let e = verify_chain(
        &leaf(&ca),
        &[cd(b"\x30\x00")],
        &roots,
        &[] as &[Vec<u8>],
        &opts(Purpose::Any),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot parse the intermediate certificate #1"),
        "{e}"
    );
    let e = TrustStore::new(&[cd(b"\x30\x03\x02\x01\x00")], &[] as &[Vec<u8>]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot parse the root certificate #1"),
        "{e}"
    );
    let e = TrustStore::new(&roots, &[b"junk".to_vec()]).unwrap_err();
    assert!(e.to_string().starts_with("cannot parse the CRL #1"), "{e}");
    let e = TrustStore::new(&[], &[] as &[Vec<u8>]).unwrap_err();
    assert_eq!(e, VerifyError::NoRoots);
    let o = VerifyOptions::new(datetime!(1960-01-01 0:00 UTC), Purpose::Any);
    let e = verify_chain(&leaf(&ca), &[], &roots, &[] as &[Vec<u8>], &o).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the verification time 1960-01-01T00:00:00Z is outside the range the verifier can \
         represent (1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z)"
    );
    assert_eq!(e.code(), "time_out_of_range");
    assert!(check_time(datetime!(1970-01-01 0:00 UTC)).is_ok());
    assert!(check_time(LATEST_TIME).is_ok());
    assert!(check_time(datetime!(0001-01-01 0:00 UTC)).is_err());
}

#[test]
fn expired_root_is_a_warning_not_an_error() {
    // Our CA never issues past its own NotAfter; another CA might.
    let mut rp = ca_params("Old Root", None);
    rp.not_after = T0 - Duration::minutes(1);
    rp.not_before = T0 - Duration::days(10);
    let root_key = keys::generate(Curve::P384).unwrap();
    let root_der = rp.self_signed(&root_key).unwrap().der().clone();
    let issuer = Issuer::new(rp, root_key);
    let l = sign(params("leaf"), &issuer);
    let v = verify_chain(&l, &[], &[root_der], &[] as &[Vec<u8>], &opts(Purpose::Any)).unwrap();
    assert_eq!(
        v.warnings,
        ["root CN=Old Root expired at 2026-03-01T11:59:00Z (webpki and rustls do not check root validity)"]
    );
}

#[test]
fn purpose_parses_and_displays() {
    for p in [Purpose::Server, Purpose::Client, Purpose::Any] {
        assert_eq!(p.to_string().parse::<Purpose>().unwrap(), p);
    }
    assert!("web".parse::<Purpose>().is_err());
    assert_eq!(Purpose::Client.eku_name(), "clientAuth");
}

#[test]
fn signature_check_helper() {
    let ca = root("Root A");
    let other = root("Root A");
    let l = leaf(&ca);
    let spki = |c: &CaMaterial| {
        let (_, x) = X509Certificate::from_der(c.cert_der()).unwrap();
        x.public_key().raw.to_vec()
    };
    assert_eq!(signature_verifies(&l, &spki(&ca)), Some(true));
    assert_eq!(signature_verifies(&l, &spki(&other)), Some(false));
    assert_eq!(signature_verifies(b"x", &spki(&ca)), None);
}

fn strict_store(roots: &[&CaMaterial]) -> TrustStore {
    let roots: Vec<_> = roots.iter().map(|r| r.cert_der().clone()).collect();
    TrustStore::with_options(
        &roots,
        &[] as &[Vec<u8>],
        TrustOptions {
            strict: true,
            ..TrustOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn strict_mode_accepts_what_our_ca_issues() {
    let ca = root("Root A");
    let v = strict_store(&[&ca])
        .verify(&leaf(&ca), &[], &opts(Purpose::Client))
        .unwrap();
    assert_eq!(v.chain.len(), 2);
}

#[test]
fn strict_mode_checks_key_identifiers_san_criticality_and_dns_names() {
    let ca = root("Root A");
    let store = strict_store(&[&ca]);
    let strict_err = |p: CertificateParams| {
        let l = sign(p, ca.issuer());
        // The default (the services' rules) accepts every one of these.
        check(&l, &[], &[&ca], &[], &opts(Purpose::Client)).unwrap();
        store.verify(&l, &[], &opts(Purpose::Client)).unwrap_err()
    };

    // params() makes no authorityKeyIdentifier.
    let e = strict_err(params("no aki"));
    assert_eq!(e.code(), "aki_missing");
    assert_eq!(e.to_string(), "certificate has no authorityKeyIdentifier; RFC 5280 4.2.1.1 requires it on every certificate but a self-signed root");

    let with_aki = |cn: &str| {
        let mut p = params(cn);
        p.use_authority_key_identifier_extension = true;
        p
    };
    let mut p = with_aki("underscore");
    p.subject_alt_names
        .push(SanType::DnsName("my_host.example".try_into().unwrap()));
    let e = strict_err(p);
    assert_eq!(e.code(), "invalid_dns_name");
    assert_eq!(
        e.to_string(),
        "certificate has the DNS SAN \"my_host.example\", which is not a valid host name: the \
         character '_' is not allowed (letters, digits and hyphens only) (RFC 5280 4.2.1.6: the \
         preferred name syntax, letters, digits and hyphens)"
    );

    // A critical SAN next to a non-empty subject (rcgen marks it critical only for an empty
    // subject, so the SAN is written by hand).
    let mut p = with_aki("critical san");
    p.subject_alt_names = vec![];
    let mut san = CustomExtension::from_oid_content(
        &[2, 5, 29, 17],
        // SEQUENCE { [6] "spiffe://mesh.local/service/api" }
        [
            &[0x30, 33, 0x86, 31][..],
            b"spiffe://mesh.local/service/api",
        ]
        .concat(),
    );
    san.set_criticality(true);
    p.custom_extensions = vec![san];
    let e = strict_err(p);
    assert_eq!(e.code(), "san_critical_with_subject");

    // An empty subject with a non-critical SAN.
    let mut p = with_aki("x");
    p.distinguished_name = DistinguishedName::new();
    p.subject_alt_names = vec![];
    p.custom_extensions = vec![CustomExtension::from_oid_content(
        &[2, 5, 29, 17],
        [
            &[0x30, 33, 0x86, 31][..],
            b"spiffe://mesh.local/service/api",
        ]
        .concat(),
    )];
    let e = strict_err(p);
    assert_eq!(e.code(), "san_not_critical_empty_subject");
    assert!(
        e.to_string().contains("RFC 5280 4.1.2.6 and 4.2.1.6"),
        "{e}"
    );
}

#[test]
fn strict_mode_checks_intermediates_and_the_root() {
    let ca = root("Root A");
    // An intermediate without a subjectKeyIdentifier: rcgen writes one for every certificate
    // with basicConstraints, so basicConstraints CA:TRUE is written by hand here.
    let mut ip = ca_params("Int", None);
    ip.use_authority_key_identifier_extension = true;
    ip.is_ca = IsCa::NoCa;
    let mut bc =
        CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0x03, 0x01, 0x01, 0xff]);
    bc.set_criticality(true);
    ip.custom_extensions = vec![bc];
    let (int_der, int) = intermediate(ip, ca.issuer());
    let mut lp = params("leaf");
    lp.use_authority_key_identifier_extension = true;
    let l = sign(lp, &int);
    // Fine for the services' rules; strict mode names the intermediate.
    check(
        &l,
        std::slice::from_ref(&int_der),
        &[&ca],
        &[],
        &opts(Purpose::Client),
    )
    .unwrap();
    let e = strict_store(&[&ca])
        .verify(&l, &[cd(&int_der)], &opts(Purpose::Client))
        .unwrap_err();
    assert_eq!(e.code(), "ski_missing");
    assert_eq!(e.to_string(), "intermediate certificate CN=Int is a CA certificate without subjectKeyIdentifier, which RFC 5280 4.2.1.2 requires");

    // A root past its NotAfter: a warning by default, an error when strict.
    let mut rp = ca_params("Old Root", None);
    rp.not_after = T0 - Duration::minutes(1);
    rp.not_before = T0 - Duration::days(10);
    let root_key = keys::generate(Curve::P384).unwrap();
    let root_der = rp.self_signed(&root_key).unwrap().der().clone();
    let issuer = Issuer::new(rp, root_key);
    let mut lp = params("leaf");
    lp.use_authority_key_identifier_extension = true;
    let l = sign(lp, &issuer);
    let store = TrustStore::with_options(
        std::slice::from_ref(&root_der),
        &[] as &[Vec<u8>],
        TrustOptions {
            strict: true,
            ..TrustOptions::default()
        },
    )
    .unwrap();
    let e = store.verify(&l, &[], &opts(Purpose::Any)).unwrap_err();
    assert_eq!(e.code(), "root_expired");
    assert_eq!(
        e.to_string(),
        "root CN=Old Root expired at 2026-03-01T11:59:00Z, checked at 2026-03-01T12:00:00Z (RFC 5280 4.1.2.5)"
    );

    // A root whose keyUsage lacks keyCertSign.
    let mut rp = ca_params("CRL-only Root", None);
    rp.key_usages = vec![KeyUsagePurpose::CrlSign];
    let root_key = keys::generate(Curve::P384).unwrap();
    let root_der = rp.self_signed(&root_key).unwrap().der().clone();
    let issuer = Issuer::new(rp, root_key);
    let mut lp = params("leaf");
    lp.use_authority_key_identifier_extension = true;
    let l = sign(lp, &issuer);
    let store = TrustStore::with_options(
        std::slice::from_ref(&root_der),
        &[] as &[Vec<u8>],
        TrustOptions {
            strict: true,
            ..TrustOptions::default()
        },
    )
    .unwrap();
    let e = store.verify(&l, &[], &opts(Purpose::Any)).unwrap_err();
    assert_eq!(e.code(), "root_no_key_cert_sign");
}

#[test]
fn the_trust_store_refuses_crls_by_the_strict_rules_when_built() {
    // A root without cRLSign signs a CRL: refused although the root is a trust anchor.
    let mut rp = ca_params("No CRL Sign", None);
    rp.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let root_key = keys::generate(Curve::P384).unwrap();
    let root_der = rp.self_signed(&root_key).unwrap().der().clone();
    let name = X509Certificate::from_der(&root_der)
        .unwrap()
        .1
        .subject()
        .as_raw()
        .to_vec();
    let list = crate::test_der::crl(&crate::test_der::CrlSpec::ours(), &name, &root_key);
    let e = TrustStore::new(std::slice::from_ref(&root_der), &[list]).unwrap_err();
    assert_eq!(e.code(), "crl_issuer_not_signer");
    assert_eq!(e.to_string(), "CRL #1 is refused: the CRL issuer CN=No CRL Sign lacks cRLSign in its keyUsage (it has [keyCertSign]); only a certificate with cRLSign may sign CRLs (RFC 5280 4.2.1.3)");

    // A CRL without a CRL Number, from a good root.
    let ca = root("Root A");
    let ca_name = X509Certificate::from_der(ca.cert_der())
        .unwrap()
        .1
        .subject()
        .as_raw()
        .to_vec();
    let ca_key = rcgen::KeyPair::from_pem(&ca.key_pem().unwrap()).unwrap();
    let list = crate::test_der::crl(
        &crate::test_der::CrlSpec::ours().without_extensions(),
        &ca_name,
        &ca_key,
    );
    let e = TrustStore::new(&[ca.cert_der().clone()], &[list]).unwrap_err();
    assert_eq!(e.code(), "crl_no_number");
    assert!(
        e.to_string().starts_with(
            "CRL #1 is refused: the CRL from O=mtls-mesh, CN=Root A has no CRL Number extension"
        ),
        "{e}"
    );

    // Junk is a parse error, not a refusal.
    let e = TrustStore::new(&[ca.cert_der().clone()], &[b"junk".to_vec()]).unwrap_err();
    assert_eq!(e.code(), "malformed");
}

#[test]
fn an_intermediate_crl_is_checked_against_the_presented_intermediate() {
    let ca = root("Root A");
    // An intermediate without a keyUsage extension signs a CRL. webpki would accept it (it
    // checks cRLSign only when keyUsage is present); the strict rule refuses it.
    let mut ip = ca_params("Int", None);
    ip.key_usages = vec![];
    let (int_der, int_key) = {
        let key = keys::generate(Curve::P384).unwrap();
        let der = ip
            .clone()
            .signed_by(&key, ca.issuer())
            .unwrap()
            .der()
            .to_vec();
        (der, key)
    };
    let int = Issuer::new(ip, int_key);
    let l = sign(params("leaf"), &int);
    let int_name = X509Certificate::from_der(&int_der)
        .unwrap()
        .1
        .subject()
        .as_raw()
        .to_vec();
    let list = crate::test_der::crl(&crate::test_der::CrlSpec::ours(), &int_name, int.key());
    // Building the store works: the intermediate is not known yet.
    let store = TrustStore::new(&[ca.cert_der().clone()], &[list]).unwrap();
    let e = store
        .verify(&l, &[cd(&int_der)], &opts(Purpose::Client))
        .unwrap_err();
    assert_eq!(e.code(), "crl_issuer_no_key_usage");
    assert!(
        e.to_string()
            .starts_with("CRL #1 is refused: the CRL issuer CN=Int has no keyUsage extension"),
        "{e}"
    );
}

#[test]
fn the_algorithm_policy_names_the_link_and_the_policy() {
    let ca = root("Root A");
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let rp = ca_params("RSA Int", None);
    let int_der = rp
        .clone()
        .signed_by(&key, ca.issuer())
        .unwrap()
        .der()
        .to_vec();
    let int = Issuer::new(rp, key);
    let l = sign(params("leaf"), &int);
    let (e, msg) = err(
        &l,
        std::slice::from_ref(&int_der),
        &[&ca],
        &[],
        &opts(Purpose::Client),
    );
    assert_eq!(e.code(), "algorithm_not_allowed");
    assert_eq!(msg, "CN=leaf is signed with sha256WithRSAEncryption by an RSA 2048-bit key, which the ecdsa algorithm policy does not allow (it accepts ECDSA on P-256, P-384 or P-521 with SHA-256/384 (and SHA-512 on P-521))");
    let web = TrustStore::with_options(
        &[ca.cert_der().clone()],
        &[] as &[Vec<u8>],
        TrustOptions {
            algorithms: AlgorithmPolicy::WebPki,
            ..TrustOptions::default()
        },
    )
    .unwrap();
    web.verify(&l, &[cd(&int_der)], &opts(Purpose::Client))
        .unwrap();
}
