//! Tests for the OpenSSL-only scripts in `scripts/`: `gen-root-ca.sh`,
//! `sign-server-cert.sh` and `sign-client-cert.sh`.
//!
//! Each test makes its own PKI in its own temporary directory and checks the
//! result with the `openssl` command line, the same way users are told to.
//! Needs `bash` and `openssl` (3.0+) on PATH.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Runs `scripts/<script> args...` directly (so the executable bit matters).
fn run(script: &str, args: &[&str]) -> Output {
    let path = scripts_dir().join(script);
    Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
}

fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what}: exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a script that must succeed; returns its stdout.
fn run_ok(script: &str, args: &[&str]) -> String {
    let out = run(script, args);
    assert!(
        out.status.success(),
        "{}",
        describe(&format!("{script} {args:?}"), &out)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Runs a script that must fail with a message; returns its stderr.
fn run_err(script: &str, args: &[&str]) -> String {
    let out = run(script, args);
    assert!(
        !out.status.success(),
        "{}",
        describe(&format!("{script} {args:?} should have failed"), &out)
    );
    let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    assert!(
        stderr.contains(script),
        "error message should name the script {script}: {stderr}"
    );
    stderr
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the `openssl` command is needed for these tests")
}

fn openssl_ok(args: &[&str]) -> String {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "{}",
        describe(&format!("openssl {args:?}"), &out)
    );
    String::from_utf8(out.stdout).expect("openssl output is UTF-8")
}

fn cert_text(cert: &Path) -> String {
    openssl_ok(&["x509", "-in", s(cert), "-noout", "-text"])
}

/// The value line that follows an extension's header in `openssl x509 -text`,
/// e.g. `ext_value(text, "X509v3 Key Usage: critical")` -> "Digital Signature".
fn ext_value<'a>(text: &'a str, header: &str) -> &'a str {
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("no {header:?} in:\n{text}"));
    lines.next().map(str::trim).unwrap_or_default()
}

fn serial(cert: &Path) -> String {
    let line = openssl_ok(&["x509", "-in", s(cert), "-noout", "-serial"]);
    line.trim()
        .strip_prefix("serial=")
        .expect("serial= prefix")
        .to_string()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .expect("file exists")
        .permissions()
        .mode()
        & 0o777
}

/// Names in a directory, sorted (to spot leftovers such as temp dirs).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Creates a default root CA in `<tmp>/ca` and returns that directory.
fn make_root(tmp: &Path, extra: &[&str]) -> PathBuf {
    let dir = tmp.join("ca");
    let mut args = vec![s(&dir)];
    args.extend_from_slice(extra);
    run_ok("gen-root-ca.sh", &args);
    dir
}

fn verify(ca_dir: &Path, cert: &Path, purpose: &str) -> Output {
    openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        s(&ca_dir.join("ca.crt")),
        "-purpose",
        purpose,
        s(cert),
    ])
}

