//! The CA key in a PKCS#11 token (SoftHSM2 in a temp dir of the test's own): `mtls-ca init
//! --key pkcs11:…` makes a root (or an offline root's intermediate) whose key is generated in
//! the token; the CA then issues, renews and revokes (a CRL signed in the token, enforced by a
//! server), and no file in the data directory holds the CA key. An intermediate whose key is in
//! the token goes through the offline renewal ceremony (csr, sign, install; renew) and keeps
//! issuing with the same token key. A wrong module, token, PIN or
//! object is refused, named, with nothing created. The signing session reconnects when the
//! token logs it out. The JWT-SVID signing key of such a CA is in the token too (no `jwt.key`);
//! a CA that already has a `jwt.key` keeps it and its `kid`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use super::common::*;
use crate::programs;
use testkit::softhsm::{SoftHsm, MODULE};
use testkit::CaProc;

const TOKEN: &str = "mesh-ca";
const PIN: &str = "4711-user-pin";
const KEY: &str = "pkcs11:token=mesh-ca;object=ca-key";

/// A SoftHSM2 with the token TOKEN initialised, and the PIN in DIR/pin.
fn token(dir: &Path) -> SoftHsm {
    let hsm = SoftHsm::new(&dir.join("softhsm"));
    hsm.init_token(TOKEN, PIN);
    std::fs::write(dir.join("pin"), format!("{PIN}\n")).unwrap();
    std::fs::write(dir.join("wrong-pin"), "0000\n").unwrap();
    hsm
}

/// `mtls-ca ARGS` in `dir`, seeing the token; (success, stdout, stderr).
fn mtls_ca(hsm: &SoftHsm, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = hsm
        .command(programs::ca())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run mtls-ca");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pkcs11_args(pin_file: &str) -> Vec<&str> {
    vec!["--pkcs11-module", MODULE, "--pkcs11-pin-file", pin_file]
}

fn start_token_ca(hsm: &SoftHsm, data_dir: &Path, extra: &[&str]) -> CaProc {
    let pin = data_dir.parent().unwrap().join("pin");
    let pin = pin.to_str().unwrap();
    let mut args = pkcs11_args(pin);
    args.extend_from_slice(extra);
    testkit::start_ca_with_env(
        &programs::ca(),
        "ca",
        data_dir,
        "127.0.0.1:0",
        &args,
        &hsm.env(),
    )
}

/// Every file under `dir` that holds a private key (PEM of any kind, or DER PKCS#8/SEC1),
/// with the SubjectPublicKeyInfo of the key.
fn private_keys_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            if text.contains("PRIVATE KEY-----") {
                let (key, _) = pki::keys::parse_private_key_pem(&bytes)
                    .unwrap_or_else(|e| panic!("{}: a PEM private key: {e}", path.display()));
                found.push((path, rcgen::PublicKeyData::subject_public_key_info(&key)));
                continue;
            }
            if let Ok(der) = rustls::pki_types::PrivateKeyDer::try_from(bytes.as_slice()) {
                if let Ok(key) = rcgen::KeyPair::try_from(&der) {
                    found.push((path, rcgen::PublicKeyData::subject_public_key_info(&key)));
                }
            }
        }
    }
    found
}

/// The SubjectPublicKeyInfo of the first certificate in a PEM file.
fn spki_of(cert_pem: &Path) -> Vec<u8> {
    let der = pki::pem::parse_certificates(&std::fs::read(cert_pem).unwrap())
        .unwrap()
        .remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.tbs_certificate.subject_pki.raw.to_vec()
}

/// No private key at all in the data directory: not the CA key, and not the JWT-SVID key,
/// which is in the token too.
fn assert_no_ca_key_on_disk(data_dir: &Path, ca_cert: &Path) {
    let ca_spki = spki_of(ca_cert);
    let keys = private_keys_under(data_dir);
    for (path, spki) in &keys {
        assert_ne!(spki, &ca_spki, "{} holds the CA key", path.display());
    }
    let names: Vec<String> = keys
        .iter()
        .map(|(p, _)| p.strip_prefix(data_dir).unwrap().display().to_string())
        .collect();
    assert!(
        names.is_empty(),
        "private keys in the data directory: {names:?}"
    );
    assert!(!data_dir.join("jwt.key").exists());
}

