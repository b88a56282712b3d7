//! `lint`: our CA's certificates are clean; every rule fires on a certificate that breaks it;
//! exit 1 only for error-level findings; rule ids are the documented, stable ones.

#![allow(clippy::unwrap_used)]

use super::common;

use std::collections::BTreeSet;

use super::common::{json, openssl, run_in, Pki};
use pki::Curve;
use serde_json::Value;
use time::Duration;

fn rules_of(doc: &Value, report: usize) -> BTreeSet<String> {
    doc["reports"][report]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn certificates_from_our_ca_are_clean() {
    let now = common::now();
    let pki = Pki::new(now);
    for (name, curve) in [
        ("p256.pem", Curve::P256),
        ("p384.pem", Curve::P384),
        ("p521.pem", Curve::P521),
    ] {
        pki.leaf(
            name,
            "spiffe://mesh.local/service/api",
            curve,
            now,
            Duration::hours(1),
        );
    }
    let r = run_in(
        pki.dir.path(),
        &[
            "lint",
            "--trust-domain",
            "mesh.local",
            "p256.pem",
            "p384.pem",
            "p521.pem",
            "root.pem",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout.matches("ok: no findings").count(),
        4,
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.ends_with("4 certificates: 0 errors, 0 warnings\n"),
        "{}",
        r.stdout
    );
    // The leaves are checked against the leaf profile, the root against the CA profile.
    assert!(
        r.stdout.contains("CN=Test Root (ca profile)"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_bad_leaf_trips_each_rule_it_breaks() {
    let r = run_in(
        &common::data_dir(),
        &[
            "lint", "--format", "json", "--issuer", "root.pem", "bad.pem",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = json(&r);
    assert_eq!(doc["schema"], "mtls-inspect.lint/v1");
    assert_eq!(doc["reports"][0]["profile"], "leaf");
    assert_eq!(
        rules_of(&doc, 0),
        set(&[
            "x509-serial-entropy-minimum",
            "svid-key-usage-critical",
            "svid-uri-san-count",
            "svid-leaf-no-cert-sign",
            "svid-leaf-eku-tls",
            "mesh-signature-algorithm",
            "svid-leaf-basic-constraints",
            "mesh-leaf-eku-extra",
            "mesh-lifetime",
        ])
    );
    assert_eq!(doc["summary"]["errors"], 6);
    assert_eq!(doc["summary"]["warnings"], 3);
    for f in doc["reports"][0]["findings"].as_array().unwrap() {
        assert!(!f["fix"].as_str().unwrap().is_empty());
        assert!(["error", "warning", "info"].contains(&f["severity"].as_str().unwrap()));
    }
    // Without the issuer the SHA-256 signature of a P-384 CA cannot be judged.
    let r = run_in(
        &common::data_dir(),
        &["lint", "--format", "json", "bad.pem"],
    );
    assert!(!rules_of(&json(&r), 0).contains("mesh-signature-algorithm"));
}

#[test]
fn rsa_is_displayed_but_flagged() {
    let r = run_in(&common::data_dir(), &["lint", "rsa.pem"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("error   mesh-ecdsa-key: the key is RSA 2048 bits"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "mesh-signature-algorithm: the certificate is signed with sha256WithRSAEncryption"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn warnings_alone_exit_0_and_thresholds_are_configurable() {
    let now = common::now();
    let pki = Pki::new(now);
    pki.leaf(
        "leaf.pem",
        "spiffe://mesh.local/a",
        Curve::P384,
        now,
        Duration::hours(1),
    );
    let r = run_in(
        pki.dir.path(),
        &["lint", "--max-lifetime", "30m", "leaf.pem"],
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("warning mesh-lifetime: the lifetime is 1h, above the 30m threshold"),
        "{}",
        r.stdout
    );
    let r = run_in(
        pki.dir.path(),
        &["lint", "--trust-domain", "other.local", "leaf.pem"],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains(
            "svid-trust-domain: spiffe://mesh.local/a is not in trust domain other.local"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn openssl_corner_cases() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A P-256 CA (the policy wants P-384) with an empty-subject leaf whose SAN is not critical.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-subj",
            "/CN=Small CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,cRLSign",
            "-addext",
            "subjectAltName=URI:spiffe://mesh.local/ca",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(
        d.join("leaf.ext"),
        "keyUsage=critical,keyEncipherment\nsubjectAltName=URI:spiffe://mesh.local/x?y=1\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-subj",
            "/",
            "-out",
            "leaf.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "1",
            "-extfile", "leaf.ext", "-out", "leaf.pem",
        ],
    );
    let r = run_in(d, &["lint", "--format", "json", "ca.pem", "leaf.pem"]);
    assert_eq!(r.code, 1);
    let doc = json(&r);
    assert_eq!(doc["reports"][0]["profile"], "ca");
    let ca = rules_of(&doc, 0);
    assert!(ca.contains("mesh-ca-key-p384"), "{ca:?}");
    assert!(ca.contains("svid-ca-key-cert-sign"), "{ca:?}");
    assert!(ca.contains("svid-ca-uri-san"), "{ca:?}");
    let leaf = rules_of(&doc, 1);
    for rule in [
        "x509-san-critical-empty-subject",
        "svid-spiffe-id-syntax",
        "svid-leaf-digital-signature",
        "svid-leaf-eku-present",
    ] {
        assert!(leaf.contains(rule), "{rule} missing from {leaf:?}");
    }

    // A workload certificate wrongly marked CA:TRUE is linted as a leaf and flagged.
    std::fs::write(
        d.join("caleaf.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature\n\
        extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:spiffe://mesh.local/service/x\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-days",
            "1",
            "-extfile",
            "caleaf.ext",
            "-out",
            "caleaf.pem",
        ],
    );
    let doc = json(&run_in(d, &["lint", "--format", "json", "caleaf.pem"]));
    assert_eq!(doc["reports"][0]["profile"], "leaf");
    assert!(rules_of(&doc, 0).contains("svid-leaf-ca-false"), "{doc}");
}

#[test]
fn profiles_can_be_forced() {
    let r = run_in(
        &common::data_dir(),
        &["lint", "--format", "json", "--profile", "ca", "leaf.pem"],
    );
    assert_eq!(r.code, 1);
    let doc = json(&r);
    assert_eq!(doc["reports"][0]["profile"], "ca");
    let rules = rules_of(&doc, 0);
    assert!(
        rules.contains("svid-ca-true") && rules.contains("svid-ca-key-cert-sign"),
        "{rules:?}"
    );
    let r = run_in(
        &common::data_dir(),
        &["lint", "--format", "json", "--profile", "leaf", "root.pem"],
    );
    assert!(rules_of(&json(&r), 0).contains("svid-leaf-ca-false"));
}

#[test]
fn rules_are_listed_with_stable_ids() {
    let r = common::run(&["lint", "--list-rules", "--format", "json"]);
    assert_eq!(r.code, 0);
    let doc = json(&r);
    let ids: Vec<&str> = doc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.len() >= 20);
    let unique: BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate rule ids");
    // Every id is documented in docs/cli.md.
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md")).unwrap();
    for id in &ids {
        assert!(
            docs.contains(&format!("`{id}`")),
            "rule {id} is not documented in docs/cli.md"
        );
    }
    let r = common::run(&["lint", "--list-rules"]);
    assert!(r.stdout.contains("svid-uri-san-count"));
}

#[test]
fn inputs_other_than_certificates() {
    let r = run_in(&common::data_dir(), &["lint", "csr.pem", "leaf.pem"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr.contains(
            "note: csr.pem: object #1 is a certificate request; lint checks certificates only"
        ),
        "{}",
        r.stderr
    );
    let r = run_in(&common::data_dir(), &["lint", "missing.pem"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot read missing.pem"), "{}", r.stderr);
    let r = common::run(&["lint"]);
    assert_eq!(r.code, 2);
}

/// A CA like ours (P-384, CA:TRUE, keyCertSign + cRLSign critical, SKI) with the URI SANs given.
fn ca_with_uris(dir: &std::path::Path, name: &str, uris: &[&str]) {
    let key = pki::keys::generate(Curve::P384).unwrap();
    let mut p = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, name);
    p.distinguished_name = dn;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(
        &pki::serial::random_serial().unwrap(),
    ));
    p.not_before = common::now() - Duration::hours(1);
    p.not_after = common::now() + Duration::days(30);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    p.subject_alt_names = uris
        .iter()
        .map(|u| rcgen::SanType::URI((*u).try_into().unwrap()))
        .collect();
    let cert = p.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
}

#[test]
fn a_signing_certificate_id_with_a_path_and_extra_uris_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca_with_uris(d, "td", &["spiffe://mesh.local"]);
    ca_with_uris(d, "path", &["spiffe://mesh.local/ca"]);
    ca_with_uris(d, "two", &["spiffe://mesh.local", "https://example.com/"]);
    let r = run_in(d, &["lint", "td.pem"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("ok: no findings"), "{}", r.stdout);

    let r = run_in(d, &["lint", "path.pem"]);
    assert_eq!(
        r.code, 1,
        "X509-SVID: a signing certificate's ID MUST NOT have a path"
    );
    assert!(
        r.stdout.contains(
            "error   svid-ca-uri-san: signing certificate carries the SPIFFE ID \
             spiffe://mesh.local/ca, which has a path; a signing certificate's SPIFFE ID must \
             be the trust domain alone (spiffe://mesh.local)"
        ),
        "{}",
        r.stdout
    );
    let doc = json(&run_in(d, &["lint", "--format", "json", "two.pem"]));
    assert_eq!(rules_of(&doc, 0), set(&["svid-uri-san-count"]));
    assert_eq!(doc["reports"][0]["findings"][0]["severity"], "error");
}

#[test]
fn rfc_5280_rules_shared_with_verify_strict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A CA without subjectKeyIdentifier, and a leaf with an underscore in a DNS name and a
    // critical subjectAltName next to a subject.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "ca.key",
            "-subj",
            "/CN=No SKI",
            "-days",
            "30",
            "-sha384",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=none",
            "-addext",
            "authorityKeyIdentifier=none",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(
        d.join("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth,clientAuth\n\
         subjectAltName=critical,URI:spiffe://mesh.local/x,DNS:my_host.example\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-subj",
            "/CN=leaf",
            "-out",
            "leaf.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "1",
            "-sha384", "-extfile", "leaf.ext", "-out", "leaf.pem",
        ],
    );
    let doc = json(&run_in(
        d,
        &["lint", "--format", "json", "ca.pem", "leaf.pem"],
    ));
    assert!(rules_of(&doc, 0).contains("x509-subject-key-id"), "{doc}");
    let leaf = rules_of(&doc, 1);
    for rule in ["x509-dns-name-syntax", "x509-san-noncritical-with-subject"] {
        assert!(leaf.contains(rule), "{rule} missing from {leaf:?}");
    }
    // verify --strict names the first of the same problems (the default accepts the leaf).
    let r = run_in(d, &["verify", "leaf.pem", "--roots", "ca.pem"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let r = run_in(
        d,
        &[
            "verify", "leaf.pem", "--roots", "ca.pem", "--strict", "--format", "json",
        ],
    );
    assert_eq!(json(&r)["error"]["code"], "san_critical_with_subject");
}
