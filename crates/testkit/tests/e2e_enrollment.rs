//! CA + server + client as real processes: enrollment by join token with the root pinned by
//! fingerprint or file, identities right on both sides, and refusals of unsafe bootstrap.

mod e2e_common;

use std::process::Command;
use std::time::Duration;

use e2e_common::*;
use testkit::{bin_path, run, start_ca};

#[test]
fn ca_server_and_client_enroll_and_talk() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca(
        "ca",
        &dir.path().join("ca"),
        "127.0.0.1:0",
        &["--cert-duration", "1h"],
    );
    let server = enrolled_server(&ca, dir.path(), &[]);
    let banner = server.proc.output();
    assert!(
        banner.contains(&format!("Identity: {SERVER_ID}")),
        "{banner}"
    );
    assert!(
        banner.contains("SAN DNS: localhost") && banner.contains("SAN IP: 127.0.0.1"),
        "{banner}"
    );
    assert!(banner.contains("Next rotation: "), "{banner}");

    let mut client = spawn_client(&ca, dir.path(), &server, &["--server-id", SERVER_ID]);
    let status = client.wait_exit(LONG).expect("client finished");
    let out = client.output();
    assert!(status.success(), "{out}");
    assert!(
        out.contains(&format!("Server Identity: {SERVER_ID}")),
        "{out}"
    );
    assert!(out.contains(&format!("Our Identity: {CLIENT_ID}")), "{out}");
    assert!(
        out.contains("TLS Version: TLS 1.3") && out.contains("Key Exchange: secp384r1"),
        "{out}"
    );
    let body_line = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Body: "))
        .expect("body");
    let body: serde_json::Value = serde_json::from_str(body_line).unwrap();
    assert_eq!(body["caller"], CLIENT_ID);
    // The client key the server computed is the one of the certificate the client printed.
    let printed_key = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Client key: "))
        .expect("client key line");
    assert_eq!(body["client_key"], printed_key);

    let logged = server
        .proc
        .wait_for(|l| l.contains("handshake_ok"), Duration::from_secs(10));
    assert!(
        logged.contains(CLIENT_ID) && logged.contains(printed_key),
        "{logged}"
    );
}

#[test]
fn root_from_file_works_and_unsafe_bootstrap_is_refused() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let ca = start_ca("ca", &ca_dir, "127.0.0.1:0", &[]);
    let token = token_file(&ca, dir.path(), "c1", CLIENT_ID, &[]);
    let server = enrolled_server(&ca, dir.path(), &[]);

    // --ca-cert instead of --ca-fingerprint.
    let mut cmd = Command::new(bin_path("mtls-client"));
    cmd.args(["--ca-url", &ca.url(), "--ca-cert"])
        .arg(ca_dir.join("root.crt"))
        .args(["--spiffe-id", CLIENT_ID, "--join-token-file", &token])
        .args(["--server", &server.url()]);
    let (status, _, out) = run("client", cmd, LONG);
    assert!(status.success(), "{out}");

    // Plain http:// is refused before anything is sent.
    let token2 = token_file(&ca, dir.path(), "c2", CLIENT_ID, &[]);
    let mut cmd = Command::new(bin_path("mtls-client"));
    cmd.args(["--ca-url", &format!("http://localhost:{}", ca.port)])
        .args(["--ca-fingerprint", &ca.fingerprint])
        .args(["--spiffe-id", CLIENT_ID, "--join-token-file", &token2])
        .args(["--server", &server.url()]);
    let (status, _, out) = run("client", cmd, LONG);
    assert!(!status.success() && out.contains("plain http://"), "{out}");

    // A wrong fingerprint: the downloaded root is refused.
    let mut cmd = Command::new(bin_path("mtls-client"));
    cmd.args(["--ca-url", &ca.url(), "--ca-fingerprint", &"ab".repeat(32)])
        .args(["--spiffe-id", CLIENT_ID, "--join-token-file", &token2])
        .args(["--server", &server.url()]);
    let (status, _, out) = run("client", cmd, LONG);
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("served a root whose SHA-256 fingerprint is not"),
        "{out}"
    );

    // A token is single use: enrolling again with the first token fails with the CA's reason.
    let mut cmd = Command::new(bin_path("mtls-client"));
    cmd.args(["--ca-url", &ca.url(), "--ca-fingerprint", &ca.fingerprint])
        .args(["--spiffe-id", CLIENT_ID, "--join-token-file", &token])
        .args(["--server", &server.url()]);
    let (status, _, out) = run("client", cmd, LONG);
    assert!(
        !status.success() && out.contains("the CA refused the request (401"),
        "{out}"
    );
}