/// `pkcs11-tool --list-objects --type privkey` of the test token: one block per key.
fn private_key_objects(hsm: &SoftHsm) -> Vec<String> {
    let out = hsm
        .command("pkcs11-tool")
        .args(["--module", MODULE, "--token-label", TOKEN, "--login"])
        .args(["--pin", PIN, "--list-objects", "--type", "privkey"])
        .output()
        .expect("pkcs11-tool must be installed (Debian package opensc)");
    assert!(out.status.success(), "pkcs11-tool: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split("Private Key Object")
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn a_ca_with_its_root_key_in_softhsm_issues_renews_and_revokes_with_no_key_on_disk() {
    require_binaries();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hsm = token(dir);
    let mut args = pkcs11_args("pin");
    args.extend(["--data-dir", "ca", "init", "--key", KEY]);
    let (ok, out, err) = mtls_ca(&hsm, dir, &args);
    assert!(ok, "{out}{err}");
    assert!(err.contains("was generated in the token"), "{err}");
    let fingerprint = out
        .trim()
        .strip_prefix("root fingerprint (SHA-256): ")
        .expect("the fingerprint line")
        .to_string();
    assert_eq!(
        std::fs::read_to_string(dir.join("ca/root.pkcs11")).unwrap(),
        format!("{KEY}\n")
    );
    assert!(!dir.join("ca/root.key").exists());

    // The key in the token is sensitive and never extractable (as pkcs11-tool reads it).
    let objects = hsm
        .command("pkcs11-tool")
        .args([
            "--module",
            MODULE,
            "--token-label",
            TOKEN,
            "--login",
            "--pin",
            PIN,
        ])
        .args(["--list-objects", "--type", "privkey"])
        .output()
        .expect("pkcs11-tool must be installed (Debian package opensc)");
    let listing = String::from_utf8_lossy(&objects.stdout);
    assert!(listing.contains("ca-key"), "{listing}");
    assert!(listing.contains("EC"), "{listing}");
    assert!(listing.contains("never extractable"), "{listing}");
    assert!(listing.contains("sensitive"), "{listing}");

    let ca = start_token_ca(&hsm, &dir.join("ca"), &["--cert-duration", "10s"]);
    assert_eq!(ca.fingerprint, fingerprint);
    ca.proc.wait_for(
        |l| l.contains("whose key is in the token pkcs11:token=mesh-ca;object=ca-key"),
        LONG,
    );

    // Issuance (enrollment), then renewal at half of the 10 s lifetime, both signed in the
    // token; the server keeps serving its client throughout.
    let server = enrolled_server(&ca, dir, &["--crl-refresh", "1s"]);
    let client = spawn_client(
        &ca,
        dir,
        &server,
        &["--count", "600", "--interval", "100ms", "--quiet"],
    );
    let connected = client.wait_for(|l| l.starts_with("[CLIENT] connected:"), LONG);
    server
        .proc
        .wait_for(|l| l.contains("certificate rotated"), LONG);

    // A chain OpenSSL accepts: the leaf on the wire verifies against root.crt.
    let leaf = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", server.port),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl must be installed");
    let text = String::from_utf8_lossy(&leaf.stdout);
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
    std::fs::write(dir.join("leaf.pem"), &text[start..end]).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile", "ca/root.crt", "leaf.pem"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    // Revocation: the CRL the token signs is enforced by the server.
    let serial = connected
        .split_whitespace()
        .find_map(|w| w.strip_prefix("own_serial="))
        .expect("own serial")
        .to_string();
    let mark = client.mark();
    ca.revoke(&serial);
    client.wait_for_after(
        mark,
        |l| l.contains("server rejected our certificate: revoked"),
        LONG,
    );

    assert_no_ca_key_on_disk(&dir.join("ca"), &dir.join("ca/root.crt"));
}

#[test]
fn an_offline_root_with_its_intermediate_key_in_softhsm_signs_leaves_with_the_token() {
    require_binaries();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hsm = token(dir);
    std::fs::write(dir.join("pass"), "correct horse battery staple\n").unwrap();
    let mut args = pkcs11_args("pin");
    args.extend(["--data-dir", "ca", "init", "--key", KEY]);
    args.extend(["--offline-root", "offline", "--passphrase-file", "pass"]);
    args.extend(["--jwt-object", "mesh-jwt"]);
    let (ok, out, err) = mtls_ca(&hsm, dir, &args);
    assert!(ok, "{out}{err}");
    assert!(dir.join("ca/intermediate.pkcs11").exists());
    assert!(!dir.join("ca/intermediate.key").exists());
    // The JWT-SVID key, labelled as --jwt-object says, is in the token with the intermediate's.
    assert_eq!(
        std::fs::read_to_string(dir.join("ca/jwt.pkcs11")).unwrap(),
        "pkcs11:token=mesh-ca;object=mesh-jwt\n"
    );
    let objects = private_key_objects(&hsm);
    assert!(
        objects.iter().any(|o| o.contains("label:      mesh-jwt")
            && o.contains("sensitive")
            && o.contains("never extractable")),
        "{objects:?}"
    );

    let ca = start_token_ca(&hsm, &dir.join("ca"), &[]);
    let server = enrolled_server(&ca, dir, &[]);
    let client = spawn_client(&ca, dir, &server, &["--count", "1"]);
    client.wait_for(
        |l| l.contains("Issuer: O=mtls-mesh, CN=mesh.local Intermediate CA"),
        LONG,
    );
    client.wait_for(|l| l.contains("[CLIENT] Response: 200 OK"), LONG);
    assert_no_ca_key_on_disk(&dir.join("ca"), &dir.join("ca/intermediate.crt"));
}

/// The NotAfter of the first certificate in a PEM file.
fn not_after_of(cert_pem: &Path) -> time::OffsetDateTime {
    let der = pki::pem::parse_certificates(&std::fs::read(cert_pem).unwrap())
        .unwrap()
        .remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.validity().not_after.to_datetime()
}

/// The intermediate's renewal ceremony with its key in the token (docs/operations.md "Key in
/// an HSM"): `intermediate csr` signs the CSR in the token, the offline root signs it,
/// `intermediate install` checks it against the token key; then `intermediate renew` does the
/// three at once. The CA then issues under the renewed certificate, the same token key, and
/// no file anywhere holds that key.
#[test]
fn an_intermediate_in_softhsm_is_renewed_by_the_offline_ceremony_and_keeps_issuing() {
    require_binaries();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hsm = token(dir);
    std::fs::write(dir.join("pass"), "correct horse battery staple\n").unwrap();
    let ca_args = |rest: &[&'static str]| {
        let mut args = pkcs11_args("pin");
        args.extend(["--data-dir", "ca"]);
        args.extend_from_slice(rest);
        args
    };
    let (ok, out, err) = mtls_ca(
        &hsm,
        dir,
        &ca_args(&[
            "init",
            "--key",
            KEY,
            "--offline-root",
            "offline",
            "--passphrase-file",
            "pass",
            "--intermediate-lifetime",
            "30d",
        ]),
    );
    assert!(ok, "{out}{err}");
    let token_spki = spki_of(&dir.join("ca/intermediate.crt"));
    let first_not_after = not_after_of(&dir.join("ca/intermediate.crt"));

    // On the CA host: the CSR, signed in the token, for the token's key.
    let (ok, csr, err) = mtls_ca(&hsm, dir, &ca_args(&["intermediate", "csr"]));
    assert!(ok, "intermediate csr: {err}");
    std::fs::write(dir.join("intermediate.csr"), &csr).unwrap();
    let parsed = pki::csr::parse_and_verify(csr.as_bytes()).expect("a CSR its key signed");
    assert_eq!(parsed.spki_der, token_spki, "the CSR is for the token key");

    // On the machine holding the root (no token there).
    let (ok, cert, err) = mtls_ca(
        &hsm,
        dir,
        &[
            "intermediate",
            "sign",
            "--root-key",
            "offline",
            "--csr",
            "intermediate.csr",
            "--passphrase-file",
            "pass",
            "--lifetime",
            "60d",
        ],
    );
    assert!(ok, "intermediate sign: {err}");
    std::fs::write(dir.join("renewed.crt"), &cert).unwrap();

    // Back on the CA host.
    let (ok, out, err) = mtls_ca(
        &hsm,
        dir,
        &ca_args(&["intermediate", "install", "--cert", "renewed.crt"]),
    );
    assert!(ok, "intermediate install: {out}{err}");
    assert!(err.contains("installed the renewed intermediate"), "{err}");
    let renewed_not_after = not_after_of(&dir.join("ca/intermediate.crt"));
    assert!(
        renewed_not_after > first_not_after + time::Duration::days(29),
        "{renewed_not_after} vs {first_not_after}"
    );
    assert_eq!(spki_of(&dir.join("ca/intermediate.crt")), token_spki);

    // A certificate the root signed for another key is refused, and changes nothing.
    std::fs::create_dir(dir.join("elsewhere")).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir.join("elsewhere"))
            .output()
            .expect("openssl must be installed");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    openssl(&[
        "ecparam",
        "-name",
        "secp384r1",
        "-genkey",
        "-noout",
        "-out",
        "other.key",
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        "other.key",
        "-subj",
        "/O=mtls-mesh/CN=other",
        "-addext",
        "subjectAltName=URI:spiffe://mesh.local",
        "-out",
        "other.csr",
    ]);
    let (ok, other, err) = mtls_ca(
        &hsm,
        dir,
        &[
            "intermediate",
            "sign",
            "--root-key",
            "offline",
            "--csr",
            "elsewhere/other.csr",
            "--passphrase-file",
            "pass",
        ],
    );
    assert!(ok, "intermediate sign (other key): {err}");
    std::fs::write(dir.join("elsewhere/other.crt"), other).unwrap();
    let (ok, _, err) = mtls_ca(
        &hsm,
        dir,
        &ca_args(&["intermediate", "install", "--cert", "elsewhere/other.crt"]),
    );
    assert!(!ok, "a certificate for another key was installed");
    assert!(err.contains("its key must be intermediate.key's"), "{err}");
    assert_eq!(
        not_after_of(&dir.join("ca/intermediate.crt")),
        renewed_not_after
    );
    std::fs::remove_dir_all(dir.join("elsewhere")).unwrap();

    // Without the token options the key cannot be reached: said in words that fit this
    // subcommand (not the server's "start with"), nothing changes.
    let (ok, _, err) = mtls_ca(&hsm, dir, &["--data-dir", "ca", "intermediate", "csr"]);
    assert!(!ok);
    assert!(
        err.contains("give this command --pkcs11-module and --pkcs11-pin-file"),
        "{err}"
    );
    assert!(!err.contains("start with"), "{err}");

    // The one-step renewal, with the root's medium on the CA host.
    let (ok, out, err) = mtls_ca(
        &hsm,
        dir,
        &ca_args(&[
            "intermediate",
            "renew",
            "--root-key",
            "offline",
            "--passphrase-file",
            "pass",
            "--lifetime",
            "90d",
        ]),
    );
    assert!(ok, "intermediate renew: {out}{err}");
    let renewed_again = not_after_of(&dir.join("ca/intermediate.crt"));
    assert!(renewed_again > renewed_not_after + time::Duration::days(29));
    assert_eq!(spki_of(&dir.join("ca/intermediate.crt")), token_spki);
    let installed = std::fs::read_to_string(dir.join("ca/intermediate.crt")).unwrap();

    // The CA issues under the renewed certificate, signing with the token.
    let ca = start_token_ca(&hsm, &dir.join("ca"), &[]);
    let server = enrolled_server(&ca, dir, &[]);
    let client = spawn_client(&ca, dir, &server, &["--count", "1"]);
    client.wait_for(|l| l.contains("[CLIENT] Response: 200 OK"), LONG);
    let shown = Command::new("openssl")
        .args([
            "s_client",
            "-showcerts",
            "-connect",
            &format!("127.0.0.1:{}", server.port),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl must be installed");
    let chain = String::from_utf8_lossy(&shown.stdout);
    let certs: Vec<&str> = chain
        .match_indices("-----BEGIN CERTIFICATE-----")
        .map(|(start, _)| {
            let end = chain[start..].find("-----END CERTIFICATE-----").unwrap() + 25;
            &chain[start..start + end]
        })
        .collect();
    assert_eq!(certs.len(), 2, "leaf and intermediate: {chain}");
    assert_eq!(
        format!("{}\n", certs[1]),
        installed,
        "the server sends the renewed intermediate"
    );
    std::fs::write(dir.join("leaf.pem"), certs[0]).unwrap();
    let verify = Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            "ca/root.crt",
            "-untrusted",
            "ca/intermediate.crt",
            "leaf.pem",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    assert_no_ca_key_on_disk(&dir.join("ca"), &dir.join("ca/intermediate.crt"));
    // Nor next to it: the CSR and certificates of the ceremony are public.
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert!(!text.contains("PRIVATE KEY"), "{}", path.display());
        }
    }
}

