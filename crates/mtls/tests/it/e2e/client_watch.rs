//! Issue 9 item 3, client side: mtls-client must not keep using a connection after the
//! server's certificate was revoked or expired. It stops sending on it, closes it at once, and
//! every later request makes a new handshake that fails with the reason; the server sees no
//! request on the old connection after that (its request counter stands still) and no second
//! successful handshake.

use std::path::Path;
use std::process::Command;

use super::common::*;
use crate::programs::{self, start_ca, start_server};
use testkit::{LeafSpec, Proc, ServerProc, TestCa};

/// `mesh_requests_total` of the server.
fn requests_served(server: &ServerProc) -> u64 {
    metric(server, "mesh_requests_total ")
}

fn metric(server: &ServerProc, prefix: &str) -> u64 {
    let (_, body) = server.admin_get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The request lines (`[CLIENT] request N/M: ...`) the client printed so far.
fn request_lines(client: &Proc) -> Vec<String> {
    client.lines_matching(|l| l.starts_with("[CLIENT] request "))
}

/// Waits until the client closed its connection for `reason`, then checks that from then on
/// the server serves nothing to it and every request fails with `failure`.
fn assert_cut_off(client: &Proc, server: &ServerProc, reason: &str, failure: &str) {
    let closed = client.wait_for(|l| l.contains("event=\"connection_closed\""), LONG);
    assert!(closed.contains(reason), "{closed}");
    let served = requests_served(server);
    let mark = client.mark();
    // Three more requests, all failing for the reason.
    let first = client.wait_for_after(mark, |l| l.contains(": FAILED: "), LONG);
    let n: u64 = first
        .strip_prefix("[CLIENT] request ")
        .and_then(|r| r.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request number in {first:?}"));
    let third = format!("[CLIENT] request {}/", n + 2);
    client.wait_for_after(mark, |l| l.starts_with(&third), LONG);
    for line in request_lines(client)
        .iter()
        .filter(|l| l.contains(": FAILED: "))
    {
        assert!(line.contains(failure), "{line}");
    }
    assert_eq!(
        requests_served(server),
        served,
        "the server served requests after the client learned its certificate was {reason}"
    );
    // Once a request failed, none succeeded any more.
    let lines = request_lines(client);
    let first_failed = lines
        .iter()
        .position(|l| l.contains("FAILED"))
        .expect("a failed request");
    assert!(
        lines[first_failed..].iter().all(|l| l.contains("FAILED")),
        "{lines:#?}"
    );
    // One successful handshake in all: the client never got a new connection to it.
    let handshakes = server
        .proc
        .lines_matching(|l| l.contains("event=\"handshake_ok\""));
    assert_eq!(handshakes.len(), 1, "{handshakes:#?}");
    assert!(metric(server, "mesh_handshakes_total{result=\"client_alert\"} ") >= 3);
}

#[test]
fn a_revoked_server_is_cut_off_by_the_client() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let server = enrolled_server(&ca, dir.path(), &[]);
    // Requests 6 s apart: the connection is idle when the revocation becomes known (the client
    // refreshes its CRL every second, so it learns of it about 5 s before the next request,
    // a margin a loaded CI machine keeps).
    let client = spawn_client(
        &ca,
        dir.path(),
        &server,
        &[
            "--crl-refresh",
            "1s",
            "--count",
            "4",
            "--interval",
            "6s",
            "--quiet",
        ],
    );
    let connected = client.wait_for(|l| l.starts_with("[CLIENT] connected:"), LONG);
    let server_serial = connected
        .split_whitespace()
        .find_map(|w| w.strip_prefix("server_serial="))
        .expect("server serial")
        .to_string();
    client.wait_for(|l| l.contains("request 1/4: 200"), LONG);
    ca.revoke(&server_serial);
    let closed = client.wait_for(|l| l.contains("event=\"connection_closed\""), LONG);
    assert!(closed.contains(&server_serial), "{closed}");
    assert_eq!(
        request_lines(&client).len(),
        1,
        "closed while idle, before the next request"
    );
    assert_cut_off(&client, &server, "revoked", "server certificate revoked");
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn an_expired_server_certificate_is_cut_off_by_the_client() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Expiry Root");
    let root = ca.write_root(dir.path(), "ca.crt");
    let mut spec = LeafSpec::new(SERVER_ID).localhost();
    spec.ttl = time::Duration::seconds(8);
    let (srv_crt, srv_key) = ca.issue_spec(&spec).write(dir.path(), "server");
    let (cli_crt, cli_key) = ca.client(CLIENT_ID).write(dir.path(), "client");
    let server = start_server(
        "server",
        &[
            "--cert",
            &s(&srv_crt),
            "--key",
            &s(&srv_key),
            "--ca-cert",
            &s(&root),
        ]
        .map(String::from),
    );
    let mut cmd = Command::new(programs::client());
    cmd.args(["--cert", &s(&cli_crt), "--key", &s(&cli_key)])
        .args(["--ca-cert", &s(&root), "--server", &server.url()])
        .args(["--count", "600", "--interval", "100ms", "--quiet"])
        .env("RUST_LOG", "info");
    let client = Proc::spawn("client", cmd);
    client.wait_for(|l| l.contains("request 3/600: 200"), LONG);
    assert_cut_off(&client, &server, "expired", "server certificate expired");
}
