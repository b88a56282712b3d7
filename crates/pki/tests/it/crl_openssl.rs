//! CRLs made by OpenSSL (`openssl ca -gencrl`) against the strict CRL path: with a crlnumber
//! file and the root of scripts/gen-root-ca.sh they pass; without a crlnumber file, or from a
//! root without cRLSign, they are refused with the error that says so.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;

use pki::crl::{verify_crl, CrlError};
use pki::verify::{TrustStore, VerifyError};

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl ca -gencrl` with the CA files in `dir`, revoking nothing; `crlnumber` adds the
/// CRL number file. Returns the DER CRL.
fn gencrl(dir: &Path, crlnumber: bool) -> Vec<u8> {
    std::fs::write(dir.join("index.txt"), "").unwrap();
    let mut cnf = String::from(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ndefault_md = sha384\n\
         default_crl_days = 1\n",
    );
    if crlnumber {
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        cnf.push_str("crlnumber = crlnumber\n");
    }
    std::fs::write(dir.join("ca.cnf"), cnf).unwrap();
    run(
        dir,
        "openssl",
        &[
            "ca", "-gencrl", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt", "-out",
            "crl.pem",
        ],
    );
    run(
        dir,
        "openssl",
        &[
            "crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der",
        ],
    );
    std::fs::read(dir.join("crl.der")).unwrap()
}

fn root(dir: &Path) -> rustls_pki_types::CertificateDer<'static> {
    let pem = std::fs::read(dir.join("ca.crt")).unwrap();
    pki::pem::parse_certificates(&pem).unwrap().remove(0)
}

#[test]
fn a_crl_from_the_openssl_scripts_root_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gen-root-ca.sh");
    run(
        tmp.path(),
        "bash",
        &[script.to_str().unwrap(), dir.to_str().unwrap()],
    );
    let der = gencrl(&dir, true);
    let crl = verify_crl(&der, &[root(&dir)]).unwrap();
    assert_eq!(crl.crl_number, vec![1]);
    assert!(crl.serials.is_empty());
    TrustStore::new(&[root(&dir)], &[der]).unwrap();

    // The same CA without a crlnumber file: no CRL Number, refused with the fix.
    let der = gencrl(&dir, false);
    let err = verify_crl(&der, &[root(&dir)]).unwrap_err();
    assert!(matches!(err, CrlError::NoCrlNumber { .. }), "{err}");
    assert!(
        err.to_string().contains("create the crlnumber file"),
        "{err}"
    );
    let err = TrustStore::new(&[root(&dir)], &[der]).unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::Crl {
                error: CrlError::NoCrlNumber { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_crl_from_an_openssl_root_without_crl_sign_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run(
        dir,
        "openssl",
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
            "/CN=Cert Signer Only",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-out",
            "ca.crt",
        ],
    );
    let der = gencrl(dir, true);
    let err = verify_crl(&der, &[root(dir)]).unwrap_err();
    assert_eq!(
        err,
        CrlError::IssuerNotCrlSigner {
            issuer: "CN=Cert Signer Only".into(),
            present: vec!["keyCertSign".into()],
        }
    );
}

/// Our CRL for a root made by OpenSSL (SHA-1 subjectKeyIdentifier) names that identifier as its
/// authorityKeyIdentifier: OpenSSL-based verifiers (HAProxy, nginx, stunnel) find a CRL's
/// issuer by it, and refused every client with "unable to get certificate CRL" before.
#[test]
fn our_crl_for_an_openssl_root_is_found_by_openssl_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let gen = scripts.join("gen-root-ca.sh");
    run(
        tmp.path(),
        "bash",
        &[gen.to_str().unwrap(), dir.to_str().unwrap()],
    );
    let sign = scripts.join("sign-client-cert.sh");
    let dir_s = dir.to_str().unwrap();
    for name in ["alice", "mallory"] {
        let id = format!("spiffe://mesh.local/service/{name}");
        run(
            tmp.path(),
            "bash",
            &[sign.to_str().unwrap(), dir_s, name, "--spiffe-id", &id],
        );
    }
    let ca = pki::CaMaterial::load(
        &std::fs::read(dir.join("ca.crt")).unwrap(),
        &std::fs::read(dir.join("ca.key")).unwrap(),
    )
    .unwrap();
    let mallory = pki::pem::parse_certificates(&std::fs::read(dir.join("mallory.crt")).unwrap())
        .unwrap()
        .remove(0);
    let serial_hex = {
        use x509_parser::prelude::FromDer;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&mallory).unwrap();
        hex::encode(cert.raw_serial())
    };
    let now = time::OffsetDateTime::now_utc();
    let der = pki::crl::sign_crl(
        &ca,
        &[pki::crl::RevokedEntry {
            serial_hex,
            revoked_at: now - time::Duration::minutes(1),
            reason: None,
        }],
        1,
        now - time::Duration::minutes(1),
        now + time::Duration::hours(1),
    )
    .unwrap();
    std::fs::write(dir.join("ours.crl"), pki::pem::encode("X509 CRL", &der)).unwrap();
    let verify = |name: &str| {
        Command::new("openssl")
            .args([
                "verify",
                "-crl_check",
                "-CAfile",
                "ca.crt",
                "-CRLfile",
                "ours.crl",
            ])
            .arg(format!("{name}.crt"))
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let alice = verify("alice");
    assert!(
        alice.status.success(),
        "OpenSSL did not find our CRL for its root: {}{}",
        String::from_utf8_lossy(&alice.stdout),
        String::from_utf8_lossy(&alice.stderr)
    );
    let refused = verify("mallory");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!refused.status.success(), "{text}");
    assert!(text.contains("certificate revoked"), "{text}");
}
