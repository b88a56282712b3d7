//! Every rejection the mesh promises, provoked over the wire against a real mtls-server, with the
//! reason the server logged (and, where our client is the peer, the cause it printed) asserted.

use std::time::Duration;

use super::common::*;
use crate::programs::{self, start_server};
use testkit::{ServerProc, TestCa};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// The server's handshake_failed log line after `mark`.
fn failure_line(server: &ServerProc, mark: usize) -> String {
    server
        .proc
        .wait_for_after(mark, |l| l.contains("handshake_failed"), LOG_WAIT)
}

/// Runs curl with the given client certificate files and returns (exit ok?, output).
fn curl_with(
    pki: &StaticPki,
    server: &ServerProc,
    cert_key: Option<(&str, &str)>,
) -> (bool, String) {
    let url = format!("{}/api/status", server.url());
    let ca = s(&pki.ca_path);
    let mut args: Vec<&str> = vec!["--cacert", &ca];
    if let Some((c, k)) = cert_key {
        args.extend(["--cert", c, "--key", k]);
    }
    args.push(&url);
    let (status, _, all) = run_curl(&args);
    (status.success(), all)
}

fn write_leaf(pki: &StaticPki, leaf: &testkit::Leaf, name: &str) -> (String, String) {
    let (c, k) = leaf.write(pki.path(), name);
    (s(&c), s(&k))
}

/// curl presents `leaf`; the server must refuse with `reason` in its log and curl must fail
/// with `alert` in its message.
fn assert_curl_refused(leaf: &testkit::Leaf, reason: &str, alert: &str) {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let (c, k) = write_leaf(&pki, leaf, "presented");
    let mark = server.proc.mark();
    let (ok, out) = curl_with(&pki, &server, Some((&c, &k)));
    assert!(!ok, "curl must fail:\n{out}");
    assert!(out.contains(alert), "curl should report {alert:?}:\n{out}");
    let line = failure_line(&server, mark);
    assert!(
        line.contains(reason),
        "server should log {reason:?}:\n{line}"
    );
}

#[test]
fn no_client_certificate() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let mark = server.proc.mark();
    let (ok, out) = curl_with(&pki, &server, None);
    assert!(!ok && out.contains("alert certificate required"), "{out}");
    assert!(failure_line(&server, mark).contains("no client certificate presented"));
}

#[test]
fn unknown_ca() {
    let other = TestCa::new("Other Root");
    assert_curl_refused(
        &other.client(CLIENT_ID),
        "client certificate unknown CA",
        "alert unknown ca",
    );
}

#[test]
fn expired_certificate() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let (c, k) = write_leaf(&pki, &pki.ca.expired(CLIENT_ID), "expired");
    let mark = server.proc.mark();
    let (ok, out) = curl_with(&pki, &server, Some((&c, &k)));
    assert!(!ok && out.contains("alert certificate expired"), "{out}");
    assert!(failure_line(&server, mark).contains("client certificate expired: NotAfter"));
}

#[test]
fn not_yet_valid_certificate() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let (c, k) = write_leaf(&pki, &pki.ca.not_yet_valid(CLIENT_ID), "future");
    let mark = server.proc.mark();
    let (ok, out) = curl_with(&pki, &server, Some((&c, &k)));
    assert!(!ok && out.contains("alert certificate expired"), "{out}");
    assert!(failure_line(&server, mark).contains("client certificate not yet valid"));
}

#[test]
fn server_auth_only_eku() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let (c, k) = write_leaf(&pki, &pki.ca.server_auth_only(CLIENT_ID), "srvonly");
    let mark = server.proc.mark();
    let (ok, out) = curl_with(&pki, &server, Some((&c, &k)));
    assert!(
        !ok && out.contains("alert unsupported certificate"),
        "{out}"
    );
    assert!(failure_line(&server, mark).contains("client certificate wrong EKU"));
}

#[test]
fn ca_certificate_as_client() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let (c, k) = write_leaf(&pki, &pki.ca.ca_as_client(CLIENT_ID), "subca");
    let mark = server.proc.mark();
    let (ok, out) = curl_with(&pki, &server, Some((&c, &k)));
    assert!(!ok && out.contains("alert certificate unknown"), "{out}");
    assert!(failure_line(&server, mark).contains("CA certificate used as an end-entity"));
}

