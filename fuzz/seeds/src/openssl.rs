//! The system `openssl`, run in one temporary directory that holds every key it makes and is
//! removed at the end.

use std::path::Path;
use std::process::Command;

pub struct OpenSsl {
    dir: tempfile::TempDir,
}

impl OpenSsl {
    pub fn new() -> OpenSsl {
        OpenSsl {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `openssl args...` in the directory; returns its standard output.
    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir())
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl (install it): {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir().join(name)).unwrap()
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.dir().join(name), bytes).unwrap();
    }

    /// A new key of `spec` ("ec:P-256", "rsa:2048", "ed25519", "ec:secp256k1") in `name`.
    pub fn key(&self, name: &str, spec: &str) {
        let mut args: Vec<String> = match spec.split_once(':') {
            Some(("ec", curve)) => vec![
                "-algorithm".into(),
                "EC".into(),
                "-pkeyopt".into(),
                format!("ec_paramgen_curve:{curve}"),
            ],
            Some(("rsa", bits)) => vec![
                "-algorithm".into(),
                "RSA".into(),
                "-pkeyopt".into(),
                format!("rsa_keygen_bits:{bits}"),
            ],
            _ => vec!["-algorithm".into(), spec.into()],
        };
        args.insert(0, "genpkey".into());
        args.extend(["-out".into(), name.into()]);
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// A self-signed CA certificate (PEM in `name.crt`, key in `name.key`) with `key_usage`.
    pub fn root(&self, name: &str, spec: &str, cn: &str, key_usage: &str) -> Vec<u8> {
        let key = format!("{name}.key");
        let crt = format!("{name}.crt");
        self.key(&key, spec);
        self.run(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            &format!("keyUsage=critical,{key_usage}"),
            "-out",
            &crt,
        ]);
        self.read(&crt)
    }

    /// PEM to DER for `kind` ("x509", "req", "crl").
    pub fn der(&self, kind: &str, pem_file: &str) -> Vec<u8> {
        self.run(&[kind, "-in", pem_file, "-outform", "DER"])
    }
}
