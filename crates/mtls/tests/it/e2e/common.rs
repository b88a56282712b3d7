//! Shared helpers for the end-to-end tests (CA + server + client as real processes).
//! The programs are this test binary's (`crate::programs`).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::programs::{self, start_server};
use testkit::{CaProc, Proc, ServerProc};

pub const SERVER_ID: &str = "spiffe://mesh.local/service/api-server";
pub const CLIENT_ID: &str = "spiffe://mesh.local/service/payment-worker";

pub fn require_binaries() {
    programs::require(&["mtls-ca", "mtls-server", "mtls-client"]);
}

/// Writes a join token for `id` into DIR/NAME.token and returns the path.
pub fn token_file(ca: &CaProc, dir: &Path, name: &str, id: &str, extra: &[&str]) -> String {
    let token = ca.token(id, extra);
    let path = dir.join(format!("{name}.token"));
    std::fs::write(&path, token).expect("write token");
    path.display().to_string()
}

/// Enrolled-mode arguments for a service.
pub fn enrolled_args(ca: &CaProc, id: &str, token_file: &str) -> Vec<String> {
    vec![
        "--ca-url".into(),
        ca.url(),
        "--ca-fingerprint".into(),
        ca.fingerprint.clone(),
        "--spiffe-id".into(),
        id.into(),
        "--join-token-file".into(),
        token_file.into(),
    ]
}

/// Starts an enrolled mtls-server for SERVER_ID (token allows localhost and 127.0.0.1).
pub fn enrolled_server(ca: &CaProc, dir: &Path, extra: &[&str]) -> ServerProc {
    let token = token_file(
        ca,
        dir,
        "server",
        SERVER_ID,
        &["--dns", "localhost", "--ip", "127.0.0.1"],
    );
    let mut args = enrolled_args(ca, SERVER_ID, &token);
    args.extend(extra.iter().map(|s| s.to_string()));
    start_server("server", &args)
}

/// Starts mtls-client (enrolled as CLIENT_ID) as a background process.
pub fn spawn_client(ca: &CaProc, dir: &Path, server: &ServerProc, extra: &[&str]) -> Proc {
    let token = token_file(ca, dir, "client", CLIENT_ID, &[]);
    let mut cmd = Command::new(programs::client());
    cmd.args(enrolled_args(ca, CLIENT_ID, &token))
        .args(["--server", &server.url()])
        .args(extra)
        .env("RUST_LOG", "info");
    Proc::spawn("client", cmd)
}

pub const LONG: Duration = Duration::from_secs(60);

/// The value of the CA's series `prefix` (read with curl, verifying the CA against its root).
pub fn ca_metric(ca: &CaProc, prefix: &str) -> u64 {
    let metrics = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(ca.data_dir.join("root.crt"))
        .arg(format!("https://localhost:{}/metrics", ca.port))
        .output()
        .expect("curl must be installed (Debian package curl)");
    assert!(metrics.status.success(), "{metrics:?}");
    let text = String::from_utf8_lossy(&metrics.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no series {prefix}:\n{text}"))
}

/// The two-tier rotate step (docs/operations.md, "Root rotation of a two-tier CA"): a CSR on
/// the CA host, the ceremony where the root is (no data directory), `root rotate --from` on
/// the CA host. `global` goes before each CA-host subcommand (`--store URL` for replicas).
/// Returns the last command's stdout (the new root's fingerprint line).
pub fn two_tier_rotate(
    work: &Path,
    ca_dir: &Path,
    global: &[&str],
    old_offline: &Path,
    new_offline: &Path,
    pass: &Path,
) -> String {
    let on_ca_host = |args: &[&str]| {
        let mut cmd = Command::new(programs::ca());
        cmd.arg("--data-dir").arg(ca_dir).args(global).args(args);
        let (status, stdout, out) = testkit::run("mtls-ca", cmd, LONG);
        assert!(status.success(), "{args:?}: {out}");
        stdout
    };
    let csr_file = work.join("intermediate.csr");
    std::fs::write(&csr_file, on_ca_host(&["intermediate", "csr"])).expect("csr");
    let rotation = work.join("rotation.pem");
    let mut cmd = Command::new(programs::ca());
    cmd.args(["root", "rotate", "--root-key"])
        .arg(old_offline)
        .arg("--passphrase-file")
        .arg(pass)
        .arg("--new-offline-root")
        .arg(new_offline)
        .arg("--new-passphrase-file")
        .arg(pass)
        .arg("--csr")
        .arg(&csr_file)
        .arg("--out")
        .arg(&rotation);
    let (status, ceremony_out, out) = testkit::run("mtls-ca", cmd, LONG);
    assert!(status.success(), "{out}");
    let text = std::fs::read_to_string(&rotation).expect("rotation file");
    assert!(!text.contains("PRIVATE KEY"), "certificates only: {text}");
    let from = rotation.display().to_string();
    let stdout = on_ca_host(&["root", "rotate", "--from", &from]);
    assert_eq!(stdout, ceremony_out, "both name the new root");
    stdout
}
