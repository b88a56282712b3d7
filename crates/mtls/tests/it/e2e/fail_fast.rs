//! Fail fast (issue 16, item 2): a service whose settings, listeners or files cannot work stops
//! before it contacts the CA, so its one-time join token is still unused. Each test makes the
//! failure, checks the exit code and the option named, then redeems the SAME token with a
//! correct command line. Also: the admin listener beyond loopback (`--admin-allow-remote`, item
//! 3) and a client-side `--server-id` mismatch after enrollment, reported as such.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::Command;
use std::time::Duration;

use super::common::*;
use crate::programs::{self, start_ca};
use testkit::{run, CaProc, Proc};

const SHORT: Duration = Duration::from_secs(30);

/// `mtls-server` in enrolled mode as SERVER_ID with `token`, and `extra`.
fn server_cmd(ca: &CaProc, token: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(programs::server());
    cmd.args(enrolled_args(ca, SERVER_ID, token))
        .args(extra)
        .env("RUST_LOG", "info");
    cmd
}

/// A fresh server token (localhost, 127.0.0.1) in DIR/NAME.token.
fn server_token(ca: &CaProc, dir: &std::path::Path, name: &str) -> String {
    token_file(
        ca,
        dir,
        name,
        SERVER_ID,
        &["--dns", "localhost", "--ip", "127.0.0.1"],
    )
}

/// The refused run exits 2 naming every text of `says`; then the same token enrolls a correct
/// server (it prints its certificate and listens).
fn refused_then_token_still_works(ca: &CaProc, token: &str, bad: &[&str], says: &[&str]) {
    let (status, stdout, out) = run("server", server_cmd(ca, token, bad), SHORT);
    assert_eq!(status.code(), Some(2), "{bad:?}: {out}");
    for s in says {
        assert!(out.contains(s), "{bad:?}: the output lacks {s:?}:\n{out}");
    }
    assert!(
        !stdout.contains("Identity:"),
        "{bad:?}: a certificate was obtained:\n{out}"
    );
    assert_token_unused(ca, token);
}

/// The token enrolls a correct server: it was not redeemed before.
fn assert_token_unused(ca: &CaProc, token: &str) {
    let proc = Proc::spawn(
        "server-ok",
        server_cmd(
            ca,
            token,
            &["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        ),
    );
    let line = proc.wait_for(|l| l.starts_with("listening on https://"), SHORT);
    assert!(
        proc.output().contains(&format!("Identity: {SERVER_ID}")),
        "{line}\n{}",
        proc.output()
    );
}

#[test]
fn a_port_in_use_exits_2_naming_the_option_and_keeps_the_token() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let token = server_token(&ca, dir.path(), "listen");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();

    refused_then_token_still_works(
        &ca,
        &token,
        &["--listen", &busy],
        &[
            &format!("--listen {busy}: cannot listen there"),
            "still unused",
        ],
    );
    let token = server_token(&ca, dir.path(), "admin");
    refused_then_token_still_works(
        &ca,
        &token,
        &["--listen", "127.0.0.1:0", "--admin-listen", &busy],
        &[&format!("--admin-listen {busy}: cannot listen there")],
    );
}

#[test]
fn a_non_loopback_admin_listener_needs_admin_allow_remote() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let token = server_token(&ca, dir.path(), "server");
    refused_then_token_still_works(
        &ca,
        &token,
        &["--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"],
        &["--admin-listen 0.0.0.0:0", "--admin-allow-remote"],
    );
    // The flag alone means nothing: it needs --admin-listen.
    let (status, _, out) = run(
        "server",
        server_cmd(&ca, &token, &["--admin-allow-remote"]),
        SHORT,
    );
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("--admin-listen <ADDR>"), "{out}");
}

/// The first non-loopback IPv4 address of this machine, if it has one (a CI container may
/// have none: the wildcard bind below is tested either way).
fn non_loopback_address() -> Option<IpAddr> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

/// The wildcard address is what a pod needs (probes and scrapes arrive on the pod IP) and is
/// not loopback, so it takes `--admin-allow-remote`; health and metrics answer on every address
/// of the machine, loopback and (when there is one) the machine's own.
#[test]
fn admin_allow_remote_serves_health_and_metrics_on_a_non_loopback_address() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let token = server_token(&ca, dir.path(), "server");
    let proc = Proc::spawn(
        "server",
        server_cmd(
            &ca,
            &token,
            &[
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "0.0.0.0:0",
                "--admin-allow-remote",
            ],
        ),
    );
    let line = proc.wait_for(|l| l.starts_with("admin listening on http://"), SHORT);
    let addr: SocketAddr = line
        .trim()
        .trim_start_matches("admin listening on http://")
        .parse()
        .unwrap();
    assert!(addr.ip().is_unspecified(), "{line}");
    let warned = proc.wait_for(|l| l.contains("admin_remote"), SHORT);
    assert!(warned.contains("not on loopback"), "{warned}");
    let mut reached = vec![IpAddr::from([127, 0, 0, 1])];
    reached.extend(non_loopback_address());
    for ip in reached {
        let at = SocketAddr::new(ip, addr.port());
        let (status, body) = testkit::http_get_at(at, "/healthz");
        assert_eq!(status, 200, "{at}: {body}");
        let (status, body) = testkit::http_get_at(at, "/metrics");
        assert_eq!(status, 200, "{at}: {body}");
        assert!(body.contains("mesh_connections_open"), "{at}: {body}");
    }
}

#[test]
fn an_unreadable_ca_cert_fails_before_the_ca_is_contacted() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let token = server_token(&ca, dir.path(), "server");
    let mut cmd = Command::new(programs::server());
    cmd.args(["--ca-url", &ca.url(), "--ca-cert", "/nonexistent/root.pem"])
        .args(["--spiffe-id", SERVER_ID, "--join-token-file", &token])
        .args(["--listen", "127.0.0.1:0"]);
    let (status, _, out) = run("server", cmd, SHORT);
    // docs/cli.md: a file that cannot be used is a failure after the start, status 1.
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("/nonexistent/root.pem"), "{out}");
    assert_token_unused(&ca, &token);
}

#[test]
fn a_server_id_mismatch_after_enrollment_is_reported_as_such() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let server = enrolled_server(&ca, dir.path(), &[]);
    let expected = "spiffe://mesh.local/service/billing";
    let mut client = spawn_client(&ca, dir.path(), &server, &["--server-id", expected]);
    let status = client.wait_exit(LONG).expect("client finished");
    let out = client.output();
    assert_eq!(status.code(), Some(1), "{out}");
    // Enrollment worked (our certificate is printed); the server is not the one we asked for.
    assert!(out.contains(&format!("Identity: {CLIENT_ID}")), "{out}");
    let said = out
        .lines()
        .find(|l| l.starts_with("mtls-client: request 1:"))
        .unwrap_or_else(|| panic!("no error line:\n{out}"));
    assert!(
        said.contains("the server presented")
            && said.contains(SERVER_ID)
            && said.contains(&format!("not the expected {expected}")),
        "the error does not name the expected and the presented identity: {said}"
    );
}
