//! App A -> outbound proxy (enrolled as A) -> inbound proxy (enrolled as B) -> app B, both
//! proxies enrolled from one CA: the bytes arrive, B's proxy names A's identity, a route that
//! expects another server identity is refused before any byte, a revoked A is cut off at B's
//! next CRL refresh, and both proxies rotate their certificates under load without one failed
//! exchange.

use std::io::ErrorKind;
use std::time::Duration;

use pki::clock::Deadline;

use super::common::*;
use crate::programs::start_ca;

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
    let mut open = open_echo(a.outbound[0]);
    let serial = printed_serial(&a);
    let mark = b.proc.mark();
    // Returns once the revocation is committed to the CA's store.
    ca.revoke(&serial);
    // B cuts its TLS side without close_notify, so A resets the local application's side: a
    // cut stream never looks finished.
    assert_eq!(read_reset(&mut open), ErrorKind::ConnectionReset);
    assert_closed_within_a_refresh(&b, mark, &serial);
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