fn assert_verifies(ca_dir: &Path, cert: &Path, purpose: &str) {
    let out = verify(ca_dir, cert, purpose);
    assert!(
        out.status.success(),
        "{}",
        describe(&format!("verify -purpose {purpose}"), &out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
}

#[test]
fn root_ca_p384_defaults() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("new").join("ca"); // created by the script
    let stdout = run_ok("gen-root-ca.sh", &[s(&dir)]);

    assert_eq!(
        entries(&dir),
        ["ca.crt", "ca.key"],
        "no temp files left behind"
    );
    let key = dir.join("ca.key");
    let crt = dir.join("ca.crt");
    assert_eq!(mode(&key), 0o600, "CA key must be owner-only");
    assert_eq!(mode(&dir), 0o700, "a new CA directory is owner-only");
    let key_pem = fs::read_to_string(&key).expect("read key");
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 PEM: {key_pem}"
    );

    let text = cert_text(&crt);
    for needle in [
        "Signature Algorithm: ecdsa-with-SHA384",
        "NIST CURVE: P-384",
        "Issuer: CN = mtls-mesh Root CA",
        "Subject: CN = mtls-mesh Root CA",
        "X509v3 Basic Constraints: critical",
        "CA:TRUE",
        "X509v3 Key Usage: critical",
        "Certificate Sign, CRL Sign",
        "X509v3 Subject Key Identifier",
    ] {
        assert!(
            text.contains(needle),
            "root certificate lacks {needle:?}:\n{text}"
        );
    }
    assert_eq!(
        ext_value(&text, "X509v3 Basic Constraints: critical"),
        "CA:TRUE, pathlen:0"
    );
    assert_eq!(
        ext_value(&text, "X509v3 Key Usage: critical"),
        "Certificate Sign, CRL Sign"
    );
    // About ten years: valid for 3649 more days, not for 3651.
    openssl_ok(&[
        "x509",
        "-in",
        s(&crt),
        "-noout",
        "-checkend",
        &(3649 * 86400).to_string(),
    ]);
    assert!(!openssl(&[
        "x509",
        "-in",
        s(&crt),
        "-noout",
        "-checkend",
        &(3651 * 86400).to_string()
    ])
    .status
    .success());
    // The root verifies as a strict self-signed trust anchor.
    assert_verifies(&dir, &crt, "any");

    // The fingerprint is printed both as OpenSSL shows it and as plain hex.
    let fp_line = openssl_ok(&["x509", "-in", s(&crt), "-noout", "-fingerprint", "-sha256"]);
    let colon = fp_line
        .trim()
        .split_once('=')
        .expect("fingerprint line")
        .1
        .to_string();
    let hex = colon.replace(':', "").to_lowercase();
    assert_eq!(hex.len(), 64);
    assert!(stdout.contains(&colon), "stdout lacks {colon}:\n{stdout}");
    assert!(stdout.contains(&hex), "stdout lacks {hex}:\n{stdout}");
    assert!(
        stdout.contains(s(&key)) && stdout.contains(s(&crt)),
        "{stdout}"
    );
}

#[test]
fn root_ca_p521_with_options() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = make_root(
        tmp.path(),
        &["--curve", "P-521", "--cn", "Test Mesh Root/+", "--days=30"],
    );
    let crt = dir.join("ca.crt");
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    let text = cert_text(&crt);
    for needle in [
        "Signature Algorithm: ecdsa-with-SHA512",
        "NIST CURVE: P-521",
        "CA:TRUE",
        "Certificate Sign, CRL Sign",
    ] {
        assert!(
            text.contains(needle),
            "root certificate lacks {needle:?}:\n{text}"
        );
    }
    let subject = openssl_ok(&[
        "x509",
        "-in",
        s(&crt),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]);
    assert_eq!(subject.trim(), r"subject=CN=Test Mesh Root/\+");
    openssl_ok(&[
        "x509",
        "-in",
        s(&crt),
        "-noout",
        "-checkend",
        &(29 * 86400).to_string(),
    ]);
    assert!(!openssl(&[
        "x509",
        "-in",
        s(&crt),
        "-noout",
        "-checkend",
        &(31 * 86400).to_string()
    ])
    .status
    .success());
}

