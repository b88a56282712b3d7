//! Revocation end to end: revoke the client's serial at the CA; at the server's next CRL refresh
//! the server closes the client's open connection, and the client's next connection is refused
//! with the reason in words.
//!
//! The bound ("within --crl-refresh + 1 s") is checked in refresh rounds, from the server's own
//! log, not with a stopwatch in the test: the first CRL fetch logged after the revocation may
//! have been under way before it, so the revocation must be in the first or the second fetch
//! after it, and the connection must be closed before the next fetch. A stopwatch would add the
//! test's own scheduling and polling delays on a busy machine; counting rounds does not, and a
//! round is `--crl-refresh` plus one fetch (the unit tests of `refresh` pin the timing on
//! tokio's paused clock).

use std::process::Command;

use super::common::*;
use crate::programs::{self, start_ca};
use testkit::{Proc, ServerProc};

/// An enrolled mtls-server that logs every CRL fetch (`crl_fetched`, debug level).
fn server_logging_fetches(ca: &testkit::CaProc, dir: &std::path::Path) -> ServerProc {
    let token = token_file(
        ca,
        dir,
        "server",
        SERVER_ID,
        &["--dns", "localhost", "--ip", "127.0.0.1"],
    );
    let mut cmd = Command::new(programs::server());
    cmd.args(["--listen", "127.0.0.1:0"])
        .args(enrolled_args(ca, SERVER_ID, &token))
        .args(["--crl-refresh", "2s"])
        .env("RUST_LOG", "info,mesh::refresh=debug");
    let proc = Proc::spawn("server", cmd);
    let listening = proc.wait_for(|l| l.starts_with("listening on https://"), LONG);
    ServerProc {
        port: listening
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port"),
        admin_port: None,
        proc,
    }
}

#[test]
fn a_revoked_client_is_cut_off_at_the_next_crl_refresh() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let server = server_logging_fetches(&ca, dir.path());
    let client = spawn_client(
        &ca,
        dir.path(),
        &server,
        &["--count", "600", "--interval", "100ms", "--quiet"],
    );
    let connected = client.wait_for(|l| l.starts_with("[CLIENT] connected:"), LONG);
    let serial = connected
        .split_whitespace()
        .find_map(|w| w.strip_prefix("own_serial="))
        .expect("own serial")
        .to_string();
    // Requests are flowing on the open connection.
    client.wait_for(|l| l.contains("request 3/600: 200"), LONG);

    let server_mark = server.proc.mark();
    let client_mark = client.mark();
    // Returns once the revocation is committed to the CA's store.
    ca.revoke(&serial);

    let closed = server.proc.wait_for_after(
        server_mark,
        |l| l.contains("closing the connection") && l.contains(&serial),
        LONG,
    );
    assert!(closed.contains("revoked"), "{closed}");

    // In the server's log after the revocation: fetches, the update carrying it, the close.
    let after: Vec<String> = server
        .proc
        .output()
        .lines()
        .skip(server_mark)
        .map(str::to_string)
        .collect();
    let position = |pred: &dyn Fn(&str) -> bool| after.iter().position(|l| pred(l));
    let fetches: Vec<usize> = after
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("revocation list fetched"))
        .map(|(i, _)| i)
        .collect();
    let updated =
        position(&|l| l.contains("revocation list updated: 1 revoked")).unwrap_or_else(|| {
            panic!(
                "no CRL update listing the revocation:\n{}",
                after.join("\n")
            )
        });
    let close = position(&|l| l.contains("closing the connection") && l.contains(&serial))
        .expect("the close");
    // The fetch that brought the revocation logs "fetched" just before "updated".
    let fetch_number = fetches.iter().filter(|&&f| f < updated).count();
    assert!(
        (1..=2).contains(&fetch_number),
        "the revocation arrived with fetch {fetch_number} after it (the first or the second):\n{}",
        after.join("\n")
    );
    assert!(
        fetches.iter().all(|&f| f <= updated || f > close),
        "the open connection survived a CRL fetch after the update:\n{}",
        after.join("\n")
    );

    // The client's next handshake is refused, with the reason in words.
    client.wait_for_after(
        client_mark,
        |l| l.contains("server rejected our certificate: revoked"),
        LONG,
    );
    let failed = server
        .proc
        .wait_for_after(server_mark, |l| l.contains("handshake_failed"), LONG);
    assert!(failed.contains("client certificate revoked"), "{failed}");
}
