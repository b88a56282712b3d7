//! The example of crates/mesh (`examples/axum_service.rs`: a Rust service that embeds the mesh
//! library to serve its own axum route) against a real mtls-ca: it enrolls with a join token,
//! serves its route over mTLS to an enrolled mtls-client (the handler names the caller from the
//! verified certificate), rotates its 10 s certificate and keeps serving with the new one, and
//! refuses a client whose certificate the CA revoked, closing its open connection first.

use std::process::Command;

use super::common::*;
use crate::programs::{self, start_ca};
use testkit::Proc;

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(str::trim)
}

/// One call of the example's route by a freshly enrolled mtls-client; returns its stdout.
fn call(ca: &testkit::CaProc, dir: &std::path::Path, name: &str, url: &str) -> String {
    let token = token_file(ca, dir, name, CLIENT_ID, &[]);
    let mut cmd = Command::new(programs::client());
    cmd.args(enrolled_args(ca, CLIENT_ID, &token)).args([
        "--server",
        url,
        "--server-id",
        SERVER_ID,
        "--path",
        "/hello",
    ]);
    let (status, stdout, all) = testkit::run("client", cmd, LONG);
    assert!(status.success(), "{all}");
    stdout
}

#[test]
fn the_embedding_example_enrolls_serves_rotates_and_enforces_revocation() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca(
        "ca",
        &dir.path().join("ca"),
        "127.0.0.1:0",
        &["--cert-duration", "10s"],
    );
    let token = token_file(
        &ca,
        dir.path(),
        "example",
        SERVER_ID,
        &["--dns", "localhost", "--ip", "127.0.0.1"],
    );
    let mut cmd = Command::new(programs::mesh_example());
    cmd.args([&ca.url(), &ca.fingerprint, SERVER_ID, &token])
        .args(["127.0.0.1:0", "10s"])
        .env("RUST_LOG", "info");
    let example = Proc::spawn("example", cmd);
    let listening = example.wait_for(|l| l.starts_with("listening on https://"), LONG);
    let port = listening
        .trim()
        .rsplit(':')
        .next()
        .expect("a port")
        .to_string();
    let url = format!("https://localhost:{port}");

    // The route answers over mTLS, naming the caller from its certificate.
    let first = call(&ca, dir.path(), "c1", &url);
    assert!(
        first.contains(&format!("Body: hello {CLIENT_ID} (serial ")),
        "{first}"
    );
    let first_serial = field(&first, "Server Serial:")
        .expect("server serial")
        .to_string();

    // The example's certificate rotates (10 s lifetime, renewal at about half), and the next
    // caller gets the new one.
    let rotated = example.wait_for(|l| l.contains("certificate rotated"), LONG);
    assert!(rotated.contains(&first_serial), "{rotated}");
    let second = call(&ca, dir.path(), "c2", &url);
    let second_serial = field(&second, "Server Serial:").expect("server serial");
    assert_ne!(second_serial, first_serial, "{second}");

    // A caller whose certificate is revoked loses its open connection and is refused after.
    let token = token_file(&ca, dir.path(), "c3", CLIENT_ID, &[]);
    let mut cmd = Command::new(programs::client());
    cmd.args(enrolled_args(&ca, CLIENT_ID, &token))
        .args(["--server", &url, "--path", "/hello", "--ttl", "1h"])
        .args(["--count", "600", "--interval", "100ms", "--quiet"])
        .env("RUST_LOG", "info");
    let client = Proc::spawn("client", cmd);
    let connected = client.wait_for(|l| l.starts_with("[CLIENT] connected:"), LONG);
    let serial = connected
        .split_whitespace()
        .find_map(|w| w.strip_prefix("own_serial="))
        .expect("own serial")
        .to_string();
    client.wait_for(|l| l.contains("request 3/600: 200"), LONG);
    let mark = example.mark();
    ca.revoke(&serial);
    let closed = example.wait_for_after(
        mark,
        |l| l.contains("closing the connection") && l.contains(&serial),
        LONG,
    );
    assert!(closed.contains("revoked"), "{closed}");
    client.wait_for(
        |l| l.contains("server rejected our certificate: revoked"),
        LONG,
    );
    let refused = example.wait_for_after(mark, |l| l.contains("handshake_failed"), LONG);
    assert!(refused.contains("client certificate revoked"), "{refused}");
}