#[test]
fn server_cert_verifies_and_has_exact_sans() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = make_root(tmp.path(), &[]);
    let stdout = run_ok(
        "sign-server-cert.sh",
        &[
            s(&dir),
            "api",
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
            "--dns=api.mesh.local",
            "--ip",
            "::1",
            "--spiffe-id",
            "spiffe://mesh.local/service/api",
        ],
    );
    let crt = dir.join("api.crt");
    let key = dir.join("api.key");
    assert_eq!(entries(&dir), ["api.crt", "api.key", "ca.crt", "ca.key"]);
    assert_eq!(mode(&key), 0o600, "leaf key must be owner-only");
    assert!(fs::read_to_string(&key)
        .expect("key")
        .starts_with("-----BEGIN PRIVATE KEY-----"));

    assert_verifies(&dir, &crt, "sslserver");
    // serverAuth only: not usable as a client certificate.
    assert!(!verify(&dir, &crt, "sslclient").status.success());

    let text = cert_text(&crt);
    for needle in [
        "Signature Algorithm: ecdsa-with-SHA384",
        "NIST CURVE: P-384",
        "Subject: CN = api",
        "X509v3 Basic Constraints: critical",
        "CA:FALSE",
        "X509v3 Key Usage: critical",
        "Digital Signature",
        "TLS Web Server Authentication",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "DNS:localhost, IP Address:127.0.0.1, DNS:api.mesh.local, \
         IP Address:0:0:0:0:0:0:0:1, URI:spiffe://mesh.local/service/api",
    ] {
        assert!(
            text.contains(needle),
            "server certificate lacks {needle:?}:\n{text}"
        );
    }
    assert_eq!(
        ext_value(&text, "X509v3 Basic Constraints: critical"),
        "CA:FALSE"
    );
    assert_eq!(
        ext_value(&text, "X509v3 Key Usage: critical"),
        "Digital Signature"
    );
    assert_eq!(
        ext_value(&text, "X509v3 Extended Key Usage:"),
        "TLS Web Server Authentication"
    );
    // The report names the files, serial, SANs and expiry.
    let serial = serial(&crt);
    let not_after = openssl_ok(&["x509", "-in", s(&crt), "-noout", "-enddate"]);
    let not_after = not_after.trim().trim_start_matches("notAfter=");
    for needle in [
        s(&crt),
        s(&key),
        &serial,
        not_after,
        "DNS:api.mesh.local",
        "CN=api",
    ] {
        assert!(
            stdout.contains(needle),
            "report lacks {needle:?}:\n{stdout}"
        );
    }
    // Default validity is 90 days.
    openssl_ok(&[
        "x509",
        "-in",
        s(&crt),
        "-noout",
        "-checkend",
        &(89 * 86400).to_string(),
    ]);
    assert!(!openssl(&[
        "x509",
        "-in",
        s(&crt),
        "-noout",
        "-checkend",
        &(91 * 86400).to_string()
    ])
    .status
    .success());
}

#[test]
fn client_cert_verifies_and_carries_only_the_spiffe_id() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = make_root(tmp.path(), &[]);
    let stdout = run_ok(
        "sign-client-cert.sh",
        &[
            s(&dir),
            "billing",
            "--spiffe-id",
            "spiffe://mesh.local/service/billing",
            "--days",
            "7",
        ],
    );
    let crt = dir.join("billing.crt");
    assert_eq!(mode(&dir.join("billing.key")), 0o600);

    assert_verifies(&dir, &crt, "sslclient");
    assert!(!verify(&dir, &crt, "sslserver").status.success());

    let text = cert_text(&crt);
    for needle in [
        "Signature Algorithm: ecdsa-with-SHA384",
        "CA:FALSE",
        "Digital Signature",
        "TLS Web Client Authentication",
        "X509v3 Authority Key Identifier",
    ] {
        assert!(
            text.contains(needle),
            "client certificate lacks {needle:?}:\n{text}"
        );
    }
    assert_eq!(
        ext_value(&text, "X509v3 Basic Constraints: critical"),
        "CA:FALSE"
    );
    assert_eq!(
        ext_value(&text, "X509v3 Key Usage: critical"),
        "Digital Signature"
    );
    assert_eq!(
        ext_value(&text, "X509v3 Extended Key Usage:"),
        "TLS Web Client Authentication"
    );
    let san = openssl_ok(&["x509", "-in", s(&crt), "-noout", "-ext", "subjectAltName"]);
    assert_eq!(
        san.lines().nth(1).map(str::trim),
        Some("URI:spiffe://mesh.local/service/billing"),
        "exactly one URI SAN: {san}"
    );
    assert!(
        stdout.contains("URI:spiffe://mesh.local/service/billing"),
        "{stdout}"
    );
    openssl_ok(&[
        "x509",
        "-in",
        s(&crt),
        "-noout",
        "-checkend",
        &(6 * 86400).to_string(),
    ]);
    assert!(!openssl(&[
        "x509",
        "-in",
        s(&crt),
        "-noout",
        "-checkend",
        &(8 * 86400).to_string()
    ])
    .status
    .success());
}

