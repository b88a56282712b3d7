//! `verify`: exit 0 valid, 1 invalid (with expected vs presented values), 2 usage/read error;
//! results agree with `openssl verify` where both apply.

#![allow(clippy::unwrap_used)]

use super::common;

use super::common::{json, openssl, run_in, Pki};
use pki::Curve;
use time::Duration;

const AT: &str = "2026-01-01T00:30:00Z";

fn fixtures(args: &[&str]) -> common::Run {
    run_in(&common::data_dir(), args)
}

#[test]
fn valid_certificate_with_every_check() {
    let r = fixtures(&[
        "verify",
        "leaf.pem",
        "--roots",
        "root.pem",
        "--purpose",
        "client",
        "--hostname",
        "127.0.0.1",
        "--spiffe-id",
        "spiffe://mesh.local/service/api",
        "--crl",
        "crl.pem",
        "--at",
        AT,
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .starts_with("OK: valid for client use at 2026-01-01T00:30:00Z"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Revocation: checked, not revoked"),
        "{}",
        r.stdout
    );

    let r = fixtures(&[
        "verify",
        "leaf.pem",
        "--roots",
        "root.pem",
        "--trust-domain",
        "mesh.local",
        "--at",
        AT,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0);
    let doc = json(&r);
    assert_eq!(doc["schema"], "mtls-inspect.verify/v1");
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["error"], serde_json::Value::Null);
    assert_eq!(doc["spiffe_id"], "spiffe://mesh.local/service/api");
    assert_eq!(doc["chain"].as_array().unwrap().len(), 2);
    assert_eq!(doc["chain"][1]["subject"], "O=mtls-mesh, CN=Fixture Root A");
}

#[test]
fn invalid_results_exit_1_with_the_reason() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["leaf.pem", "--at", "2026-01-01T02:00:00Z"], "expired",
            "INVALID: certificate expired at 2026-01-01T01:00:00Z, checked at 2026-01-01T02:00:00Z"),
        (&["leaf.pem", "--at", "2025-12-31T23:00:00Z"], "not_yet_valid",
            "INVALID: certificate is not yet valid until 2025-12-31T23:59:30Z, checked at 2025-12-31T23:00:00Z"),
        (&["leaf.pem", "--spiffe-id", "spiffe://mesh.local/service/web", "--at", AT], "spiffe_id_mismatch",
            "INVALID: certificate is valid for spiffe://mesh.local/service/api, not spiffe://mesh.local/service/web"),
        (&["leaf.pem", "--trust-domain", "other.local", "--at", AT], "trust_domain_mismatch",
            "INVALID: certificate is valid for spiffe://mesh.local/service/api, which is not in trust domain other.local"),
        (&["leaf.pem", "--hostname", "localhost2", "--at", AT], "hostname_mismatch",
            "INVALID: hostname localhost2 is not in the certificate's SANs [localhost, 127.0.0.1]"),
        (&["server-only.pem", "--purpose", "client", "--at", AT], "missing_eku",
            "INVALID: certificate lacks clientAuth EKU (it has [serverAuth])"),
        (&["root.pem", "--at", AT], "ca_used_as_leaf",
            "INVALID: certificate is a CA (CA:TRUE) and cannot be used as a leaf"),
        (&["revoked.pem", "--crl", "crl.der", "--at", AT], "revoked",
            "INVALID: certificate is revoked (serial "),
    ];
    for (args, code, message) in cases {
        let mut full = vec!["verify"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--roots", "root.pem"]);
        let r = fixtures(&full);
        assert_eq!(r.code, 1, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.starts_with(message), "{args:?}:\n{}", r.stdout);
        full.extend_from_slice(&["--format", "json"]);
        let doc = json(&fixtures(&full));
        assert_eq!(doc["valid"], false);
        assert_eq!(doc["error"]["code"], *code, "{args:?}");
    }
}

