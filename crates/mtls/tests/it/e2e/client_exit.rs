//! A successful enrolled one-shot call exits quietly: the background refresher being stopped at
//! exit is not a failure and must not be logged as one.

use std::process::Command;

use super::common::*;
use crate::programs::{self, start_ca};
use testkit::Proc;

#[test]
fn enrolled_one_shot_calls_exit_without_stray_warnings() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let server = enrolled_server(&ca, dir.path(), &[]);
    for n in 0..30 {
        let token = token_file(&ca, dir.path(), &format!("client{n}"), CLIENT_ID, &[]);
        let mut cmd = Command::new(programs::client());
        cmd.args(enrolled_args(&ca, CLIENT_ID, &token))
            .args(["--server", &server.url()])
            // Refresh as often as allowed: the first round of the refresh loop starts right
            // after enrollment, so a refresh is usually in flight when the client exits.
            .args(["--crl-refresh", "1s"])
            // The default log level (warn).
            .env_remove("RUST_LOG");
        let mut client = Proc::spawn("client", cmd);
        let status = client.wait_exit(LONG).expect("client finished");
        assert!(status.success(), "call {n}: {}", client.output());
        let stderr = client.stderr();
        assert!(
            stderr.trim().is_empty(),
            "call {n}: stderr not empty after a successful call:\n{stderr}"
        );
    }
}

/// The quiet exit does not hide real failures: with the CA gone, a running client still warns
/// that it cannot refresh the trust bundle / CRL, at the default log level.
#[test]
fn a_real_refresh_failure_is_still_reported() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let mut ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let server = enrolled_server(&ca, dir.path(), &[]);
    let token = token_file(&ca, dir.path(), "client", CLIENT_ID, &[]);
    let mut cmd = Command::new(programs::client());
    cmd.args(enrolled_args(&ca, CLIENT_ID, &token))
        .args(["--server", &server.url()])
        .args(["--count", "100000", "--interval", "100ms", "--quiet"])
        .args(["--crl-refresh", "1s"])
        .env_remove("RUST_LOG");
    let client = Proc::spawn("client", cmd);
    client.wait_for(|l| l.contains("request 2/100000: 200"), LONG);
    ca.proc.kill();
    let line = client.wait_for(
        |l| l.contains("WARN") && l.contains("cannot refresh the trust bundle / CRL"),
        LONG,
    );
    assert!(line.contains("keeping the last good ones"), "{line}");
}
