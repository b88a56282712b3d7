//! py-spiffe, the Python `spiffe` package (a Workload API client nobody here wrote), installed
//! into a throwaway venv: it fetches an X.509-SVID, a JWT-SVID it validates, sees a rotation on
//! the stream, and calls mtls-server with its SVID. The entry selects the Python interpreter by
//! path and uid, so attestation by executable is exercised too. The test fails (it does not
//! skip) when the package cannot be installed: CI has pip access.

use std::process::Command;

use super::common::*;
use crate::programs;

const SERVER_ID: &str = "spiffe://mesh.local/service/api-server";

#[test]
fn py_spiffe_fetches_svids_and_calls_mtls_server() {
    let agent = start();
    let venv = crate::venv::with_package(agent.dir.path(), "spiffe==0.3.2");
    // The interpreter the venv runs, as /proc/<pid>/exe shows it.
    let python = std::fs::canonicalize(venv.join("bin/python")).unwrap();
    let mark = agent.proc.mark();
    agent.entry(
        WEB_ID,
        &[
            &format!("unix:uid:{}", my_uid()),
            &format!("unix:path:{}", python.display()),
        ],
        &["--ttl", "4s"],
    );
    agent.wait_minted(mark, WEB_ID);

    let token = agent.dir.path().join("server.token");
    std::fs::write(
        &token,
        agent
            .ca
            .token(SERVER_ID, &["--dns", "localhost", "--ip", "127.0.0.1"]),
    )
    .unwrap();
    let server = programs::start_server(
        "server",
        &[
            "--ca-url".into(),
            agent.ca.url(),
            "--ca-fingerprint".into(),
            agent.ca.fingerprint.clone(),
            "--spiffe-id".into(),
            SERVER_ID.into(),
            "--join-token-file".into(),
            s(&token),
        ],
    );
    let port = server.addr().rsplit(':').next().unwrap().to_string();

    let script = agent.dir.path().join("py_client.py");
    std::fs::write(&script, include_str!("py_client.py")).unwrap();
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(agent.endpoint())
        .arg(agent.dir.path())
        .arg(&port)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        format!("X509 {WEB_ID}"),
        format!("JWT {WEB_ID}"),
        format!("VALID {WEB_ID}"),
        "REFUSED another audience".to_string(),
        "ROTATED".to_string(),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?}:\n{stdout}\n{stderr}"
        );
    }
    let http = stdout
        .lines()
        .find(|l| l.starts_with("HTTP "))
        .unwrap_or_default();
    assert!(http.starts_with("HTTP 200"), "{stdout}\n{stderr}");
    assert!(
        http.contains(WEB_ID),
        "the server saw the Python workload's SVID: {http}"
    );

    // The same interpreter as another uid matches no entry.
    let denied = Command::new("setpriv")
        .args(["--reuid", "1000", "--regid", "1000", "--clear-groups"])
        .arg(venv.join("bin/python"))
        .args(["-c", "import sys\nfrom spiffe import WorkloadApiClient\ntry:\n  WorkloadApiClient(socket_path=sys.argv[1], default_timeout=10).fetch_x509_svid()\n  print('GOT AN SVID')\nexcept Exception as e:\n  print('DENIED', e)\n"])
        .arg(agent.endpoint())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&denied.stdout);
    assert!(
        text.contains("DENIED") && text.contains("unix:uid:1000"),
        "{text}\n{}",
        String::from_utf8_lossy(&denied.stderr)
    );
}
