//! Revocation end to end: revoke the client's serial at the CA; within --crl-refresh + 1 s the
//! server closes the client's open connection, and the client's next connection is refused with
//! the reason in words.

use std::time::{Duration, Instant};

use super::common::*;
use crate::programs::start_ca;

#[test]
fn revoked_client_is_cut_off_within_crl_refresh_plus_one_second() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let refresh = Duration::from_secs(2);
    let server = enrolled_server(&ca, dir.path(), &["--crl-refresh", "2s"]);
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
    ca.revoke(&serial);
    let revoked_at = Instant::now();
    let bound = refresh + Duration::from_secs(1);

    let closed = server.proc.wait_for_after(
        server_mark,
        |l| l.contains("connection_closed") || l.contains("closing the connection"),
        bound + Duration::from_secs(5),
    );
    let close_after = revoked_at.elapsed();
    assert!(
        closed.contains("revoked") && closed.contains(&serial),
        "{closed}"
    );
    assert!(
        close_after <= bound,
        "open connection closed {close_after:?} after the revocation (bound {bound:?})"
    );

    let refused = client.wait_for_after(
        client_mark,
        |l| l.contains("server rejected our certificate: revoked"),
        bound + Duration::from_secs(5),
    );
    let refuse_after = revoked_at.elapsed();
    assert!(
        refuse_after <= bound + Duration::from_millis(500),
        "new connection refused only {refuse_after:?} after the revocation: {refused}"
    );
    let failed = server
        .proc
        .wait_for_after(server_mark, |l| l.contains("handshake_failed"), LONG);
    assert!(failed.contains("client certificate revoked"), "{failed}");
}
