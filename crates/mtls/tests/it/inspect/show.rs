//! `show`: values agree with `openssl x509` on certificates from our CA, from OpenSSL itself,
//! on other curves and RSA; inputs in every form (PEM, DER, bundles, stdin, CSR, CRL).

#![allow(clippy::unwrap_used)]

use super::common;

use std::collections::BTreeSet;
use std::path::Path;

use super::common::{json, openssl, run_in, run_stdin, Pki};
use pki::Curve;
use serde_json::Value;
use time::Duration;

/// What `openssl x509` says about a certificate.
struct OpensslFacts {
    serial: String,
    not_before: String,
    not_after: String,
    fingerprint: String,
    subject: String,
    issuer: String,
    sans: BTreeSet<String>,
    key_bits: Option<u64>,
    curve: Option<String>,
    signature: String,
    ski: Option<String>,
    aki: Option<String>,
}

fn ext_value(dir: &Path, file: &str, ext: &str) -> Option<String> {
    let out = openssl(dir, &["x509", "-in", file, "-noout", "-ext", ext]);
    let mut lines = out.lines();
    lines.next()?;
    Some(lines.map(str::trim).collect::<Vec<_>>().join(" "))
}

fn openssl_facts(dir: &Path, file: &str) -> OpensslFacts {
    let line = |args: &[&str], prefix: &str| -> String {
        let mut full = vec!["x509", "-in", file, "-noout"];
        full.extend_from_slice(args);
        let out = openssl(dir, &full);
        out.trim()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{out}"))
            .to_string()
    };
    let iso = |s: String| s.replacen(' ', "T", 1);
    let text = openssl(dir, &["x509", "-in", file, "-noout", "-text"]);
    let key_bits = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Public-Key: ("))
        .map(|rest| rest.trim_end_matches(" bit)").parse().unwrap());
    let curve = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ASN1 OID: "))
        .map(str::to_string);
    let signature = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Signature Algorithm: "))
        .unwrap()
        .to_string();
    // OpenSSL 3.0 writes IPv6 uncompressed (0:0:0:0:0:0:0:1); we write RFC 5952 (::1).
    let normalise = |san: &str| match san.strip_prefix("IP Address:") {
        Some(ip) => format!("IP Address:{}", ip.parse::<std::net::IpAddr>().unwrap()),
        None => san.to_string(),
    };
    let sans = ext_value(dir, file, "subjectAltName")
        .map(|v| v.split(", ").map(normalise).collect())
        .unwrap_or_default();
    OpensslFacts {
        serial: line(&["-serial"], "serial="),
        not_before: iso(line(&["-startdate", "-dateopt", "iso_8601"], "notBefore=")),
        not_after: iso(line(&["-enddate", "-dateopt", "iso_8601"], "notAfter=")),
        fingerprint: line(&["-fingerprint", "-sha256"], "sha256 Fingerprint="),
        subject: line(&["-subject"], "subject=").replace(" = ", "="),
        issuer: line(&["-issuer"], "issuer=").replace(" = ", "="),
        sans,
        key_bits,
        curve,
        signature,
        ski: ext_value(dir, file, "subjectKeyIdentifier"),
        aki: ext_value(dir, file, "authorityKeyIdentifier"),
    }
}

/// Checks `show --format json` against OpenSSL for FILE in DIR; returns our JSON object.
fn agrees_with_openssl(dir: &Path, file: &str) -> Value {
    let r = run_in(dir, &["show", "--format", "json", file]);
    assert_eq!(r.code, 0, "{file}: {}", r.stderr);
    let doc = json(&r);
    assert_eq!(doc["schema"], "mtls-inspect.show/v1");
    let c = doc["objects"][0].clone();
    assert_eq!(c["kind"], "certificate");
    let o = openssl_facts(dir, file);
    assert_eq!(
        c["serial_hex"].as_str().unwrap().to_uppercase(),
        o.serial,
        "{file} serial"
    );
    assert_eq!(
        c["validity"]["not_before"],
        o.not_before.as_str(),
        "{file} notBefore"
    );
    assert_eq!(
        c["validity"]["not_after"],
        o.not_after.as_str(),
        "{file} notAfter"
    );
    assert_eq!(
        c["fingerprint_sha256"],
        o.fingerprint.as_str(),
        "{file} fingerprint"
    );
    assert_eq!(c["subject"], o.subject.as_str(), "{file} subject");
    assert_eq!(c["issuer"], o.issuer.as_str(), "{file} issuer");
    let mut ours = BTreeSet::new();
    for (kind, prefix) in [
        ("dns", "DNS:"),
        ("ip", "IP Address:"),
        ("uri", "URI:"),
        ("email", "email:"),
    ] {
        for v in c["sans"][kind].as_array().unwrap() {
            ours.insert(format!("{prefix}{}", v.as_str().unwrap()));
        }
    }
    assert_eq!(ours, o.sans, "{file} SANs");
    // OpenSSL prints no size for Ed25519 ("ED25519 Public-Key:").
    if o.key_bits.is_some() {
        assert_eq!(
            c["public_key"]["bits"].as_u64(),
            o.key_bits,
            "{file} key size"
        );
    }
    assert_eq!(
        c["public_key"]["curve_openssl"]
            .as_str()
            .map(str::to_string),
        o.curve,
        "{file} curve"
    );
    assert_eq!(
        c["signature_algorithm"]["name"],
        o.signature.as_str(),
        "{file} signature"
    );
    assert_eq!(
        c["subject_key_id"].as_str().map(str::to_string),
        o.ski,
        "{file} SKI"
    );
    assert_eq!(
        c["authority_key_id"].as_str().map(str::to_string),
        o.aki.map(|a| a.trim_start_matches("keyid:").to_string()),
        "{file} AKI"
    );
    c
}

#[test]
fn our_ca_certificates_agree_with_openssl_on_every_curve() {
    let now = common::now();
    let pki = Pki::new(now);
    let dir = pki.dir.path();
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
        let c = agrees_with_openssl(dir, name);
        assert_eq!(c["spiffe_id"], "spiffe://mesh.local/service/api");
        assert_eq!(c["public_key"]["curve"], curve.name());
        assert_eq!(c["basic_constraints"]["ca"], false);
        assert_eq!(c["basic_constraints"]["critical"], true);
        assert_eq!(c["key_usage"]["critical"], true);
        assert_eq!(
            c["key_usage"]["usages"],
            serde_json::json!(["digitalSignature"])
        );
        assert_eq!(
            c["extended_key_usage"]["usages"],
            serde_json::json!(["serverAuth", "clientAuth"])
        );
        assert_eq!(c["serial_bits"], 159);
        assert_eq!(c["validity"]["status"], "valid");
    }
    let c = agrees_with_openssl(dir, "root.pem");
    assert_eq!(c["self_issued"], true);
    assert_eq!(c["basic_constraints"]["path_len"], 0);
}

