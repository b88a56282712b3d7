//! `verify` judges by the services' rules by default: the X509-SVID rule set (one URI SAN, a
//! critical keyUsage with digitalSignature) and ECDSA only; `--algorithms webpki` opens RSA and
//! Ed25519 chains, `--strict` adds the RFC 5280 checks webpki leaves out. Certificates made by
//! OpenSSL, as an operator would.

#![allow(clippy::unwrap_used)]

use super::common;

use std::path::Path;

use super::common::{json, openssl, run_in};

/// An OpenSSL root in `dir` (root.pem, root.key) with the key `newkey` (`ec` + P-384 or `rsa`).
fn root(dir: &Path, rsa: bool) {
    let mut args = vec![
        "req", "-x509", "-nodes", "-keyout", "root.key", "-out", "root.pem",
    ];
    if rsa {
        args.extend(["-newkey", "rsa:2048", "-sha256"]);
    } else {
        args.extend([
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-sha384",
        ]);
    }
    args.extend([
        "-subj",
        "/CN=OpenSSL Root",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
}

/// A P-256 leaf NAME.pem signed by root.pem with the extensions `ext` (an OpenSSL extfile).
fn leaf(dir: &Path, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

const GOOD: &str = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
    extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:spiffe://mesh.local/svc\n";

fn code(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut full = vec!["verify"];
    full.extend_from_slice(args);
    full.extend_from_slice(&[
        "--roots",
        "root.pem",
        "--purpose",
        "client",
        "--format",
        "json",
    ]);
    let r = run_in(dir, &full);
    let doc = json(&r);
    let code = doc["error"]["code"].as_str().unwrap_or("valid").to_string();
    (r.code, code)
}

#[test]
fn the_x509_svid_rules_apply_without_an_expected_id() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    root(d, false);
    leaf(d, "good", GOOD);
    // A SPIFFE ID next to an https:// URI, and a SPIFFE ID without keyUsage: both used to be
    // accepted by `verify` (and the services).
    leaf(
        d,
        "two-uris",
        &GOOD.replace(
            "URI:spiffe://mesh.local/svc",
            "URI:spiffe://mesh.local/svc,URI:https://example.com/",
        ),
    );
    leaf(
        d,
        "no-ku",
        &GOOD.replace("keyUsage=critical,digitalSignature\n", ""),
    );
    leaf(
        d,
        "ku-not-critical",
        &GOOD.replace("keyUsage=critical,", "keyUsage="),
    );
    // A plain certificate (no SPIFFE ID) without keyUsage: Web PKI rules, accepted.
    leaf(
        d,
        "plain",
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:svc.example\n",
    );
    for (cert, exit, expected) in [
        ("good.pem", 0, "valid"),
        ("two-uris.pem", 1, "multiple_uri_sans"),
        ("no-ku.pem", 1, "key_usage_missing"),
        ("ku-not-critical.pem", 1, "key_usage_not_critical"),
        ("plain.pem", 0, "valid"),
    ] {
        assert_eq!(code(d, &[cert]), (exit, expected.to_string()), "{cert}");
    }
    let r = run_in(d, &["verify", "two-uris.pem", "--roots", "root.pem"]);
    assert_eq!(
        r.stdout.lines().next().unwrap(),
        "INVALID: certificate has 2 URI SANs [spiffe://mesh.local/svc, https://example.com/]; an \
         X509-SVID carries exactly one"
    );
    assert!(
        r.stdout
            .contains("Hint:       an X509-SVID carries exactly one URI SAN"),
        "{}",
        r.stdout
    );
}

#[test]
fn rsa_chains_need_the_web_pki_algorithms() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    root(d, true);
    leaf(d, "leaf", GOOD);
    assert_eq!(code(d, &["leaf.pem"]), (1, "algorithm_not_allowed".into()));
    let r = run_in(d, &["verify", "leaf.pem", "--roots", "root.pem"]);
    assert!(
        r.stdout.starts_with(
            "INVALID: CN=leaf is signed with sha256WithRSAEncryption by an RSA 2048-bit key, \
             which the ecdsa algorithm policy does not allow"
        ),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("add --algorithms webpki"), "{}", r.stdout);
    assert_eq!(
        code(d, &["leaf.pem", "--algorithms", "webpki"]),
        (0, "valid".into())
    );
    let r = run_in(
        d,
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--algorithms",
            "webpki",
        ],
    );
    assert!(
        r.stdout
            .contains("Rules:      webpki algorithms, X509-SVID rules"),
        "{}",
        r.stdout
    );
}

#[test]
fn strict_adds_the_rfc_5280_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    root(d, false);
    leaf(
        d,
        "good",
        &format!("{GOOD}authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"),
    );
    leaf(
        d,
        "underscore",
        &format!(
            "{}authorityKeyIdentifier=keyid\n",
            GOOD.replace(
                "URI:spiffe://mesh.local/svc",
                "URI:spiffe://mesh.local/svc,DNS:my_host.example"
            )
        ),
    );
    leaf(
        d,
        "critical-san",
        &format!(
            "{}authorityKeyIdentifier=keyid\n",
            GOOD.replace("subjectAltName=", "subjectAltName=critical,")
        ),
    );
    for (cert, default, strict) in [
        ("good.pem", "valid", "valid"),
        ("underscore.pem", "valid", "invalid_dns_name"),
        ("critical-san.pem", "valid", "san_critical_with_subject"),
    ] {
        assert_eq!(code(d, &[cert]).1, default, "{cert}");
        let (exit, got) = code(d, &[cert, "--strict"]);
        assert_eq!(got, strict, "{cert} --strict");
        assert_eq!(exit, i32::from(strict != "valid"), "{cert}");
    }
    let r = run_in(
        d,
        &[
            "verify",
            "underscore.pem",
            "--roots",
            "root.pem",
            "--strict",
        ],
    );
    assert!(
        r.stdout.starts_with(
            "INVALID: certificate has the DNS SAN \"my_host.example\", which is not a valid host \
             name: the character '_' is not allowed"
        ),
        "{}",
        r.stdout
    );
    let doc = json(&run_in(
        d,
        &[
            "verify", "good.pem", "--roots", "root.pem", "--strict", "--format", "json",
        ],
    ));
    assert_eq!(doc["strict"], true);
    assert_eq!(doc["algorithms"], "ecdsa");
}

#[test]
fn our_scripts_and_ca_pass_strict() {
    // The OpenSSL scripts (gen-root-ca.sh, sign-client-cert.sh) and the CA's issuance policy
    // make certificates that pass every strict check.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let run = |script: &str, args: &[&str]| {
        let out = std::process::Command::new("bash")
            .arg(scripts.join(script))
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("gen-root-ca.sh", &["pki"]);
    run(
        "sign-client-cert.sh",
        &[
            "pki",
            "client",
            "--spiffe-id",
            "spiffe://mesh.local/service/client",
        ],
    );
    let r = run_in(
        d,
        &[
            "verify",
            "pki/client.crt",
            "--roots",
            "pki/ca.crt",
            "--purpose",
            "client",
            "--strict",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    let pki = common::Pki::new(common::now());
    pki.leaf(
        "leaf.pem",
        "spiffe://mesh.local/a",
        pki::Curve::P384,
        common::now(),
        time::Duration::hours(1),
    );
    let r = run_in(
        pki.dir.path(),
        &["verify", "leaf.pem", "--roots", "root.pem", "--strict"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}
