//! Static mode with `--crl`: a CRL file past its nextUpdate makes the service `degraded`, and
//! past nextUpdate + `--crl-max-staleness` it refuses every handshake (server and client side)
//! with the stale reason, until the file is replaced with a fresh CRL.

use std::time::Duration;

use super::common::*;
use crate::programs::start_server;
use pki::crl::sign_crl;
use time::OffsetDateTime;

const WAIT: Duration = Duration::from_secs(20);

/// docs/troubleshooting.md quotes `phrase`, and the tool printed it (`output`).
fn quoted(phrase: &str, output: &str) {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/troubleshooting.md"
    ))
    .expect("troubleshooting page");
    assert!(
        output.contains(phrase),
        "no longer printed: {phrase:?}\n{output}"
    );
    assert!(
        page.contains(phrase),
        "docs/troubleshooting.md lacks {phrase:?}"
    );
}

/// A CRL (no entries) whose nextUpdate was `ago` before now.
fn crl_expired_since(pki: &StaticPki, ago: time::Duration) -> Vec<u8> {
    let next_update = OffsetDateTime::now_utc() - ago;
    sign_crl(
        &pki.ca.ca,
        &[],
        1,
        next_update - time::Duration::hours(1),
        next_update,
    )
    .expect("crl")
}

fn readyz(server: &testkit::ServerProc) -> (u16, serde_json::Value) {
    let (status, body) = server.admin_get("/readyz");
    (status, serde_json::from_str(&body).expect("JSON"))
}

#[test]
fn a_crl_file_past_next_update_and_max_staleness_fails_closed_until_replaced() {
    let pki = StaticPki::new();
    let crl = pki.path().join("ca.crl");
    // Stale by an hour; the default --crl-max-staleness is 30 minutes.
    std::fs::write(&crl, crl_expired_since(&pki, time::Duration::hours(1))).expect("crl");
    let mut args = pki.server_args();
    args.extend(["--crl".into(), s(&crl)]);
    let server = start_server("server", &args);

    let (status, body) = readyz(&server);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["crl"]["state"], "failing_closed");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("--crl-max-staleness 30m"),
        "{body}"
    );
    let (status, _, out) = run_client(&pki.client_args(&server.url()));
    assert!(!status.success(), "{out}");
    let refused = server
        .proc
        .wait_for(|l| l.contains("handshake_failed"), WAIT);
    assert!(
        refused.contains("code=\"crl_stale\"")
            && refused.contains("client certificate revocation status unknown"),
        "{refused}"
    );
    quoted(
        "client certificate revocation status unknown: the revocation list in use expired at",
        &refused,
    );
    quoted(
        "or a revocation list on the server too stale to answer)",
        &out,
    );
    let closed = server
        .proc
        .wait_for(|l| l.contains("state=\"failing_closed\""), WAIT);
    quoted(
        "(nextUpdate) and --crl-max-staleness 30m has passed since; refusing peers until a fresh \
         CRL arrives (enrolled: is the CA reachable? static files: replace the --crl file); \
         every handshake is refused",
        &closed,
    );
    let (_, metrics) = server.admin_get("/metrics");
    assert!(metrics.contains("mesh_crl_stale 2"), "{metrics}");
    assert!(
        metrics.contains("mesh_handshakes_total{result=\"crl_stale\"} 1"),
        "{metrics}"
    );

    // A fresh CRL dropped in place restores service at once.
    let mark = server.proc.mark();
    let fresh = pki.path().join("fresh.crl");
    std::fs::write(&fresh, pki.ca.crl(&[])).expect("crl");
    std::fs::rename(&fresh, &crl).expect("replace");
    let fresh =
        server
            .proc
            .wait_for_after(mark, |l| l.contains("revocation list fresh again"), WAIT);
    quoted(
        "revocation list fresh again; handshakes are checked against it normally",
        &fresh,
    );
    let (status, body) = readyz(&server);
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("ready")),
        "{body}"
    );
    let (status, _, out) = run_client(&pki.client_args(&server.url()));
    assert!(status.success(), "{out}");
}

#[test]
fn a_crl_file_just_past_next_update_degrades_but_still_serves() {
    let pki = StaticPki::new();
    let crl = pki.path().join("ca.crl");
    std::fs::write(&crl, crl_expired_since(&pki, time::Duration::minutes(1))).expect("crl");
    let mut args = pki.server_args();
    args.extend(["--crl".into(), s(&crl)]);
    let server = start_server("server", &args);
    let (status, body) = readyz(&server);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["crl"]["state"], "stale");
    quoted(
        "has passed; still in use, but every handshake will be refused from",
        body["reason"].as_str().unwrap(),
    );
    let stale = server
        .proc
        .wait_for(|l| l.contains("state=\"stale\""), WAIT);
    quoted("(--crl-max-staleness) unless a fresh CRL arrives", &stale);
    let (status, _, out) = run_client(&pki.client_args(&server.url()));
    assert!(status.success(), "{out}");
    // A server without --crl has no revocation answer to lose: never stale.
    let plain = start_server("plain", &pki.server_args());
    let (status, body) = readyz(&plain);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert!(body.get("crl").is_none(), "{body}");
}

#[test]
fn a_client_with_a_stale_crl_file_refuses_the_server() {
    let pki = StaticPki::new();
    let crl = pki.path().join("ca.crl");
    std::fs::write(&crl, crl_expired_since(&pki, time::Duration::hours(1))).expect("crl");
    let server = start_server("server", &pki.server_args());
    let mut args = pki.client_args(&server.url());
    args.extend(["--crl".into(), s(&crl)]);
    let (status, _, out) = run_client(&args);
    assert!(!status.success(), "{out}");
    quoted(
        "TLS handshake failed: server certificate revocation status unknown: the revocation \
         list in use expired at",
        &out,
    );
    // With a grace longer than its hour of staleness, the same CRL is still usable.
    let mut longer = args.clone();
    longer.extend(["--crl-max-staleness".into(), "2h".into()]);
    let (status, _, out) = run_client(&longer);
    assert!(status.success(), "{out}");
}