#[test]
fn client_key_matches_the_pki_library() {
    let now = common::now();
    let pki = Pki::new(now);
    let der = pki.leaf(
        "leaf.pem",
        "spiffe://mesh.local/a",
        Curve::P384,
        now,
        Duration::hours(1),
    );
    let r = run_in(pki.dir.path(), &["show", "--format", "json", "leaf.pem"]);
    let c = &json(&r)["objects"][0];
    assert_eq!(c["client_key"], pki::client_key(&der).unwrap().as_str());
}

#[test]
fn openssl_made_certificates_agree_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An OpenSSL CA and a leaf with every SAN type, on P-256 with SHA-256.
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
            "/C=DE/O=Example Org/OU=PKI/CN=Example CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(d.join("leaf.ext"),
        "subjectAltName=DNS:a.example,DNS:*.b.example,IP:10.1.2.3,IP:::1,URI:spiffe://example.org/ns/x,email:ops@example.org\n\
         crlDistributionPoints=URI:http://crl.example/ca.crl\n").unwrap();
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
            "/CN=a.example",
            "-out",
            "leaf.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "7",
            "-extfile", "leaf.ext", "-out", "leaf.pem",
        ],
    );
    let c = agrees_with_openssl(d, "leaf.pem");
    assert_eq!(
        c["crl_distribution_points"],
        serde_json::json!(["http://crl.example/ca.crl"])
    );
    assert_eq!(c["sans"]["ip"], serde_json::json!(["10.1.2.3", "::1"]));
    agrees_with_openssl(d, "ca.pem");

    // RSA of two sizes, P-521, secp256k1 and Ed25519, all self-signed by OpenSSL.
    let keys: [(&str, &[&str]); 5] = [
        ("rsa2048.pem", &["-newkey", "rsa:2048"]),
        ("rsa3072.pem", &["-newkey", "rsa:3072"]),
        (
            "p521.pem",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
        ),
        (
            "k256.pem",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
        ),
        ("ed25519.pem", &["-newkey", "ed25519"]),
    ];
    for (name, key) in keys {
        let mut args = vec![
            "req",
            "-x509",
            "-nodes",
            "-keyout",
            "k.key",
            "-subj",
            "/CN=other",
            "-days",
            "2",
            "-addext",
            "subjectAltName=DNS:other.example",
            "-out",
            name,
        ];
        args.extend_from_slice(key);
        openssl(d, &args);
        let c = agrees_with_openssl(d, name);
        let described = c["public_key"]["algorithm"].as_str().unwrap();
        match name {
            "rsa2048.pem" | "rsa3072.pem" => assert_eq!(described, "RSA"),
            "ed25519.pem" => assert_eq!(described, "Ed25519"),
            _ => assert_eq!(described, "EC"),
        }
    }
    let r = run_in(d, &["show", "ed25519.pem"]);
    assert!(
        r.stdout.contains("Public key:          Ed25519"),
        "{}",
        r.stdout
    );
    let r = run_in(d, &["show", "rsa2048.pem"]);
    assert!(
        r.stdout.contains("Public key:          RSA 2048 bits"),
        "{}",
        r.stdout
    );
}

