//! The CA goes away: the server keeps serving on its current certificate, retries renewal with
//! backoff, reports `degraded` when less than 10% of the lifetime is left, and recovers by
//! itself (renews, back to `ready`) when the CA returns.

use super::common::*;
use crate::programs::start_ca;

#[test]
fn services_ride_out_a_ca_outage_and_recover() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let mut ca = start_ca("ca", &ca_dir, "127.0.0.1:0", &["--cert-duration", "30s"]);
    let port = ca.port;
    let server = enrolled_server(&ca, dir.path(), &["--crl-refresh", "1s"]);
    let (status, ready) = server.admin_get("/readyz");
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains("\"ready\""), "{ready}");
    // The client holds a one-hour certificate so only the server's renewal is at stake.
    let client = spawn_client(
        &ca,
        dir.path(),
        &server,
        &[
            "--ttl",
            "1h",
            "--count",
            "100000",
            "--interval",
            "100ms",
            "--quiet",
        ],
    );
    client.wait_for(|l| l.contains("request 2/100000: 200"), LONG);

    ca.proc.kill();
    let mark = server.proc.mark();
    server
        .proc
        .wait_for_after(mark, |l| l.contains("rotation_failed"), LONG);
    let degraded = server
        .proc
        .wait_for_after(mark, |l| l.contains("readiness degraded"), LONG);
    let (status, body) = server.admin_get("/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"degraded\""), "{degraded}\n{body}");
    // Still serving on the current certificate.
    let serving_mark = client.mark();
    client.wait_for_after(serving_mark, |l| l.contains(": 200 OK"), LONG);

    // The CA returns on the same address; the server renews on its own.
    let recover_mark = server.proc.mark();
    ca = start_ca(
        "ca-again",
        &ca_dir,
        &format!("127.0.0.1:{port}"),
        &["--cert-duration", "30s"],
    );
    server
        .proc
        .wait_for_after(recover_mark, |l| l.contains("certificate rotated"), LONG);
    server
        .proc
        .wait_for_after(recover_mark, |l| l.contains("readiness ready"), LONG);
    let (status, body) = server.admin_get("/readyz");
    assert_eq!(status, 200);
    assert!(body.contains("\"ready\""), "{body}");
    let after = client.mark();
    client.wait_for_after(after, |l| l.contains(": 200 OK"), LONG);
    let out = client.output();
    assert!(
        !out.contains("FAILED"),
        "a request failed during the outage:\n{out}"
    );
    drop(ca);
}

#[test]
fn after_expiry_the_server_re_enrolls_with_a_fresh_token_from_its_file() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let mut ca = start_ca("ca", &ca_dir, "127.0.0.1:0", &["--cert-duration", "6s"]);
    let port = ca.port;
    let server = enrolled_server(&ca, dir.path(), &["--crl-refresh", "1s"]);
    let mark = server.proc.mark();
    ca.proc.kill();

    // The certificate runs out while the CA is away.
    server
        .proc
        .wait_for_after(mark, |l| l.contains("readiness unhealthy"), LONG);
    let (status, body) = server.admin_get("/readyz");
    assert_eq!(status, 503, "{body}");
    server.proc.wait_for_after(
        mark,
        |l| l.contains("renewal needs a fresh join token"),
        LONG,
    );

    // The operator drops a fresh token into the token file and the CA comes back.
    ca = start_ca(
        "ca-again",
        &ca_dir,
        &format!("127.0.0.1:{port}"),
        &["--cert-duration", "6s"],
    );
    let fresh = ca.token(SERVER_ID, &["--dns", "localhost", "--ip", "127.0.0.1"]);
    std::fs::write(dir.path().join("server.token"), fresh).unwrap();
    let line = server.proc.wait_for_after(
        mark,
        |l| l.contains("re-enrolled with a fresh join token"),
        LONG,
    );
    assert!(line.contains("certificate rotated"), "{line}");
    server
        .proc
        .wait_for_after(mark, |l| l.contains("readiness ready"), LONG);
}
