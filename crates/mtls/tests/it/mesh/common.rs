//! Shared setup for the binary-level tests: a static-file PKI in a temp dir and helpers to run
//! mtls-client, curl and openssl with timeouts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use tempfile::TempDir;
use testkit::{Leaf, TestCa};

use crate::programs;

pub const CLIENT_ID: &str = "spiffe://mesh.local/service/payment-worker";
pub const SERVER_ID: &str = "spiffe://mesh.local/service/api-server";
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct StaticPki {
    pub dir: TempDir,
    pub ca: TestCa,
    pub ca_path: PathBuf,
    pub server: Leaf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client: Leaf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl StaticPki {
    pub fn new() -> StaticPki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("Test Root");
        let ca_path = ca.write_root(dir.path(), "ca.crt");
        let server = ca.server(SERVER_ID);
        let (server_cert, server_key) = server.write(dir.path(), "server");
        let client = ca.client(CLIENT_ID);
        let (client_cert, client_key) = client.write(dir.path(), "client");
        StaticPki {
            dir,
            ca,
            ca_path,
            server,
            server_cert,
            server_key,
            client,
            client_cert,
            client_key,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// mtls-server arguments for static mode.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--cert".into(),
            s(&self.server_cert),
            "--key".into(),
            s(&self.server_key),
            "--ca-cert".into(),
            s(&self.ca_path),
        ]
    }

    /// mtls-client static-mode arguments with the given certificate files.
    pub fn client_args_with(&self, cert: &Path, key: &Path, server_url: &str) -> Vec<String> {
        vec![
            "--cert".into(),
            s(cert),
            "--key".into(),
            s(key),
            "--ca-cert".into(),
            s(&self.ca_path),
            "--server".into(),
            server_url.into(),
        ]
    }

    pub fn client_args(&self, server_url: &str) -> Vec<String> {
        self.client_args_with(&self.client_cert, &self.client_key, server_url)
    }
}

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Runs mtls-client; returns (status, stdout, all output).
pub fn run_client(args: &[String]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(programs::client());
    cmd.args(args);
    testkit::run("mtls-client", cmd, RUN_TIMEOUT)
}

/// Runs curl with a 20 s limit; returns (status, stdout, all output).
pub fn run_curl(args: &[&str]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20"]).args(args);
    testkit::run("curl", cmd, RUN_TIMEOUT)
}

/// Runs `openssl s_client` with stdin closed (it sends nothing and quits after the handshake).
pub fn run_s_client(args: &[&str]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client").args(args);
    testkit::run("openssl s_client", cmd, RUN_TIMEOUT)
}

/// Starts `openssl s_server -tls1_3 -Verify 1 ... -www` serving `cert`/`key` for one
/// connection (a peer that, unlike mtls-server, does not check its own certificate); returns
/// it and its port.
pub fn s_server(pki: &StaticPki, cert: &Path, key: &Path, group: &str) -> (testkit::Proc, u16) {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_server", "-tls1_3", "-Verify", "1", "-www", "-naccept", "1",
    ])
    .args(["-accept", "127.0.0.1:0", "-groups", group])
    .arg("-cert")
    .arg(cert)
    .arg("-key")
    .arg(key)
    .arg("-CAfile")
    .arg(&pki.ca_path);
    let proc = testkit::Proc::spawn("s_server", cmd);
    let line = proc.wait_for(
        |l| l.starts_with("ACCEPT "),
        std::time::Duration::from_secs(10),
    );
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .expect("port");
    (proc, port)
}
