//! The CA key in a PKCS#11 token (SoftHSM2 in a temp dir of the test's own): `mtls-ca init
//! --key pkcs11:…` makes a root (or an offline root's intermediate) whose key is generated in
//! the token; the CA then issues, renews and revokes (a CRL signed in the token, enforced by a
//! server), and no file in the data directory holds the CA key. A wrong module, token, PIN or
//! object is refused, named, with nothing created. The signing session reconnects when the
//! token logs it out.

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

/// Only the JWT-SVID key (a file by design, docs/security.md) may be a private key in the data
/// directory, and it is not the CA key.
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
    assert_eq!(names, ["jwt.key"], "private keys in the data directory");
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
    let (ok, out, err) = mtls_ca(&hsm, dir, &args);
    assert!(ok, "{out}{err}");
    assert!(dir.join("ca/intermediate.pkcs11").exists());
    assert!(!dir.join("ca/intermediate.key").exists());

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
        err.contains("the CA key is in a PKCS#11 token") && err.contains("--pkcs11-module"),
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
