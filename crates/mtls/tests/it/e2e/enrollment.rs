//! CA + server + client as real processes: enrollment by join token with the root pinned by
//! fingerprint or file, identities right on both sides, and refusals of unsafe bootstrap.

use std::process::Command;
use std::time::Duration;

use super::common::*;
use crate::programs::{self, start_ca};
use testkit::{run, Proc, ServerProc};

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
    let mut cmd = Command::new(programs::client());
    cmd.args(["--ca-url", &ca.url(), "--ca-cert"])
        .arg(ca_dir.join("root.crt"))
        .args(["--spiffe-id", CLIENT_ID, "--join-token-file", &token])
        .args(["--server", &server.url()]);
    let (status, _, out) = run("client", cmd, LONG);
    assert!(status.success(), "{out}");

    // Plain http:// is refused before anything is sent.
    let token2 = token_file(&ca, dir.path(), "c2", CLIENT_ID, &[]);
    let mut cmd = Command::new(programs::client());
    cmd.args(["--ca-url", &format!("http://localhost:{}", ca.port)])
        .args(["--ca-fingerprint", &ca.fingerprint])
        .args(["--spiffe-id", CLIENT_ID, "--join-token-file", &token2])
        .args(["--server", &server.url()]);
    let (status, _, out) = run("client", cmd, LONG);
    assert!(!status.success() && out.contains("plain http://"), "{out}");

    // A wrong fingerprint: the downloaded root is refused.
    let mut cmd = Command::new(programs::client());
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
    let mut cmd = Command::new(programs::client());
    cmd.args(["--ca-url", &ca.url(), "--ca-fingerprint", &ca.fingerprint])
        .args(["--spiffe-id", CLIENT_ID, "--join-token-file", &token])
        .args(["--server", &server.url()]);
    let (status, _, out) = run("client", cmd, LONG);
    assert!(
        !status.success() && out.contains("the CA refused the request (401"),
        "{out}"
    );
}

/// A port nobody listens on right now (the CA is started there later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Enrolled-mode arguments for a CA that is not running (yet) at 127.0.0.1:`port`.
fn args_for_port(port: u16, fingerprint: &str, id: &str, token: &str) -> Vec<String> {
    vec![
        "--ca-url".into(),
        format!("https://localhost:{port}"),
        "--ca-fingerprint".into(),
        fingerprint.into(),
        "--spiffe-id".into(),
        id.into(),
        "--join-token-file".into(),
        token.into(),
    ]
}

#[test]
fn services_started_before_the_ca_enroll_once_it_is_up() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    // Create the root and the tokens, then take the CA down.
    let mut first = start_ca("ca", &ca_dir, "127.0.0.1:0", &[]);
    let fingerprint = first.fingerprint.clone();
    let server_token = token_file(
        &first,
        dir.path(),
        "server",
        SERVER_ID,
        &["--dns", "localhost", "--ip", "127.0.0.1"],
    );
    let client_token = token_file(&first, dir.path(), "client", CLIENT_ID, &[]);
    first.proc.kill();
    let port = free_port();

    let mut cmd = Command::new(programs::server());
    cmd.args(["--listen", "127.0.0.1:0"])
        .args(args_for_port(port, &fingerprint, SERVER_ID, &server_token))
        .env("RUST_LOG", "info");
    let server = Proc::spawn("server", cmd);
    let mut cmd = Command::new(programs::client());
    cmd.args(args_for_port(port, &fingerprint, CLIENT_ID, &client_token))
        // Enroll and print the identity only; the default log level (warn).
        .args(["--server", "https://localhost:1", "--count", "0"])
        .env_remove("RUST_LOG");
    let mut client = Proc::spawn("client", cmd);

    // Both say that they cannot reach the CA and keep trying.
    for p in [&server, &client] {
        let line = p.wait_for(|l| l.contains("enroll_failed"), LONG);
        assert!(
            line.contains("downloading the CA root failed")
                && line.contains("retrying in")
                && line.contains("--enroll-timeout"),
            "{line}"
        );
    }

    let ca = start_ca("ca-late", &ca_dir, &format!("127.0.0.1:{port}"), &[]);
    assert_eq!(ca.fingerprint, fingerprint);

    let status = client.wait_exit(LONG).expect("client finished");
    let out = client.output();
    assert!(status.success(), "{out}");
    assert!(out.contains(&format!("Identity: {CLIENT_ID}")), "{out}");

    let listening = server.wait_for(|l| l.starts_with("listening on https://"), LONG);
    let server_port = listening
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in the listening line");
    let server = ServerProc {
        proc: server,
        port: server_port,
        admin_port: None,
    };
    let mut call = spawn_client(&ca, dir.path(), &server, &["--server-id", SERVER_ID]);
    let status = call.wait_exit(LONG).expect("client finished");
    assert!(status.success(), "{}", call.output());
}