/// A client leaf the mesh's rules refuse: curl presents it and the server says why; our own
/// client refuses to present it at all (it checks its files with the same rules at start).
fn client_leaf_refused(pki: &StaticPki, leaf: &testkit::Leaf, name: &str, reason: &str) {
    let server = start_server("server", &pki.server_args());
    let (c, k) = write_leaf(pki, leaf, name);
    let mark = server.proc.mark();
    let (ok, out) = curl_with(pki, &server, Some((&c, &k)));
    assert!(!ok, "curl must fail:\n{out}");
    let line = failure_line(&server, mark);
    assert!(out.contains("alert certificate unknown"), "{out}\n{line}");
    assert!(
        line.contains(&format!("client certificate {reason}")),
        "{line}"
    );
    assert!(line.contains("key_usage"), "{line}");
    let (_, metrics) = server.admin_get("/metrics");
    assert!(
        metrics.contains("mesh_handshakes_total{result=\"key_usage\"} 1"),
        "{metrics}"
    );
    let (status, _, all) = run_client(&pki.client_args_with(
        std::path::Path::new(&c),
        std::path::Path::new(&k),
        &server.url(),
    ));
    assert!(!status.success(), "{all}");
    assert!(all.contains(reason), "{all}");
}

#[test]
fn client_key_usage_without_digital_signature() {
    let pki = StaticPki::new();
    let leaf = pki
        .ca
        .key_encipherment_only(&testkit::LeafSpec::new(CLIENT_ID));
    client_leaf_refused(
        &pki,
        &leaf,
        "kenc",
        "key usage lacks digitalSignature (it has [keyEncipherment])",
    );
}

#[test]
fn client_leaf_with_ca_key_usage() {
    use testkit::KeyUsagePurpose::*;
    let pki = StaticPki::new();
    let leaf = pki.ca.with_key_usages(
        &testkit::LeafSpec::new(CLIENT_ID),
        vec![DigitalSignature, KeyCertSign, CrlSign],
    );
    client_leaf_refused(
        &pki,
        &leaf,
        "kcs",
        "key usage allows keyCertSign and cRLSign",
    );
}

#[test]
fn server_key_usage_without_digital_signature() {
    let pki = StaticPki::new();
    let leaf = pki
        .ca
        .key_encipherment_only(&testkit::LeafSpec::new(SERVER_ID).localhost());
    let (cert, key) = leaf.write(pki.path(), "server-kenc");
    let reason = "key usage lacks digitalSignature (it has [keyEncipherment])";
    // mtls-server refuses to serve with it: it checks its own files with the peers' rules.
    let mut cmd = std::process::Command::new(programs::server());
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--cert",
        &s(&cert),
        "--key",
        &s(&key),
    ])
    .args(["--ca-cert", &s(&pki.ca_path)]);
    let (status, _, all) = testkit::run("mtls-server", cmd, LOG_WAIT);
    assert!(!status.success(), "{all}");
    assert!(all.contains(reason), "{all}");
    // A server that does not check itself (openssl s_server) is refused by our client.
    let (_s_server, port) = s_server(&pki, &cert, &key, "P-384");
    let (status, _, all) = run_client(&pki.client_args(&format!("https://localhost:{port}")));
    assert!(!status.success(), "{all}");
    assert!(
        all.contains(&format!("server certificate {reason}")),
        "{all}"
    );
}

#[test]
fn revoked_client_is_told_why() {
    let pki = StaticPki::new();
    let crl_path = pki.path().join("ca.crl");
    std::fs::write(&crl_path, pki.ca.crl(&[&pki.client.serial_hex])).unwrap();
    let mut args = pki.server_args();
    args.extend(["--crl".into(), s(&crl_path)]);
    let server = start_server("server", &args);
    let mark = server.proc.mark();
    let (status, _, all) = run_client(&pki.client_args(&server.url()));
    assert!(!status.success(), "{all}");
    assert!(
        all.contains("server rejected our certificate: revoked"),
        "{all}"
    );
    assert!(failure_line(&server, mark).contains("client certificate revoked"));
}

