//! Test harness: a real `mtls-ca` process on 127.0.0.1:0 with its own data directory, an HTTPS
//! client with optional client certificate, and helpers to make CSRs.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::programs;

pub struct Ca {
    pub child: Child,
    pub dir: PathBuf,
    pub port: u16,
    pub fingerprint: String,
    pub stderr_log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
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

    pub fn try_start_in(dir: &Path, extra: &[&str]) -> Result<Ca, String> {
        let stderr_log = dir.with_extension(format!("stderr-{}.log", std::process::id()));
        let stderr = std::fs::File::create(&stderr_log).unwrap();
        let mut child = Command::new(programs::ca())
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn mtls-ca");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut fingerprint = None;
        let mut port = None;
        while port.is_none() {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(fp) = line.strip_prefix("root fingerprint (SHA-256): ") {
                        fingerprint = Some(fp.to_string());
                    }
                    if let Some(url) = line.strip_prefix("listening on https://127.0.0.1:") {
                        port = Some(url.parse::<u16>().unwrap());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(std::fs::read_to_string(&stderr_log).unwrap_or_default());
                }
            }
        }
        Ok(Ca {
            child,
            dir: dir.to_path_buf(),
            port: port.unwrap(),
            fingerprint: fingerprint.expect("fingerprint line"),
            stderr_log,
            _tmp: None,
        })
    }

    /// Runs `mtls-ca` on `dir` expecting it to refuse to start. Returns the exit code and
    /// stderr; panics (after killing it) if it starts serving instead.
    pub fn start_refused(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
        let mut child = Command::new(programs::ca())
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mtls-ca");
        let stdout = child.stdout.take().unwrap();
        // The event is either the "listening on" line (it started) or EOF on stdout (it exited).
        let started = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.starts_with("listening on "));
        if started {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "mtls-ca started although it should have refused:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.port, path)
    }

    pub fn root_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("root.crt")).unwrap()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Runs an admin subcommand on this CA's data directory.
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        Command::new(programs::ca())
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap()
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

    pub fn kill9(mut self) -> PathBuf {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let dir = self.dir.clone();
        std::mem::forget(self._tmp.take().map(|t| t.keep()));
        dir
    }

    pub fn stop(mut self) -> PathBuf {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let dir = self.dir.clone();
        std::mem::forget(self._tmp.take().map(|t| t.keep()));
        dir
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_log);
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
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
