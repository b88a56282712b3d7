//! Test harness: a real `mtls-ca` process on 127.0.0.1:0 with its own data directory (run as a
//! `testkit::Proc`: every output line kept, waited on with a deadline, killed on drop), an
//! HTTPS client with optional client certificate, and helpers to make CSRs.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use testkit::Proc;

use crate::programs;

/// How long a CA may take to print its listening line, and a one-shot command to finish.
const DEADLINE: Duration = Duration::from_secs(30);

pub struct Ca {
    pub proc: Proc,
    pub dir: PathBuf,
    pub port: u16,
    pub fingerprint: String,
    _tmp: Option<tempfile::TempDir>,
}

/// `mtls-ca --data-dir DIR --listen 127.0.0.1:0 EXTRA...`
fn serve_command(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(programs::ca());
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra);
    cmd
}

impl Ca {
    /// Starts a CA on a fresh data directory.
    pub fn start(extra: &[&str]) -> Ca {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let mut ca = Ca::start_in(&dir, extra);
        ca._tmp = Some(tmp);
        ca
    }

    /// Starts a CA on `dir` (which may already hold a root and database).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Ca {
        Self::try_start_in(dir, extra).unwrap_or_else(|e| panic!("CA did not start: {e}"))
    }

    /// Starts a CA on `dir`; Err is its output when it exits (or stays silent) instead.
    pub fn try_start_in(dir: &Path, extra: &[&str]) -> Result<Ca, String> {
        Self::try_start_command(dir, serve_command(dir, extra))
    }

    /// Runs `cmd`, which must start a CA serving `dir` (for example through `sh -c` to set a
    /// umask), and waits for its fingerprint and listening lines.
    pub fn try_start_command(dir: &Path, cmd: Command) -> Result<Ca, String> {
        let mut proc = Proc::spawn("mtls-ca", cmd);
        let Some(listening) =
            proc.try_wait_for_after(0, |l| l.starts_with("listening on https://"), DEADLINE)
        else {
            proc.kill();
            return Err(proc.output());
        };
        let port = listening
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no port in {listening:?}"));
        // stdout and stderr are read by separate threads: the "endpoints:" line is the last
        // thing the CA writes to stderr at start, so once it is seen every earlier log line
        // (root adoption, tightened modes, a finished first start) is in `logs()` too.
        if proc
            .try_wait_for_after(0, |l| l.starts_with("endpoints: "), DEADLINE)
            .is_none()
        {
            proc.kill();
            return Err(proc.output());
        }
        let fingerprint = proc
            .stdout()
            .lines()
            .find_map(|l| l.strip_prefix("root fingerprint (SHA-256): "))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no fingerprint line:\n{}", proc.output()));
        Ok(Ca {
            proc,
            dir: dir.to_path_buf(),
            port,
            fingerprint,
            _tmp: None,
        })
    }

    /// Runs `mtls-ca` on `dir` expecting it to refuse to start. Returns the exit code and
    /// stderr; panics (after killing it) if it starts serving instead.
    pub fn start_refused(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
        let mut proc = Proc::spawn("mtls-ca", serve_command(dir, extra));
        // The event is either the "listening on" line (it started) or its output closing (it
        // exited).
        if proc
            .try_wait_for_after(0, |l| l.starts_with("listening on "), DEADLINE)
            .is_some()
        {
            proc.kill();
            panic!(
                "mtls-ca started although it should have refused:\n{}",
                proc.output()
            );
        }
        let status = exited(&mut proc);
        (status.code(), proc.stderr())
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.port, path)
    }

    pub fn root_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("root.crt")).unwrap()
    }

    /// Everything the CA wrote on stderr so far (its log).
    pub fn logs(&self) -> String {
        self.proc.stderr()
    }

    /// Runs an admin subcommand on this CA's data directory.
    pub fn admin(&self, args: &[&str]) -> Output {
        admin_in(&self.dir, args)
    }

    /// Creates a join token; panics with the CLI's stderr if that fails.
    pub fn token(&self, id: &str, extra: &[&str]) -> String {
        let mut args = vec!["token", "--spiffe-id", id];
        args.extend_from_slice(extra);
        let out = self.admin(&args);
        assert!(
            out.status.success(),
            "token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// The audit chain's head (`mtls-ca audit head`): moves with every stored change.
    pub fn audit_head(&self) -> String {
        let out = self.admin(&["audit", "head"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Number of certificates in the store, read through the `list` subcommand.
    pub fn cert_count(&self) -> usize {
        let out = self.admin(&["list", "--format", "json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["certificates"].as_array().unwrap().len()
    }

    /// SIGKILL: no shutdown code runs. Returns the data directory, kept for a restart.
    pub fn kill9(mut self) -> PathBuf {
        self.proc.kill();
        self.keep_dir()
    }

    /// SIGTERM, then waits for the exit. Returns the data directory, kept for a restart.
    pub fn stop(mut self) -> PathBuf {
        self.proc.terminate();
        exited(&mut self.proc);
        self.keep_dir()
    }

    fn keep_dir(&mut self) -> PathBuf {
        std::mem::forget(self._tmp.take().map(|t| t.keep()));
        self.dir.clone()
    }
}

/// Waits for `proc` to exit; panics with its output if it does not within the deadline.
fn exited(proc: &mut Proc) -> ExitStatus {
    proc.wait_exit(DEADLINE)
        .unwrap_or_else(|| panic!("{} did not exit:\n{}", proc.name, proc.output()))
}

/// Runs `mtls-ca --data-dir DIR ARGS...` to completion.
pub fn admin_in(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(programs::ca());
    cmd.arg("--data-dir").arg(dir).args(args);
    output_of("mtls-ca", cmd)
}

/// Runs `cmd` to completion as a `Proc` and returns what it printed, line by line.
fn output_of(name: &str, cmd: impl std::borrow::BorrowMut<Command>) -> Output {
    let mut proc = Proc::spawn(name, cmd);
    let status = exited(&mut proc);
    let text = |s: String| if s.is_empty() { s } else { s + "\n" };
    Output {
        status,
        stdout: text(proc.stdout()).into_bytes(),
        stderr: text(proc.stderr()).into_bytes(),
    }
}

/// A client certificate and key usable over mTLS.
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

/// An HTTPS client trusting `root_pem`, TLS 1.3 only, optionally with a client certificate.
pub fn client(root_pem: &[u8], identity: Option<&Identity>) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(root_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                    .map(|c| c.unwrap())
                    .collect();
            let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A CSR for a fresh key on `alg`, asking for `sans` (rcgen; EC keys only).
pub fn csr(alg: &'static rcgen::SignatureAlgorithm, sans: &[&str]) -> (KeyPair, String) {
    let key = KeyPair::generate_for(alg).unwrap();
    let params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

/// Another CSR for an existing key (ECDSA signatures are randomised: new bytes, same key).
pub fn csr_for(key: &KeyPair) -> String {
    CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

/// Renews over mTLS as `holder` with `csr`; returns status and parsed JSON.
pub async fn renew(ca: &Ca, holder: &Identity, csr: &str) -> (u16, serde_json::Value) {
    let resp = client(&ca.root_pem(), Some(holder))
        .post(ca.url("/api/v1/renew"))
        .json(&serde_json::json!({ "csr": csr }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Every stored certificate by serial, as `mtls-ca list --format json` shows it.
pub fn certs_by_serial(ca: &Ca) -> std::collections::HashMap<String, serde_json::Value> {
    let out = ca.admin(&["list", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["serial"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

pub fn sign_body(csr: &str, id: &str, ttl: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::json!({"csr": csr, "requested_id": id});
    if let Some(t) = ttl {
        v["ttl"] = serde_json::Value::from(t);
    }
    v
}

/// Sends a sign request; returns status and parsed JSON.
pub async fn sign(
    http: &reqwest::Client,
    ca: &Ca,
    token: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = http
        .post(ca.url("/api/v1/sign"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Enrolls `id` and returns the identity (fresh P-384 key) and the response.
pub async fn enroll(ca: &Ca, id: &str) -> (Identity, serde_json::Value) {
    let token = ca.token(id, &[]);
    let (key, csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (status, v) = sign(
        &client(&ca.root_pem(), None),
        ca,
        &token,
        &sign_body(&csr, id, None),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    (
        Identity {
            cert_pem: v["certificate"].as_str().unwrap().to_string(),
            key_pem: key.serialize_pem(),
        },
        v,
    )
}

/// Runs a command and returns (success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = output_of("command", cmd);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