#[test]
fn pem_der_stdin_and_bundles() {
    let data = common::data_dir();
    let pem = std::fs::read(data.join("leaf.pem")).unwrap();
    let der = std::fs::read(data.join("leaf.der")).unwrap();
    let from_pem = json(&run_stdin(&["show", "--format", "json", "-"], &pem));
    let from_der = json(&run_stdin(&["show", "--format", "json", "-"], &der));
    assert_eq!(
        from_pem["objects"][0]["fingerprint_sha256"],
        from_der["objects"][0]["fingerprint_sha256"]
    );
    assert_eq!(from_der["objects"][0]["origin"]["file"], "-");
    // The JSON carries the PEM, identical to the file.
    assert_eq!(
        from_der["objects"][0]["pem"].as_str().unwrap().as_bytes(),
        &pem[..]
    );

    // --format pem turns DER into PEM.
    let r = run_stdin(&["show", "--format", "pem", "-"], &der);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout.as_bytes(), &pem[..]);

    // A bundle: every certificate, in order.
    let r = run_in(&data, &["show", "--short", "bundle.pem"]);
    let lines: Vec<_> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(lines[0].starts_with(
        "bundle.pem#1: certificate | O=mtls-mesh, CN=spiffe://mesh.local/service/api"
    ));
    assert!(lines[1].starts_with("bundle.pem#2: certificate | O=mtls-mesh, CN=Fixture Root A"));
}