#[test]
fn serials_are_random_positive_and_distinct() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = make_root(tmp.path(), &[]);
    run_ok(
        "sign-server-cert.sh",
        &[s(&dir), "one", "--dns", "one.example"],
    );
    run_ok(
        "sign-server-cert.sh",
        &[s(&dir), "two", "--dns", "two.example"],
    );
    run_ok(
        "sign-client-cert.sh",
        &[s(&dir), "three", "--spiffe-id", "spiffe://x/three"],
    );
    let serials: Vec<String> = ["ca.crt", "one.crt", "two.crt", "three.crt"]
        .iter()
        .map(|f| serial(&dir.join(f)))
        .collect();
    for (i, a) in serials.iter().enumerate() {
        // At least 128 bits, and the first octet's top bit clear (positive).
        assert!(a.len() >= 32, "serial {a} is shorter than 128 bits");
        let first = u8::from_str_radix(&a[..2], 16).expect("hex serial");
        assert!(first < 0x80, "serial {a} would be negative");
        for b in &serials[i + 1..] {
            assert_ne!(a, b, "serials must differ");
        }
    }
}

#[test]
fn leaf_curves_and_p521_root() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = make_root(tmp.path(), &["--curve", "P-521"]);
    run_ok(
        "sign-server-cert.sh",
        &[s(&dir), "small", "--ip", "10.0.0.1", "--curve", "P-256"],
    );
    run_ok(
        "sign-client-cert.sh",
        &[
            s(&dir),
            "big",
            "--spiffe-id",
            "spiffe://mesh.local/a/b",
            "--curve=P-521",
        ],
    );
    let small = cert_text(&dir.join("small.crt"));
    assert!(small.contains("NIST CURVE: P-256"), "{small}");
    assert!(small.contains("IP Address:10.0.0.1"), "{small}");
    let big = cert_text(&dir.join("big.crt"));
    assert!(big.contains("NIST CURVE: P-521"), "{big}");
    // A P-521 root signs with SHA-512, like its own self-signature.
    assert!(
        big.contains("Signature Algorithm: ecdsa-with-SHA512"),
        "{big}"
    );
    assert_verifies(&dir, &dir.join("small.crt"), "sslserver");
    assert_verifies(&dir, &dir.join("big.crt"), "sslclient");
}

#[test]
fn root_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = make_root(tmp.path(), &[]);
    let key_before = fs::read(dir.join("ca.key")).expect("key");
    let crt_before = fs::read(dir.join("ca.crt")).expect("crt");

    let err = run_err("gen-root-ca.sh", &[s(&dir)]);
    assert!(
        err.contains("already exists") && err.contains("refusing to overwrite"),
        "{err}"
    );
    assert_eq!(fs::read(dir.join("ca.key")).expect("key"), key_before);
    assert_eq!(fs::read(dir.join("ca.crt")).expect("crt"), crt_before);

    // Only one of the two files present: still refused, nothing created.
    let half = tmp.path().join("half");
    fs::create_dir(&half).expect("mkdir");
    fs::write(half.join("ca.crt"), b"keep me").expect("write");
    let err = run_err("gen-root-ca.sh", &[s(&half), "--curve", "P-521"]);
    assert!(err.contains("ca.crt"), "{err}");
    assert_eq!(fs::read(half.join("ca.crt")).expect("crt"), b"keep me");
    assert_eq!(entries(&half), ["ca.crt"]);
}