#[test]
fn unknown_issuer_and_unknown_revocation_status() {
    let r = fixtures(&[
        "verify",
        "leaf.pem",
        "--roots",
        "other-root.pem",
        "--at",
        AT,
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.starts_with(
        "INVALID: issuer O=mtls-mesh, CN=Fixture Root A is not in the roots [O=mtls-mesh, CN=Fixture Root B]"
    ), "{}", r.stdout);
    // Both roots trusted, but the only CRL is from the wrong one.
    let dir = tempfile::tempdir().unwrap();
    let now = common::now();
    let other = pki::CaMaterial::generate_root("Elsewhere", now).unwrap();
    let crl = pki::crl::sign_crl(
        &other,
        &[],
        1,
        now - Duration::minutes(1),
        now + Duration::hours(1),
    )
    .unwrap();
    std::fs::write(dir.path().join("other.crl"), crl).unwrap();
    let crl_path = dir.path().join("other.crl");
    let r = fixtures(&[
        "verify",
        "leaf.pem",
        "--roots",
        "root.pem",
        "--crl",
        crl_path.to_str().unwrap(),
        "--at",
        AT,
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("revocation status of certificate is unknown: no CRL from its issuer O=mtls-mesh, CN=Fixture Root A was given"), "{}", r.stdout);
}

#[test]
fn chains_with_intermediates_from_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
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
            "root.key",
            "-subj",
            "/CN=OpenSSL Root",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "root.pem",
        ],
    );
    std::fs::write(
        d.join("int.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
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
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "int.key",
            "-subj",
            "/CN=OpenSSL Intermediate",
            "-out",
            "int.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509", "-req", "-in", "int.csr", "-CA", "root.pem", "-CAkey", "root.key", "-days",
            "20", "-sha384", "-extfile", "int.ext", "-out", "int.pem",
        ],
    );
    std::fs::write(d.join("leaf.ext"), "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
        extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:spiffe://example.org/svc,DNS:svc.example\n").unwrap();
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
            "/CN=svc",
            "-out",
            "leaf.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509", "-req", "-in", "leaf.csr", "-CA", "int.pem", "-CAkey", "int.key", "-days",
            "10", "-sha384", "-extfile", "leaf.ext", "-out", "leaf.pem",
        ],
    );
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(d.join("leaf.pem")).unwrap(),
        std::fs::read_to_string(d.join("int.pem")).unwrap()
    );
    std::fs::write(d.join("chain.pem"), chain).unwrap();

    let r = run_in(
        d,
        &[
            "verify",
            "leaf.pem",
            "--intermediates",
            "int.pem",
            "--roots",
            "root.pem",
            "--purpose",
            "server",
            "--hostname",
            "svc.example",
            "--trust-domain",
            "example.org",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("intermediate CN=OpenSSL Intermediate"),
        "{}",
        r.stdout
    );
    // The chain may come in CERT itself, as a server sends it.
    let r = run_in(d, &["verify", "chain.pem", "--roots", "root.pem"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // Without the intermediate the path stops at its name.
    let r = run_in(d, &["verify", "leaf.pem", "--roots", "root.pem"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.starts_with(
            "INVALID: issuer CN=OpenSSL Intermediate is not in the roots [CN=OpenSSL Root]"
        ),
        "{}",
        r.stdout
    );

    // OpenSSL agrees on each verdict.
    let ok = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(ok(&[
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "int.pem",
        "leaf.pem"
    ]));
    assert!(!ok(&["verify", "-CAfile", "root.pem", "leaf.pem"]));
}

#[test]
fn our_ca_agrees_with_openssl_verify() {
    let now = common::now();
    let pki = Pki::new(now);
    let d = pki.dir.path();
    pki.leaf(
        "fresh.pem",
        "spiffe://mesh.local/a",
        Curve::P384,
        now,
        Duration::hours(1),
    );
    pki.leaf(
        "old.pem",
        "spiffe://mesh.local/a",
        Curve::P384,
        now - Duration::hours(3),
        Duration::hours(1),
    );
    let other = pki::CaMaterial::generate_root("Other", now).unwrap();
    pki.write("other.pem", other.cert_pem());
    for (cert, roots) in [
        ("fresh.pem", "root.pem"),
        ("old.pem", "root.pem"),
        ("fresh.pem", "other.pem"),
    ] {
        let ours = run_in(d, &["verify", cert, "--roots", roots]).code == 0;
        let theirs = std::process::Command::new("openssl")
            .args(["verify", "-CAfile", roots, cert])
            .current_dir(d)
            .output()
            .unwrap()
            .status
            .success();
        assert_eq!(ours, theirs, "{cert} against {roots}");
    }
}

#[test]
fn usage_and_read_errors_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["verify", "leaf.pem"], "--roots"),
        (
            &["verify", "leaf.pem", "--roots", "missing.pem"],
            "cannot read missing.pem",
        ),
        (
            &["verify", "leaf.pem", "--roots", "csr.pem"],
            "object #1 is a certificate request, but the roots must be certificates",
        ),
        (
            &[
                "verify", "leaf.pem", "--roots", "root.pem", "--crl", "leaf.pem",
            ],
            "object #1 is a certificate, not a CRL",
        ),
        (
            &[
                "verify",
                "leaf.pem",
                "--roots",
                "root.pem",
                "--spiffe-id",
                "https://x",
            ],
            "--spiffe-id: invalid SPIFFE ID",
        ),
        (
            &[
                "verify",
                "leaf.pem",
                "--roots",
                "root.pem",
                "--trust-domain",
                "Mesh",
            ],
            "--trust-domain: invalid SPIFFE ID",
        ),
        (
            &[
                "verify",
                "leaf.pem",
                "--roots",
                "root.pem",
                "--spiffe-id",
                "spiffe://a/b",
                "--trust-domain",
                "a",
            ],
            "cannot be used with",
        ),
        (
            &[
                "verify", "leaf.pem", "--roots", "root.pem", "--at", "tomorrow",
            ],
            "not an RFC 3339 time",
        ),
        (
            &[
                "verify",
                "leaf.pem",
                "--roots",
                "root.pem",
                "--hostname",
                "bad name!",
            ],
            "--hostname: hostname \"bad name!\" is neither a DNS name nor an IP address",
        ),
        (
            &[
                "verify",
                "leaf.pem",
                "--roots",
                "root.pem",
                "--purpose",
                "web",
            ],
            "invalid value 'web'",
        ),
    ];
    for (args, needle) in cases {
        let r = fixtures(args);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn crl_without_crl_number_is_refused_with_the_fix() {
    // `openssl ca -gencrl` without a crlnumber file makes a CRL without the CRL Number RFC 5280
    // requires. It is refused (a verdict, exit 1) with what is missing and how to fix it; with
    // the crlnumber file the same CA's CRL is accepted.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = pki::CaMaterial::generate_root("No CRL Number Root", common::now()).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("ca.key"), ca.key_pem().unwrap()).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    let cnf = "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ndefault_md = sha384\ndefault_crl_days = 1\n";
    std::fs::write(dir.join("ca.cnf"), cnf).unwrap();
    let gencrl = |out: &str| {
        openssl(
            dir,
            &[
                "ca", "-gencrl", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt",
                "-out", out,
            ],
        )
    };
    gencrl("crl.pem");
    let now = common::now();
    let leaf = {
        let key = pki::keys::generate(Curve::P256).unwrap();
        let spki = pki::keys::spki_der(&key);
        let id = pki::SpiffeId::parse("spiffe://mesh.local/a").unwrap();
        pki::IssuancePolicy::default()
            .issue(
                &pki::LeafRequest {
                    spiffe_id: &id,
                    dns: &[],
                    ips: &[],
                    spki_der: &spki,
                    ttl: Duration::hours(1),
                    now,
                },
                &ca,
            )
            .unwrap()
            .pem
    };
    std::fs::write(dir.join("leaf.pem"), leaf).unwrap();
    let args = [
        "verify", "leaf.pem", "--roots", "ca.crt", "--crl", "crl.pem",
    ];
    let r = run_in(dir, &args);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with(
            "INVALID: CRL #1 is refused: the CRL from O=mtls-mesh, CN=No CRL Number Root has no \
             CRL Number extension, which RFC 5280 5.2.3 requires; with `openssl ca -gencrl`, set \
             `crlnumber = FILE` in the CA section and create the crlnumber file (`echo 01 > \
             crlnumber`)"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("Hint:       configure the OpenSSL CA with `crlnumber = crlnumber`"),
        "{}",
        r.stdout
    );
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let doc = json(&run_in(dir, &json_args));
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["error"]["code"], "crl_no_number");

    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    std::fs::write(dir.join("ca.cnf"), format!("{cnf}crlnumber = crlnumber\n")).unwrap();
    gencrl("crl.pem");
    let r = run_in(dir, &args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("Revocation: checked, not revoked"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_time_the_verifier_cannot_represent_is_a_usage_error() {
    for at in ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z"] {
        let r = fixtures(&["verify", "leaf.pem", "--roots", "root.pem", "--at", at]);
        assert_eq!(r.code, 2, "{at}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "invalid value '{at}' for '--at <RFC3339>': {at} is outside the range the \
                 verifier accepts: 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
            )),
            "{}",
            r.stderr
        );
    }
    // Both ends of the range are accepted (the leaf is expired then, a verdict).
    for at in ["1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z"] {
        let r = fixtures(&["verify", "leaf.pem", "--roots", "root.pem", "--at", at]);
        assert_eq!(r.code, 1, "{at}: {}{}", r.stdout, r.stderr);
    }
}