#[test]
fn csrs_and_crls_are_detected_in_pem_and_der() {
    let data = common::data_dir();
    let r = run_in(
        &data,
        &["show", "--format", "json", "csr.pem", "crl.pem", "crl.der"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = json(&r);
    let kinds: Vec<_> = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["csr", "crl", "crl"]);
    let csr = &doc["objects"][0];
    assert_eq!(csr["signature_valid"], true);
    assert_eq!(csr["spiffe_id"], "spiffe://mesh.local/service/api");
    assert_eq!(csr["public_key"]["curve"], "P-384");
    assert_eq!(csr["sans"]["dns"], serde_json::json!(["api.mesh.local"]));
    let crl = &doc["objects"][1];
    assert_eq!(crl["revoked"].as_array().unwrap().len(), 1);
    assert_eq!(crl["revoked"][0]["reason"], "keyCompromise");
    assert_eq!(crl["crl_number"], "1");

    // The revoked serial is the one of revoked.pem, as OpenSSL prints both.
    let serial = openssl(&data, &["x509", "-in", "revoked.pem", "-noout", "-serial"]);
    assert_eq!(
        format!(
            "serial={}\n",
            crl["revoked"][0]["serial_hex"]
                .as_str()
                .unwrap()
                .to_uppercase()
        ),
        serial
    );
    let crl_text = openssl(&data, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(crl_text.contains(
        &crl["revoked"][0]["serial_hex"]
            .as_str()
            .unwrap()
            .to_uppercase()
    ));

    // A tampered CSR signature is reported, not hidden.
    let pem = std::fs::read_to_string(data.join("csr.pem")).unwrap();
    let mut der = pki::pem::parse_single(pem.as_bytes(), "CERTIFICATE REQUEST").unwrap();
    let n = der.len();
    der[n - 2] ^= 0x01;
    let r = run_stdin(&["show", "--format", "json", "-"], &der);
    assert_eq!(json(&r)["objects"][0]["signature_valid"], false);
}

#[test]
fn private_keys_are_skipped_and_never_printed() {
    let now = common::now();
    let pki = Pki::new(now);
    pki.leaf(
        "leaf.pem",
        "spiffe://mesh.local/a",
        Curve::P256,
        now,
        Duration::hours(1),
    );
    let mut both = std::fs::read_to_string(pki.path("leaf.pem.key")).unwrap();
    both.push_str(&std::fs::read_to_string(pki.path("leaf.pem")).unwrap());
    pki.write("both.pem", &both);
    let r = run_in(pki.dir.path(), &["show", "both.pem"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("skipped the PRIVATE KEY block at line 1: private keys are never shown"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("PRIVATE"), "{}", r.stdout);
    let r = run_in(pki.dir.path(), &["show", "--format", "json", "both.pem"]);
    assert!(!r.stdout.contains("PRIVATE KEY-----"));
    assert_eq!(json(&r)["notes"].as_array().unwrap().len(), 1);

    // A file with only a key is an error that says what was found.
    let r = run_in(pki.dir.path(), &["show", "leaf.pem.key"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no CERTIFICATE, CERTIFICATE REQUEST or X509 CRL block found (skipped the PRIVATE KEY block"), "{}", r.stderr);
}

#[test]
fn relative_times_and_lifetime_percentage() {
    let data = common::data_dir();
    let at = |t: &str| {
        let r = run_in(&data, &["show", "--format", "json", "--at", t, "leaf.pem"]);
        json(&r)["objects"][0]["validity"].clone()
    };
    let v = at("2026-01-01T00:00:01Z");
    assert_eq!(v["relative"], "expires in 59m 59s");
    assert_eq!(v["status"], "valid");
    let v = at("2026-01-01T04:00:00Z");
    assert_eq!(v["relative"], "expired 3h ago");
    assert_eq!(v["status"], "expired");
    assert_eq!(v["lifetime_used_percent"], 100.0);
    assert_eq!(v["seconds_remaining"], -3 * 3600);
    let v = at("2025-12-31T22:00:00Z");
    assert_eq!(v["status"], "not_yet_valid");
    // NotBefore is 23:59:30, so 30m 30s of 1h 30s have elapsed at 00:30.
    let v = at("2026-01-01T00:30:00Z");
    assert_eq!(v["lifetime_used_percent"], 50.41);
}

#[test]
fn several_files_show_the_good_ones_and_exit_2_for_the_bad() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::data_dir().join("leaf.pem"),
        dir.path().join("leaf.pem"),
    )
    .unwrap();
    std::fs::write(dir.path().join("empty.pem"), b"").unwrap();
    let r = run_in(
        dir.path(),
        &["show", "--short", "leaf.pem", "empty.pem", "missing.pem"],
    );
    assert_eq!(r.code, 2);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("error: empty.pem: the input is empty"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("error: cannot read missing.pem"),
        "{}",
        r.stderr
    );
    let r = run_in(
        dir.path(),
        &["show", "--format", "json", "leaf.pem", "empty.pem"],
    );
    assert_eq!(r.code, 2);
    let doc = json(&r);
    assert_eq!(doc["objects"].as_array().unwrap().len(), 1);
    assert_eq!(doc["errors"][0]["file"], "empty.pem");
}
