//! Helpers shared by the integration tests: run the real binary, make a test PKI with the
//! mtls-mesh issuance policy, and call the `openssl` CLI.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pki::policy::{IssuancePolicy, LeafRequest};
use pki::{CaMaterial, Curve, SpiffeId};
use rcgen::PublicKeyData;
use time::{Duration, OffsetDateTime};

use crate::programs;

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out
                .status
                .code()
                .expect("exit code (not killed by a signal)"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `mtls-inspect ARGS` in `dir` (so file names in the output are relative).
pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    Run::from(
        Command::new(programs::inspect())
            .args(args)
            .current_dir(dir)
            // No terminal anywhere, so clap wraps --help at a fixed width.
            .stdin(Stdio::null())
            .env("COLUMNS", "100")
            .output()
            .expect("running mtls-inspect"),
    )
}

pub fn run(args: &[&str]) -> Run {
    run_in(Path::new("."), args)
}

/// Runs `mtls-inspect ARGS` with `input` on stdin.
pub fn run_stdin(args: &[&str], input: &[u8]) -> Run {
    let mut child = Command::new(programs::inspect())
        .args(args)
        .env("COLUMNS", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning mtls-inspect");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // Write from a thread so a large input cannot deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("waiting for mtls-inspect");
    writer.join().expect("stdin writer");
    Run::from(out)
}

/// The committed fixtures (crates/inspect/tests/data, shared with the library's own tests).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../inspect/tests/data")
        .canonicalize()
        .expect("crates/inspect/tests/data")
}

/// Runs `openssl ARGS` in `dir`; panics with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throw-away PKI in a temporary directory, with a root made exactly like the CA's.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub root: CaMaterial,
}

impl Pki {
    pub fn new(now: OffsetDateTime) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let root = CaMaterial::generate_root("Test Root", now).unwrap();
        std::fs::write(dir.path().join("root.pem"), root.cert_pem()).unwrap();
        Pki { dir, root }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Writes the root's key (for OpenSSL to sign with) and returns its path.
    pub fn root_key(&self) -> PathBuf {
        self.write("root.key", self.root.key_pem().unwrap())
    }

    /// A leaf issued by the CA's policy; writes NAME (PEM) and NAME.key, returns the DER.
    pub fn leaf(
        &self,
        name: &str,
        id: &str,
        curve: Curve,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Vec<u8> {
        let key = pki::keys::generate(curve).unwrap();
        let spki = key.subject_public_key_info();
        let id = SpiffeId::parse(id).unwrap();
        let dns = vec!["localhost".to_string()];
        let ips = vec!["127.0.0.1".parse().unwrap()];
        let issued = IssuancePolicy::default()
            .issue(
                &LeafRequest {
                    spiffe_id: &id,
                    dns: &dns,
                    ips: &ips,
                    spki_der: &spki,
                    ttl,
                    now,
                },
                &self.root,
            )
            .unwrap();
        self.write(name, &issued.pem);
        self.write(&format!("{name}.key"), key.serialize_pem());
        issued.der
    }
}

pub fn now() -> OffsetDateTime {
    let n = OffsetDateTime::now_utc();
    n.replace_nanosecond(0).unwrap()
}

/// Parses the JSON of a run's stdout.
pub fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", r.stdout))
}