#[test]
fn leaf_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = make_root(tmp.path(), &[]);
    run_ok(
        "sign-server-cert.sh",
        &[s(&dir), "web", "--dns", "web.example"],
    );
    let key_before = fs::read(dir.join("web.key")).expect("key");
    let crt_before = fs::read(dir.join("web.crt")).expect("crt");

    let err = run_err(
        "sign-server-cert.sh",
        &[s(&dir), "web", "--dns", "web.example"],
    );
    assert!(err.contains("refusing to overwrite"), "{err}");
    let err = run_err(
        "sign-client-cert.sh",
        &[s(&dir), "web", "--spiffe-id", "spiffe://a/web"],
    );
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(fs::read(dir.join("web.key")).expect("key"), key_before);
    assert_eq!(fs::read(dir.join("web.crt")).expect("crt"), crt_before);

    // A stray NAME.crt alone also blocks issuance, and no key is left behind.
    fs::write(dir.join("lone.crt"), b"keep me").expect("write");
    let err = run_err(
        "sign-client-cert.sh",
        &[s(&dir), "lone", "--spiffe-id", "spiffe://a/lone"],
    );
    assert!(err.contains("lone.crt"), "{err}");
    assert_eq!(fs::read(dir.join("lone.crt")).expect("crt"), b"keep me");
    assert!(!dir.join("lone.key").exists());
    assert_eq!(
        entries(&dir),
        ["ca.crt", "ca.key", "lone.crt", "web.crt", "web.key"]
    );
}

