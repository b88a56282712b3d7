//! App A -> outbound proxy (enrolled as A) -> inbound proxy (enrolled as B) -> app B, both
//! proxies enrolled from one CA: the bytes arrive, B's proxy names A's identity, a route that
//! expects another server identity is refused before any byte, a revoked A is cut off at B's
//! next CRL refresh, and both proxies rotate their certificates under load without one failed
//! exchange.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use pki::clock::Deadline;

use super::common::*;
use crate::programs::start_ca;
use testkit::CaProc;

/// The inbound proxy B (allows A only) in front of `app`, then the outbound proxy A with a
/// route to B and a route expecting another identity at the same address.
fn chain(ca: &CaProc, dir: &std::path::Path, app: &App, extra: &[&str]) -> (ProxyProc, ProxyProc) {
    let b_token = token_file(ca, dir, "b", PROXY_ID);
    let mut b_args = args(&[
        "inbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &app.to(),
        "--allow-id",
        CLIENT_ID,
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    b_args.extend(enrolled(ca, PROXY_ID, &b_token));
    b_args.extend(args(extra));
    // B logs every CRL fetch (debug), so the revocation test can count refresh rounds.
    let b = start_proxy_logging("proxy-b", &b_args, "info,mesh::refresh=debug");
    let a_token = token_file(ca, dir, "a", CLIENT_ID);
    let to_b = format!("localhost:{}", b.inbound());
    let mut a_args = args(&[
        "outbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &to_b,
        "--server-id",
        PROXY_ID,
        "--route",
        &format!("127.0.0.1:0={to_b},spiffe://mesh.local/service/impostor"),
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    a_args.extend(enrolled(ca, CLIENT_ID, &a_token));
    a_args.extend(args(extra));
    let a = start_proxy("proxy-a", &a_args);
    assert_eq!(a.outbound.len(), 2);
    (a, b)
}

/// One echo exchange on a new plaintext connection to `port`: send, half-close, read to the end.
fn exchange(port: u16, line: &str) -> Result<String, String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(LONG)).ok();
    tcp.write_all(format!("ECHO\n{line}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    tcp.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut got = String::new();
    tcp.read_to_string(&mut got)
        .map_err(|e| format!("{e} after {got:?}"))?;
    Ok(got)
}

#[test]
fn app_a_reaches_app_b_through_both_proxies_with_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let app = App::start();
    let (a, b) = chain(&ca, dir.path(), &app, &["--crl-refresh", "1s"]);

    assert_eq!(exchange(a.outbound[0], "hello B").unwrap(), "hello B\n");
    assert_eq!(app.accepted(), 1);
    let line = b.proc.wait_for(
        |l| l.contains("proxy_connection") && l.contains("direction=\"inbound\""),
        LONG,
    );
    assert!(
        line.contains(&format!("spiffe_id=\"{CLIENT_ID}\"")),
        "{line}"
    );
    let line = a.proc.wait_for(
        |l| l.contains("proxy_connection") && l.contains("direction=\"outbound\""),
        LONG,
    );
    assert!(
        line.contains(&format!("spiffe_id=\"{PROXY_ID}\"")),
        "{line}"
    );

    // A route that expects another identity: refused at A's handshake; nothing reaches B's app.
    let refused = exchange(a.outbound[1], "to the impostor");
    assert!(
        refused.as_ref().map_or(true, |got| got.is_empty()),
        "{refused:?}"
    );
    a.proc.wait_for(
        |l| l.contains("upstream_failed") && l.contains("server identity mismatch"),
        LONG,
    );
    assert_eq!(app.accepted(), 1);
    assert!(
        a.metrics().contains(
            "mtls_proxy_refused_total{direction=\"outbound\",reason=\"upstream_failed\"} 1"
        ),
        "{}",
        a.metrics()
    );

    // A is revoked while connected: B cuts the connection at its next CRL refresh (1 s).
    let mut open = TcpStream::connect(("127.0.0.1", a.outbound[0])).unwrap();
    open.write_all(b"ECHO\nbefore\n").unwrap();
    let mut buf = [0u8; 64];
    open.set_read_timeout(Some(LONG)).ok();
    let n = open.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"before\n");
    let serial_line = a
        .proc
        .wait_for(|l| l.trim_start().starts_with("Serial: "), LONG);
    let serial = serial_line
        .trim()
        .trim_start_matches("Serial: ")
        .to_string();
    let mark = b.proc.mark();
    // Returns once the revocation is committed to the CA's store.
    ca.revoke(&serial);
    let mut rest = Vec::new();
    let _ = open.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    b.proc.wait_for_after(
        mark,
        |l| l.contains("closing the connection") && l.contains(&serial),
        LONG,
    );
    // "Within --crl-refresh + 1 s", counted in B's refresh rounds rather than timed by the
    // test: the fetch under way at the revocation may predate it, so the revocation arrives
    // with the first or second fetch after it, and the connection is closed before the next.
    let after: Vec<String> = b
        .proc
        .output()
        .lines()
        .skip(mark)
        .map(str::to_string)
        .collect();
    let fetches: Vec<usize> = after
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("revocation list fetched"))
        .map(|(i, _)| i)
        .collect();
    let updated = after
        .iter()
        .position(|l| l.contains("revocation list updated: 1 revoked"))
        .unwrap_or_else(|| panic!("no CRL update with the revocation:\n{}", after.join("\n")));
    let close = after
        .iter()
        .position(|l| l.contains("closing the connection") && l.contains(&serial))
        .expect("the close");
    let fetch_number = fetches.iter().filter(|&&f| f < updated).count();
    assert!(
        (1..=2).contains(&fetch_number),
        "the revocation arrived with fetch {fetch_number} after it:\n{}",
        after.join("\n")
    );
    assert!(
        fetches.iter().all(|&f| f <= updated || f > close),
        "the open connection survived a CRL fetch after the update:\n{}",
        after.join("\n")
    );
    let line = b.proc.wait_for(
        |l| l.contains("proxy_connection") && l.contains("reason=\"revoked\""),
        LONG,
    );
    assert!(line.contains(&serial), "{line}");
}

#[test]
fn both_proxies_rotate_five_times_under_load_without_a_failed_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca(
        "ca",
        &dir.path().join("ca"),
        "127.0.0.1:0",
        &["--cert-duration", "10s"],
    );
    let app = App::start();
    let (a, b) = chain(&ca, dir.path(), &app, &["--crl-refresh", "1s"]);
    let rotations = |p: &ProxyProc| {
        p.proc
            .lines_matching(|l| l.contains("certificate rotated"))
            .len()
    };
    let mut done = 0;
    let mut failures = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(90));
    // New connections back to back until each proxy has rotated five times: every one must
    // go through with whichever certificates are current.
    while (rotations(&a) < 5 || rotations(&b) < 5) && !deadline.passed() {
        let line = format!("request {done}");
        match exchange(a.outbound[0], &line) {
            Ok(got) if got == format!("{line}\n") => {}
            other => failures.push(format!("{line}: {other:?}")),
        }
        done += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {done} failed: {failures:?}",
        failures.len()
    );
    assert!(
        rotations(&a) >= 5,
        "A rotated {} times in 90 s",
        rotations(&a)
    );
    assert!(
        rotations(&b) >= 5,
        "B rotated {} times in 90 s",
        rotations(&b)
    );
    assert!(done > 100, "only {done} exchanges");
    assert_eq!(app.accepted(), done);
}
