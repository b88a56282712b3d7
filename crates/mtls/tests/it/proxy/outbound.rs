//! Outbound: the remote server's certificate is watched for as long as a connection through a
//! route lives. A long-lived connection is cut when the server's certificate is revoked (at
//! the outbound proxy's next CRL refresh) or expires, the local application's side is reset
//! (it cannot take the cut stream for a whole one), and a new connection to a revoked or
//! expired server is refused before any byte.

use std::io::ErrorKind;

use testkit::LeafSpec;

use super::common::*;
use crate::programs::start_ca;

#[test]
fn a_server_revoked_while_connected_is_cut_and_no_longer_reached() {
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let app = App::start();
    let (a, b) = chain(&ca, dir.path(), &app, &["--crl-refresh", "1s"]);
    let mut open = open_echo(a.outbound[0]);
    let serial = printed_serial(&b);
    let mark = a.proc.mark();
    // Returns once the revocation is committed to the CA's store.
    ca.revoke(&serial);

    assert_eq!(read_reset(&mut open), ErrorKind::ConnectionReset);
    assert_closed_within_a_refresh(&a, mark, &serial);
    let line = a.proc.wait_for_after(
        mark,
        |l| l.contains("proxy_connection") && l.contains("reason=\"revoked\""),
        LONG,
    );
    assert!(
        line.contains("direction=\"outbound\"") && line.contains(&serial),
        "{line}"
    );
    // A cut its TLS side without close_notify, so B reset the app's side in turn.
    assert_eq!(
        app.next_end(LONG),
        AppEnd::Failed(ErrorKind::ConnectionReset)
    );

    // A new connection: refused at A's handshake; nothing more reaches B's app.
    let refused = exchange(a.outbound[0], "after the revocation");
    assert!(
        refused.as_ref().map_or(true, |got| got.is_empty()),
        "{refused:?}"
    );
    a.proc.wait_for_after(
        mark,
        |l| l.contains("upstream_failed") && l.contains("revoked"),
        LONG,
    );
    assert_eq!(app.accepted(), 1);
}

#[test]
fn a_server_whose_certificate_expires_is_cut_at_the_expiry() {
    let pki = Pki::new();
    let app = App::start();
    // B serves a static certificate that lives 8 s and is never renewed.
    let mut spec = LeafSpec::new(PROXY_ID).localhost();
    spec.ttl = time::Duration::seconds(8);
    let short = pki.ca.issue_spec(&spec);
    let not_after = pki::CertInfo::from_der(&short.der).unwrap().not_after;
    let (cert, key) = pki.write(&short, "short-server");
    let mut b_args = args(&["inbound", "--listen", "127.0.0.1:0", "--to", &app.to()]);
    b_args.extend(args(&["--cert", &s(&cert), "--key", &s(&key)]));
    b_args.extend(args(&["--ca-cert", &s(&pki.ca_path)]));
    let b = start_proxy("proxy-b", &b_args);
    let mut a_args = args(&[
        "outbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &format!("localhost:{}", b.inbound()),
        "--server-id",
        PROXY_ID,
    ]);
    a_args.extend(args(&["--cert", &s(&pki.client_cert)]));
    a_args.extend(args(&["--key", &s(&pki.client_key)]));
    a_args.extend(args(&["--ca-cert", &s(&pki.ca_path)]));
    let a = start_proxy("proxy-a", &a_args);
    let mut open = open_echo(a.outbound[0]);

    assert_eq!(read_reset(&mut open), ErrorKind::ConnectionReset);
    let now = time::OffsetDateTime::now_utc();
    assert!(
        now > not_after,
        "cut at {now}, before the NotAfter {not_after}"
    );
    let line = a.proc.wait_for(
        |l| l.contains("proxy_connection") && l.contains("reason=\"expired\""),
        LONG,
    );
    assert!(line.contains(&short.serial_hex), "{line}");

    let refused = exchange(a.outbound[0], "after the expiry");
    assert!(
        refused.as_ref().map_or(true, |got| got.is_empty()),
        "{refused:?}"
    );
    a.proc.wait_for(
        |l| l.contains("upstream_failed") && l.contains("expired"),
        LONG,
    );
    assert_eq!(app.accepted(), 1);
}