#[test]
fn bad_usage_fails_with_a_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = make_root(tmp.path(), &[]);
    let d = s(&dir);
    let before = entries(&dir);

    // Missing DIR.
    let err = run_err("gen-root-ca.sh", &[]);
    assert!(err.contains("missing DIR"), "{err}");
    let err = run_err("sign-server-cert.sh", &[]);
    assert!(err.contains("missing DIR"), "{err}");
    let err = run_err("sign-client-cert.sh", &["--spiffe-id", "spiffe://a/b"]);
    assert!(err.contains("missing DIR"), "{err}");
    let nowhere = tmp.path().join("nowhere");
    let err = run_err(
        "sign-client-cert.sh",
        &[s(&nowhere), "c", "--spiffe-id", "spiffe://a/b"],
    );
    assert!(err.contains("does not exist"), "{err}");
    assert!(!nowhere.exists());

    // Missing NAME / SANs / SPIFFE ID.
    let err = run_err("sign-client-cert.sh", &[d, "--spiffe-id", "spiffe://a/b"]);
    assert!(err.contains("missing NAME"), "{err}");
    let err = run_err("sign-client-cert.sh", &[d, "c"]);
    assert!(err.contains("missing --spiffe-id"), "{err}");
    let err = run_err("sign-client-cert.sh", &[d, "c", "--spiffe-id"]);
    assert!(err.contains("--spiffe-id needs a value"), "{err}");
    let err = run_err(
        "sign-server-cert.sh",
        &[d, "s", "--spiffe-id", "spiffe://a/b"],
    );
    assert!(err.contains("at least one --dns"), "{err}");

    // Bad SPIFFE IDs, each with its reason.
    let too_long_trust_domain = format!("spiffe://{}/x", "t".repeat(256));
    for (id, reason) in [
        ("https://mesh.local/x", "must start with 'spiffe://'"),
        ("spiffe://Mesh.Local/x", "must be lowercase"),
        ("spiffe://mesh.local", "non-empty path"),
        ("spiffe://mesh.local/", "non-empty path"),
        ("spiffe:///x", "empty trust domain"),
        ("spiffe://mesh.local/a//b", "empty path segment"),
        ("spiffe://mesh.local/a/../b", "'.' or '..'"),
        ("spiffe://mesh.local/a?b=c", "query"),
        ("spiffe://mesh.local:8443/a", "port"),
        // A newline would end the line of the OpenSSL configuration the ID is written to and
        // inject the next one (here a DNS name nobody asked for).
        (
            "spiffe://mesh.local/a\nDNS.9 = evil.example",
            "may contain only letters",
        ),
        (&too_long_trust_domain, "longer than 255 bytes"),
    ] {
        let err = run_err("sign-client-cert.sh", &[d, "c", "--spiffe-id", id]);
        assert!(
            err.contains("SPIFFE ID") && err.contains(reason),
            "{id}: {err}"
        );
        assert!(
            !Path::new(d).join("c.crt").exists(),
            "{id}: a certificate was written"
        );
        let err = run_err(
            "sign-server-cert.sh",
            &[d, "s", "--dns", "x", "--spiffe-id", id],
        );
        assert!(err.contains(reason), "{id}: {err}");
    }

    // Other bad values.
    for (script, args, reason) in [
        (
            "gen-root-ca.sh",
            &[d, "--curve", "P-256"][..],
            "--curve must be one of",
        ),
        ("gen-root-ca.sh", &[d, "--days", "0"][..], "--days"),
        ("gen-root-ca.sh", &[d, "--frobnicate"][..], "unknown option"),
        (
            "sign-server-cert.sh",
            &[d, "s", "--dns", "bad_name!"][..],
            "not a valid DNS name",
        ),
        (
            "sign-server-cert.sh",
            &[d, "s", "--ip", "300.1.1.1"][..],
            "not an IPv4 or IPv6",
        ),
        (
            "sign-server-cert.sh",
            &[d, "s", "--dns", "x", "--dns", "x"][..],
            "given twice",
        ),
        (
            "sign-server-cert.sh",
            &[d, "s", "--dns", "x", "--curve", "P-224"][..],
            "--curve",
        ),
        (
            "sign-server-cert.sh",
            &[d, "../s", "--dns", "x"][..],
            "NAME must be",
        ),
        (
            "sign-server-cert.sh",
            &[d, "s", "extra", "--dns", "x"][..],
            "unexpected argument",
        ),
        (
            "sign-client-cert.sh",
            &[d, "c", "--spiffe-id", "spiffe://a/b", "--dns", "x"][..],
            "--dns",
        ),
        (
            "sign-client-cert.sh",
            &[d, "c", "--spiffe-id", "spiffe://a/b", "--days", "x"][..],
            "--days",
        ),
    ] {
        let out = run(script, args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            describe(&format!("{script} {args:?}"), &out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(reason) && err.contains("--help"),
            "{script} {args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "errors go to stderr only");
    }

    // A leaf may not outlive its CA.
    let short = tmp.path().join("short");
    run_ok("gen-root-ca.sh", &[s(&short), "--days", "10"]);
    let err = run_err("sign-server-cert.sh", &[s(&short), "s", "--dns", "x"]);
    assert!(err.contains("outlive the CA"), "{err}");
    run_ok(
        "sign-server-cert.sh",
        &[s(&short), "s", "--dns", "x", "--days", "9"],
    );

    // A CA key that does not match the certificate is refused.
    let other = tmp.path().join("other");
    run_ok("gen-root-ca.sh", &[s(&other)]);
    fs::remove_file(other.join("ca.key")).expect("rm");
    fs::copy(dir.join("ca.key"), other.join("ca.key")).expect("cp");
    let err = run_err(
        "sign-client-cert.sh",
        &[s(&other), "c", "--spiffe-id", "spiffe://a/b"],
    );
    assert!(err.contains("does not belong to"), "{err}");

    assert_eq!(
        entries(&dir),
        before,
        "failed runs must not leave files behind"
    );
    assert_eq!(entries(&other), ["ca.crt", "ca.key"]);
}

#[test]
fn help_exits_zero_and_teaches() {
    for (script, must_mention) in [
        (
            "gen-root-ca.sh",
            &[
                "ca.key",
                "ca.crt",
                "--curve",
                "--cn",
                "--days",
                "fingerprint",
            ][..],
        ),
        (
            "sign-server-cert.sh",
            &["--dns", "--ip", "--spiffe-id", "NAME.key", "sslserver"][..],
        ),
        (
            "sign-client-cert.sh",
            &["--spiffe-id", "NAME.crt", "sslclient", "Examples"][..],
        ),
    ] {
        for flag in ["--help", "-h"] {
            let out = run(script, &[flag]);
            assert!(
                out.status.success(),
                "{}",
                describe(&format!("{script} {flag}"), &out)
            );
            assert!(out.stderr.is_empty());
            let help = String::from_utf8(out.stdout).expect("UTF-8 help");
            assert!(help.starts_with(&format!("Usage: {script} DIR")), "{help}");
            for word in must_mention {
                assert!(
                    help.contains(word),
                    "{script} --help lacks {word:?}:\n{help}"
                );
            }
        }
    }
    // --help wins even after other (incomplete) arguments.
    let out = run("sign-client-cert.sh", &["somewhere", "--help"]);
    assert!(out.status.success());
}