#[test]
fn enrollment_refusals_fail_at_once_and_unreachable_gives_up() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let token = token_file(&ca, dir.path(), "c1", CLIENT_ID, &[]);
    let enroll = |url: String, id: &str, token: &str, timeout: &str| {
        let mut cmd = Command::new(programs::client());
        cmd.args(["--ca-url", &url, "--ca-fingerprint", &ca.fingerprint])
            .args(["--spiffe-id", id, "--join-token-file", token])
            .args(["--server", "https://localhost:1", "--count", "0"])
            .args(["--enroll-timeout", timeout]);
        // `run` panics if the client is still retrying after LONG (60 s): a refusal must not be
        // retried for the 10 minutes allowed here.
        run("client", cmd, LONG)
    };
    let (status, _, out) = enroll(ca.url(), CLIENT_ID, &token, "10m");
    assert!(status.success(), "{out}");

    // A used token: 401 token_used, at once, with the CA's message, no retry.
    let (status, _, out) = enroll(ca.url(), CLIENT_ID, &token, "10m");
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("the CA refused the request (401, token_used)"),
        "{out}"
    );
    assert!(!out.contains("enroll_failed"), "{out}");

    // A token for another identity: 403, at once.
    let other = token_file(&ca, dir.path(), "c2", CLIENT_ID, &[]);
    let (status, _, out) = enroll(
        ca.url(),
        "spiffe://mesh.local/service/billing",
        &other,
        "10m",
    );
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("the CA refused the request (403, identity_not_authorised)"),
        "{out}"
    );
    assert!(!out.contains("enroll_failed"), "{out}");

    // Nobody at the address: retried, then given up with the cause once the time is up.
    let (status, _, out) = enroll(
        format!("https://localhost:{}", free_port()),
        CLIENT_ID,
        &other,
        "2s",
    );
    assert!(!status.success(), "{out}");
    assert!(out.contains("enroll_failed"), "{out}");
    assert!(
        out.contains("downloading the CA root: gave up after 2s (--enroll-timeout)")
            && out.contains("Connection refused"),
        "{out}"
    );
}

/// With several `--ca-url`s a service uses the first that answers: here the first has nobody
/// behind it, so the root download, the enrollment and the CRL refresh go to the second, at
/// once (an unanswered URL is skipped, not retried with backoff).
#[test]
fn a_second_ca_url_answers_when_the_first_does_not() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let token = token_file(&ca, dir.path(), "c1", CLIENT_ID, &[]);
    let dead = format!("https://localhost:{}", free_port());
    let mut cmd = Command::new(programs::client());
    cmd.args(["--ca-url", &dead, "--ca-url", &ca.url()])
        .args(["--ca-fingerprint", &ca.fingerprint])
        .args(["--spiffe-id", CLIENT_ID, "--join-token-file", &token])
        .args(["--server", "https://localhost:1", "--count", "0"])
        .env("RUST_LOG", "info");
    let (status, _, out) = run("client", cmd, LONG);
    assert!(status.success(), "{out}");
    assert!(out.contains(&format!("Identity: {CLIENT_ID}")), "{out}");
    assert!(!out.contains("enroll_failed"), "no attempt failed: {out}");
}