#[test]
fn hostname_mismatch() {
    let pki = StaticPki::new();
    // A server certificate for localhost only, reached as 127.0.0.2.
    let mut spec = testkit::LeafSpec::new(SERVER_ID);
    spec.dns = vec!["localhost".into()];
    let leaf = pki.ca.issue_spec(&spec);
    let (cert, key) = leaf.write(pki.path(), "server-dns-only");
    let server = start_server(
        "server",
        &[
            "--cert".into(),
            s(&cert),
            "--key".into(),
            s(&key),
            "--ca-cert".into(),
            s(&pki.ca_path),
        ],
    );
    let mark = server.proc.mark();
    let url = format!("https://127.0.0.1:{}", server.port);
    let (status, _, all) = run_client(&pki.client_args(&url));
    assert!(!status.success(), "{all}");
    assert!(
        all.contains("hostname mismatch: the certificate is valid for")
            && all.contains("127.0.0.1"),
        "{all}"
    );
    assert!(failure_line(&server, mark).contains("alert bad_certificate"));
}

#[test]
fn server_id_mismatch() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let mark = server.proc.mark();
    let mut args = pki.client_args(&server.url());
    args.extend([
        "--server-id".into(),
        "spiffe://mesh.local/service/billing".into(),
    ]);
    let (status, _, all) = run_client(&args);
    assert!(!status.success(), "{all}");
    assert!(
        all.contains(&format!(
            "server identity mismatch: the server presented {SERVER_ID}, not the expected spiffe://mesh.local/service/billing"
        )),
        "{all}"
    );
    assert!(failure_line(&server, mark).contains("the client aborted the handshake"));
}

#[test]
fn tls12_client() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let mark = server.proc.mark();
    let url = format!("{}/api/status", server.url());
    let (c, k, ca) = (s(&pki.client_cert), s(&pki.client_key), s(&pki.ca_path));
    let (status, _, out) = run_curl(&[
        "--tls-max",
        "1.2",
        "--cacert",
        &ca,
        "--cert",
        &c,
        "--key",
        &k,
        &url,
    ]);
    assert!(
        !status.success() && out.contains("alert protocol version"),
        "{out}"
    );
    assert!(failure_line(&server, mark).contains("the client does not offer TLS 1.3"));
}

#[test]
fn p256_only_client() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let mark = server.proc.mark();
    let addr = server.addr();
    let (c, k, ca) = (s(&pki.client_cert), s(&pki.client_key), s(&pki.ca_path));
    let (status, _, out) = run_s_client(&[
        "-connect", &addr, "-groups", "P-256", "-CAfile", &ca, "-cert", &c, "-key", &k,
    ]);
    assert!(
        !status.success() && out.contains("alert handshake failure"),
        "{out}"
    );
    assert!(failure_line(&server, mark).contains("no key exchange group in common"));
}

#[test]
fn revoked_client_cannot_resume_a_session() {
    let pki = StaticPki::new();
    let crl_path = pki.path().join("ca.crl");
    std::fs::write(&crl_path, pki.ca.crl(&[])).unwrap();
    let mut args = pki.server_args();
    args.extend([
        "--crl".into(),
        s(&crl_path),
        "--reload-interval".into(),
        "1s".into(),
    ]);
    let server = start_server("server", &args);
    let addr = server.addr();
    let sess = s(&pki.path().join("session.pem"));
    let (c, k, ca) = (s(&pki.client_cert), s(&pki.client_key), s(&pki.ca_path));
    let base = ["-connect", &addr, "-CAfile", &ca, "-cert", &c, "-key", &k];

    // First connection succeeds; the server issues no session ticket.
    let mut first: Vec<&str> = base.to_vec();
    first.extend(["-sess_out", &sess]);
    let (status, _, out) = run_s_client(&first);
    assert!(status.success(), "{out}");
    assert!(!out.contains("NewSessionTicket"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    // Revoke the client, wait for the server to load the new CRL.
    let mark = server.proc.mark();
    pki::files::write_atomic(&crl_path, &pki.ca.crl(&[&pki.client.serial_hex]), 0o644).unwrap();
    server
        .proc
        .wait_for_after(mark, |l| l.contains("revocation list reloaded"), LOG_WAIT);

    // Offer the saved session: there is nothing to resume, the full handshake re-checks the
    // certificate, and the revoked client is refused.
    let mark = server.proc.mark();
    let mut again: Vec<&str> = base.to_vec();
    // Keep reading after stdin closes: the server's verdict arrives after our Finished.
    again.push("-ign_eof");
    if std::path::Path::new(&sess).exists() {
        again.extend(["-sess_in", &sess]);
    }
    let (_, _, out) = run_s_client(&again);
    assert!(
        !out.contains("Reused, TLSv1.3"),
        "session must not be resumed:\n{out}"
    );
    assert!(out.contains("alert certificate revoked"), "{out}");
    assert!(failure_line(&server, mark).contains("client certificate revoked"));
}
