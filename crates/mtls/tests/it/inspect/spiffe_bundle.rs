//! SPIFFE bundles (JWK sets) through `mtls-inspect`: the bundle a real mtls-ca serves at
//! `GET /api/v1/bundle/spiffe` is shown (every key, the root's certificate summary and
//! fingerprint as OpenSSL computes it, the JWT key's kid and thumbprint) with no finding and
//! serves as `verify --roots`; the same bundle doctored in each way the lint rules name is
//! shown and linted with the rule ids, and refused as roots when federation would refuse it.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use super::common::{self, openssl, run_in};
use crate::programs;

/// The bundle of a freshly started CA, as curl fetches it; the CA stays up while `f` runs.
fn with_served_bundle(f: impl FnOnce(&Path, &Value)) {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let ca = programs::start_ca("ca", &ca_dir, "127.0.0.1:0", &[]);
    let bundle_file = dir.path().join("bundle.json");
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
        .arg(ca_dir.join("root.crt"))
        .arg("-o")
        .arg(&bundle_file)
        .arg(format!("{}/api/v1/bundle/spiffe", ca.url()))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl: {out:?}");
    std::fs::copy(ca_dir.join("root.crt"), dir.path().join("root.crt")).unwrap();
    let root = pki::CaMaterial::load(
        &std::fs::read(ca_dir.join("root.crt")).unwrap(),
        &std::fs::read(ca_dir.join("root.key")).unwrap(),
    )
    .unwrap();
    let leaf = testkit::TestCa { ca: root }.client("spiffe://mesh.local/service/api");
    std::fs::write(dir.path().join("leaf.pem"), &leaf.cert_pem).unwrap();
    let bundle: Value = serde_json::from_slice(&std::fs::read(&bundle_file).unwrap()).unwrap();
    f(dir.path(), &bundle);
    drop(ca);
}

fn write_json(dir: &Path, name: &str, value: &Value) {
    std::fs::write(dir.join(name), value.to_string()).unwrap();
}