/// The runbook "a two-tier CA whose intermediate key is in SoftHSM2, and its renewal" of
/// docs/operations.md, run by bash as written; the CA it made then starts in the same
/// environment and issues under the renewed intermediate, with no key file anywhere.
#[test]
fn the_pkcs11_intermediate_runbook_runs_as_written_and_the_ca_issues_under_it() {
    use super::readme_recipe::{doc_block, report, run_in};
    require_binaries();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    // `init` wants an empty data directory: the runbook's ./ca links to this one.
    let ca_data = tmp.path().join("ca-data");
    std::fs::create_dir(&ca_data).unwrap();
    let runbook = doc_block(
        "docs/operations.md",
        "<!-- runbook: pkcs11-intermediate -->",
    );
    let out = run_in(&work, &ca_data, &runbook);
    assert!(out.status.success(), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("pkcs11:token=mesh-ca;object=intermediate-key"),
        "{}",
        report(&out)
    );
    assert!(
        stderr.contains("installed the renewed intermediate"),
        "{}",
        report(&out)
    );
    assert_eq!(
        std::fs::read_to_string(work.join("intermediate.crt")).unwrap(),
        std::fs::read_to_string(ca_data.join("intermediate.crt")).unwrap(),
        "the signed certificate is the one installed"
    );

    let conf = work.join("hsm/softhsm2.conf");
    let ca = testkit::start_ca_with_env(
        &programs::ca(),
        "ca",
        &ca_data,
        "127.0.0.1:0",
        &[],
        &[
            ("SOFTHSM2_CONF", conf.as_os_str()),
            ("MTLS_CA_PKCS11_MODULE", std::ffi::OsStr::new(MODULE)),
            ("MTLS_CA_PKCS11_PIN_FILE", work.join("pin").as_os_str()),
        ],
    );
    let server = enrolled_server(&ca, tmp.path(), &[]);
    let client = spawn_client(&ca, tmp.path(), &server, &["--count", "1"]);
    client.wait_for(|l| l.contains("[CLIENT] Response: 200 OK"), LONG);
    assert_no_ca_key_on_disk(&ca_data, &ca_data.join("intermediate.crt"));
}

