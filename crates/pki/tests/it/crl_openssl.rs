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