#[test]
fn the_bundle_a_ca_serves_is_explained_and_trusted() {
    with_served_bundle(|dir, bundle| {
        let fingerprint = openssl(
            dir,
            &[
                "x509",
                "-in",
                "root.crt",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        );
        let fingerprint = fingerprint.trim().rsplit('=').next().unwrap().to_string();
        let subject = openssl(dir, &["x509", "-in", "root.crt", "-noout", "-subject"]);
        let kid = bundle["keys"][1]["kid"].as_str().unwrap().to_string();
        let sequence = bundle["spiffe_sequence"].as_u64().unwrap();

        let r = run_in(dir, &["show", "bundle.json"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let text = &r.stdout;
        assert!(text.starts_with("SPIFFE bundle bundle.json #1\n"), "{text}");
        assert!(
            text.contains(&format!("  Sequence:            {sequence}\n")),
            "{text}"
        );
        assert!(
            text.contains("  Refresh hint:        300 s (5m)\n"),
            "{text}"
        );
        assert!(text.contains("  X.509 authorities:   1\n"), "{text}");
        assert!(
            text.contains("#1:                x509-svid, EC P-384"),
            "{text}"
        );
        assert!(
            text.contains(&format!("#2:                jwt-svid, EC P-384, kid {kid}")),
            "{text}"
        );
        // The JWT key's kid is its RFC 7638 thumbprint (docs/ca-api.md).
        assert!(
            text.contains(&format!("Thumbprint:      {kid} (RFC 7638, SHA-256)")),
            "{text}"
        );
        assert!(text.contains("root CA (self-signed)"), "{text}");
        assert!(
            text.contains(&format!("SHA-256 fingerprint: {fingerprint}")),
            "{text}"
        );
        assert!(text.contains("  Findings:            none\n"), "{text}");

        let r = run_in(dir, &["show", "--format", "json", "bundle.json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let doc = common::json(&r);
        let obj = &doc["objects"][0];
        assert_eq!(obj["kind"], "spiffe_bundle");
        assert_eq!(obj["sequence"], sequence);
        assert_eq!(obj["refresh_hint_seconds"], 300);
        assert_eq!(obj["findings"], json!([]));
        let cert = &obj["keys"][0]["certificates"][0];
        assert_eq!(cert["fingerprint_sha256"], fingerprint.as_str());
        assert!(
            subject.contains(
                cert["subject"]
                    .as_str()
                    .unwrap()
                    .rsplit("CN=")
                    .next()
                    .unwrap()
            ),
            "{subject} vs {cert}"
        );
        assert_eq!(obj["keys"][1]["use"], "jwt-svid");
        assert_eq!(obj["keys"][1]["thumbprint"], kid.as_str());

        // --format pem turns the bundle into the PEM roots file it stands for.
        let r = run_in(dir, &["show", "--format", "pem", "bundle.json"]);
        assert_eq!(r.code, 0);
        assert_eq!(
            r.stdout,
            std::fs::read_to_string(dir.join("root.crt")).unwrap()
        );

        let r = run_in(dir, &["show", "--short", "bundle.json"]);
        assert_eq!(
            r.stdout,
            format!(
                "bundle.json#1: SPIFFE bundle | sequence {sequence} | refresh hint 5m | \
                 1 x509-svid, 1 jwt-svid, 0 other | 0 findings\n"
            )
        );

        let r = run_in(dir, &["lint", "bundle.json"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stdout
                .contains("bundle.json #1: SPIFFE bundle of 2 keys (spiffe-bundle profile)\n  ok: no findings"),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout.contains("bundle.json (x509-svid key #1) #1: "),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout
                .contains("1 certificate and 1 SPIFFE bundle: 0 errors"),
            "{}",
            r.stdout
        );

        let r = run_in(dir, &["verify", "leaf.pem", "--roots", "bundle.json"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    });
}

#[test]
fn a_doctored_bundle_is_linted_rule_by_rule_and_refused_as_roots() {
    with_served_bundle(|dir, bundle| {
        let root_key = bundle["keys"][0].clone();
        let jwt_key = bundle["keys"][1].clone();
        let leaf_der = {
            let pem = std::fs::read(dir.join("leaf.pem")).unwrap();
            pki::pem::parse_single(&pem, "CERTIFICATE").unwrap()
        };
        let leaf_jwk =
            serde_json::to_value(pki::jwt_svid::x509_authority_jwk(&leaf_der).unwrap()).unwrap();
        let mut two_certs = root_key.clone();
        two_certs["x5c"] = json!([root_key["x5c"][0], leaf_jwk["x5c"][0]]);
        let mut no_x5c = root_key.clone();
        no_x5c.as_object_mut().unwrap().remove("x5c");
        let mut no_kid = jwt_key.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut unknown_use = jwt_key.clone();
        unknown_use["use"] = json!("enc");
        unknown_use["kid"] = json!("other");
        let doctored = json!({
            "keys": [root_key, two_certs, no_x5c, leaf_jwk, jwt_key.clone(), no_kid, jwt_key, unknown_use],
            "spiffe_sequence": "7",
        });
        write_json(dir, "doctored.json", &doctored);

        let r = run_in(dir, &["show", "doctored.json"]);
        assert_eq!(
            r.code, 0,
            "show describes, whatever the findings: {}",
            r.stderr
        );
        for line in [
            "error   spiffe-bundle-number-syntax: spiffe_sequence is \"7\", not an unsigned integer",
            "error   spiffe-bundle-x5c: key #2: x5c holds 2 certificates, not 1",
            "error   spiffe-bundle-x5c: key #3: no x5c",
            "error   spiffe-bundle-x509-ca: key #4: its x5c certificate is not a CA certificate",
            "error   spiffe-bundle-jwt-kid: key #6: a jwt-svid key has no kid",
            "error   spiffe-bundle-kid-unique: key #7: kid ",
            "warning spiffe-bundle-refresh-hint: no spiffe_refresh_hint",
            "warning spiffe-bundle-key-use-unknown: key #8: unknown use \"enc\"",
        ] {
            assert!(r.stdout.contains(line), "missing {line:?} in\n{}", r.stdout);
        }
        assert!(
            r.stdout.contains("end entity (not a CA)"),
            "the leaf of key #4 is described: {}",
            r.stdout
        );

        let r = run_in(dir, &["lint", "--format", "json", "doctored.json"]);
        assert_eq!(r.code, 1, "{}", r.stdout);
        let doc = common::json(&r);
        let report = doc["reports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["profile"] == "spiffe-bundle")
            .unwrap();
        let mut rules: Vec<&str> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap())
            .collect();
        rules.sort_unstable();
        assert_eq!(
            rules,
            [
                "spiffe-bundle-jwt-kid",
                "spiffe-bundle-key-use-unknown",
                "spiffe-bundle-kid-unique",
                "spiffe-bundle-number-syntax",
                "spiffe-bundle-refresh-hint",
                "spiffe-bundle-x509-ca",
                "spiffe-bundle-x5c",
                "spiffe-bundle-x5c",
            ]
        );
        assert_eq!(doc["summary"]["spiffe_bundles"], 1);

        // verify reads the roots as federation does: a bundle it refuses is refused here.
        let r = run_in(dir, &["verify", "leaf.pem", "--roots", "doctored.json"]);
        assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr
                .contains("doctored.json: x509-svid key #2: x5c holds 2 certificates, not 1"),
            "{}",
            r.stderr
        );

        // Not a bundle at all: the reason, naming the file.
        std::fs::write(dir.join("keys.json"), r#"{"kes": []}"#).unwrap();
        let r = run_in(dir, &["show", "keys.json"]);
        assert_eq!(r.code, 2);
        assert!(
            r.stderr
                .contains("keys.json: JSON input is not a SPIFFE bundle: no \"keys\" array"),
            "{}",
            r.stderr
        );
    });
}