#[test]
fn a_wrong_module_token_pin_or_object_is_named_and_creates_nothing() {
    require_binaries();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hsm = token(dir);
    let init = |pkcs11: &[&str], key: &str| {
        let mut args = pkcs11.to_vec();
        args.extend(["--data-dir", "ca", "init", "--key", key]);
        mtls_ca(&hsm, dir, &args)
    };
    let cases: [(Vec<&str>, &str, &str); 4] = [
        (
            pkcs11_args("wrong-pin"),
            KEY,
            "token \"mesh-ca\" refused the PIN from --pkcs11-pin-file (PinIncorrect)",
        ),
        (
            pkcs11_args("pin"),
            "pkcs11:token=other;object=ca-key",
            "no token labelled \"other\"",
        ),
        (
            vec![
                "--pkcs11-module",
                "/nonexistent/libpkcs11.so",
                "--pkcs11-pin-file",
                "pin",
            ],
            KEY,
            "--pkcs11-module /nonexistent/libpkcs11.so",
        ),
        (
            pkcs11_args("no-such-pin-file"),
            KEY,
            "--pkcs11-pin-file no-such-pin-file",
        ),
    ];
    for (pkcs11, key, says) in cases {
        let (ok, out, err) = init(&pkcs11, key);
        assert!(!ok, "{pkcs11:?} {key}: {out}");
        assert!(
            err.contains(says),
            "{pkcs11:?} {key}: expected {says:?} in {err}"
        );
        assert!(
            !dir.join("ca").exists(),
            "{pkcs11:?} {key}: created the data directory"
        );
    }
    let (ok, _, err) = mtls_ca(&hsm, dir, &["--data-dir", "ca", "init", "--key", KEY]);
    assert!(!ok);
    assert!(err.contains("--pkcs11-module"), "{err}");
    assert!(!dir.join("ca").exists());
    let (ok, _, err) = init(
        &pkcs11_args("pin"),
        "pkcs11:token=mesh-ca;object=ca-key;pin-value=4711",
    );
    assert!(!ok);
    assert!(err.contains("never put it in the URI"), "{err}");

    // A CA made right, then started wrong: each start is refused naming the fault, before the
    // data directory changes.
    let (ok, out, err) = init(&pkcs11_args("pin"), KEY);
    assert!(ok, "{out}{err}");
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(dir.join("ca"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let serve = |extra: &[&str]| {
        let mut args = vec!["--data-dir", "ca", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        mtls_ca(&hsm, dir, &args)
    };
    let (ok, _, err) = serve(&[]);
    assert!(!ok);
    assert!(
        err.contains("key is in a PKCS#11 token") && err.contains("--pkcs11-module"),
        "{err}"
    );
    let (ok, _, err) = serve(&pkcs11_args("wrong-pin"));
    assert!(!ok);
    assert!(err.contains("refused the PIN"), "{err}");
    std::fs::write(
        dir.join("ca/root.pkcs11"),
        "pkcs11:token=mesh-ca;object=gone\n",
    )
    .unwrap();
    let (ok, _, err) = serve(&pkcs11_args("pin"));
    assert!(!ok);
    assert!(
        err.contains("token \"mesh-ca\" holds no private key labelled \"gone\""),
        "{err}"
    );
    assert_eq!(
        listing(),
        before,
        "a refused start changed the data directory"
    );
}

/// The signing session is logged out behind the CA's back (as a token reset does): the next
/// signature reconnects and logs in again, and every signature verifies as ecdsa-with-SHA384
/// DER under the token's public key.
#[test]
fn the_token_session_reconnects_and_signatures_verify_as_x509_ecdsa() {
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_ASN1};
    use mtls_ca::pkcs11::{KeyUri, TokenAccess, TokenKey};
    use rcgen::{PublicKeyData, SigningKey};

    let tmp = tempfile::tempdir().unwrap();
    let hsm = token(tmp.path());
    // The module reads SOFTHSM2_CONF when it initialises, in this process; every test that
    // loads SoftHSM2 in-process must point it at its own configuration (only this one does).
    std::env::set_var("SOFTHSM2_CONF", &hsm.conf);
    let access = TokenAccess::new(Path::new(MODULE), &tmp.path().join("pin")).unwrap();
    let uri: KeyUri = KEY.parse().unwrap();
    let (key, generated) = TokenKey::open_or_generate(&access, &uri).unwrap();
    assert!(generated);
    let key = Arc::new(key);
    let ca_key = pki::CaKey::device(key.clone()).unwrap();
    let public = ca_key.der_bytes().to_vec();
    let verifier = UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &public);
    for round in 0..3u8 {
        let msg = [round; 200];
        let sig = ca_key.sign(&msg).unwrap();
        verifier.verify(&msg, &sig).unwrap();
        key.log_out_behind_its_back().unwrap();
    }
    // A second opening finds the same key (no second key is generated).
    let (again, generated) = TokenKey::open_or_generate(&access, &uri).unwrap();
    assert!(!generated);
    assert_eq!(
        pki::CaKey::device(Arc::new(again)).unwrap().der_bytes(),
        public.as_slice()
    );
}

/// A CA started on `data_dir` with the token's options, as `ca::common::Ca` (for the agent API).
fn start_token_ca_for_api(hsm: &SoftHsm, data_dir: &Path) -> crate::ca::common::Ca {
    let pin = data_dir.parent().unwrap().join("pin");
    let mut cmd = hsm.command(programs::ca());
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(["--pkcs11-module", MODULE, "--pkcs11-pin-file"])
        .arg(pin);
    crate::ca::common::Ca::try_start_command(data_dir, cmd)
        .unwrap_or_else(|e| panic!("CA did not start: {e}"))
}

/// An agent asks the CA for a JWT-SVID (`POST /api/v1/agent/jwt`); the token is checked
/// against the SPIFFE bundle's published keys. Returns the token's kid.
async fn jwt_svid_verifies_against_the_bundle(ca: &crate::ca::common::Ca, node: &str) -> String {
    use crate::ca::common::{admin_in, client, enroll};
    use pki::jwt_svid::{self, KeySet};

    let (agent, _) = enroll(ca, node).await;
    let workload = format!("{node}-web").replace("/agent/", "/service/");
    let out = admin_in(
        &ca.dir,
        &[
            "entry",
            "create",
            "--parent",
            node,
            "--spiffe-id",
            &workload,
            "--selector",
            "unix:uid:1000",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let entry = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let root = ca.root_pem();
    let resp = client(&root, Some(&agent))
        .post(ca.url("/api/v1/agent/jwt"))
        .json(&serde_json::json!({"entry_id": entry, "audience": ["db"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let jwt: serde_json::Value = resp.json().await.unwrap();
    let bundle: serde_json::Value = client(&root, None)
        .get(ca.url("/api/v1/bundle/spiffe"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = KeySet::from_jwks(&bundle).unwrap();
    assert_eq!(keys.len(), 1, "{bundle}");
    let token = jwt["token"].as_str().unwrap();
    let claims = jwt_svid::verify(token, &keys, "db", time::OffsetDateTime::now_utc())
        .unwrap_or_else(|e| panic!("{e}: {token} against {bundle}"));
    assert_eq!(claims.sub.to_string(), workload);
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// With the CA key in the token, `init` makes the JWT-SVID key there too (sensitive, never
/// extractable, labelled after the CA key) and no `jwt.key` exists; JWT-SVIDs the CA mints
/// verify against the published keys. A CA that already has a `jwt.key` (made before keys
/// moved into the token) keeps using it and its kid; moving that file away (docs/operations.md)
/// brings back the token's key.
#[tokio::test]
async fn a_token_ca_signs_jwt_svids_with_a_key_in_the_token_and_an_existing_jwt_key_keeps_its_kid()
{
    require_binaries();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hsm = token(dir);
    let mut args = pkcs11_args("pin");
    args.extend(["--data-dir", "ca", "init", "--key", KEY]);
    let (ok, out, err) = mtls_ca(&hsm, dir, &args);
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("JWT-SVIDs are signed by pkcs11:token=mesh-ca;object=ca-key-jwt"),
        "{err}"
    );
    let data = dir.join("ca");
    assert_eq!(
        std::fs::read_to_string(data.join("jwt.pkcs11")).unwrap(),
        "pkcs11:token=mesh-ca;object=ca-key-jwt\n"
    );
    assert!(!data.join("jwt.key").exists());

    // Both keys in the token, each sensitive and never extractable.
    let objects = private_key_objects(&hsm);
    assert_eq!(objects.len(), 2, "{objects:?}");
    let jwt_object = objects
        .iter()
        .find(|o| o.contains("label:      ca-key-jwt"))
        .unwrap_or_else(|| panic!("no ca-key-jwt object: {objects:?}"));
    assert!(jwt_object.contains("EC"), "{jwt_object}");
    assert!(jwt_object.contains("sensitive"), "{jwt_object}");
    assert!(jwt_object.contains("never extractable"), "{jwt_object}");

    let ca = start_token_ca_for_api(&hsm, &data);
    assert!(
        ca.logs()
            .contains("JWT-SVIDs signed by the token key pkcs11:token=mesh-ca;object=ca-key-jwt"),
        "{}",
        ca.logs()
    );
    let token_kid =
        jwt_svid_verifies_against_the_bundle(&ca, "spiffe://mesh.local/agent/node1").await;
    assert_no_ca_key_on_disk(&data, &data.join("root.crt"));
    let data = ca.stop();

    // A CA from before: a jwt.key in the data directory, no jwt.pkcs11. It keeps its key.
    std::fs::remove_file(data.join("jwt.pkcs11")).unwrap();
    let old = pki::keys::generate(pki::Curve::P384).unwrap();
    std::fs::write(data.join("jwt.key"), old.serialize_pem()).unwrap();
    let old_kid = pki::jwt_svid::JwtSigner::from_pkcs8(&old.serialize_der())
        .unwrap()
        .kid()
        .to_string();
    let ca = start_token_ca_for_api(&hsm, &data);
    let kid = jwt_svid_verifies_against_the_bundle(&ca, "spiffe://mesh.local/agent/node2").await;
    assert_eq!(kid, old_kid, "an existing jwt.key keeps signing");
    assert!(!data.join("jwt.pkcs11").exists());
    let data = ca.stop();

    // Moved to the token: jwt.key moved away, the token's JWT key signs again.
    std::fs::rename(data.join("jwt.key"), dir.join("jwt.key.old")).unwrap();
    let ca = start_token_ca_for_api(&hsm, &data);
    let kid = jwt_svid_verifies_against_the_bundle(&ca, "spiffe://mesh.local/agent/node3").await;
    assert_eq!(kid, token_kid);
    assert_eq!(
        std::fs::read_to_string(data.join("jwt.pkcs11")).unwrap(),
        "pkcs11:token=mesh-ca;object=ca-key-jwt\n"
    );
    assert_eq!(private_key_objects(&hsm).len(), 2, "no second JWT key");
    ca.stop();
}
