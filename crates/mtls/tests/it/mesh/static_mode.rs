//! mtls-server and mtls-client from static files: the happy path, the printed handshake
//! details, echo, repeated requests on one connection, --allow-id, the admin endpoints,
//! hot reload of replaced files, and pinned mode.

use std::time::Duration;

use super::common::*;
use crate::programs::{self, start_server};

fn body_json(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Body: "))
        .unwrap_or_else(|| panic!("no Body line in:\n{stdout}"));
    serde_json::from_str(line).expect("JSON body")
}

#[test]
fn client_and_server_verify_each_other_and_report_identities() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let mut args = pki.client_args(&server.url());
    args.extend(["--server-id".into(), SERVER_ID.into()]);
    let (status, stdout, all) = run_client(&args);
    assert!(status.success(), "{all}");
    for expected in [
        "TLS Version: TLS 1.3",
        "Cipher Suite: TLS_AES_256_GCM_SHA384",
        "Key Exchange: secp384r1",
        &format!("Server Identity: {SERVER_ID}"),
        &format!("Our Identity: {CLIENT_ID}"),
        "Response: 200 OK",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let body = body_json(&stdout);
    let client_key = pki::client_key(&pki.client.der).unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["caller"], CLIENT_ID);
    assert_eq!(body["client_key"], client_key);

    let logged = server.proc.wait_for(
        |l| l.contains("handshake_ok") || l.contains("connection from"),
        Duration::from_secs(10),
    );
    assert!(logged.contains(CLIENT_ID), "{logged}");
    assert!(logged.contains(&pki.client.serial_hex), "{logged}");
    let output = server.proc.output();
    assert!(
        output.contains(&client_key),
        "server log lacks the client key:\n{output}"
    );
}

#[test]
fn echo_and_repeated_requests_share_one_connection() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let mut args = pki.client_args(&server.url());
    args.extend(
        [
            "--message",
            "Hello from mTLS client",
            "--count",
            "3",
            "--interval",
            "10ms",
        ]
        .map(String::from),
    );
    let (status, stdout, all) = run_client(&args);
    assert!(status.success(), "{all}");
    let body = body_json(&stdout);
    assert_eq!(body["echo"], "Hello from mTLS client");
    assert_eq!(body["caller"], CLIENT_ID);
    assert!(body["client_addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(body["server_time"].as_str().unwrap().ends_with('Z'));
    assert!(
        stdout.contains("3 request(s): 3 ok, 0 failed; 1 connection(s) opened"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("TLS Handshake Details").count(),
        1,
        "{stdout}"
    );
}

#[test]
fn allow_id_forbids_other_callers() {
    let pki = StaticPki::new();
    let mut args = pki.server_args();
    args.extend(["--allow-id", "spiffe://mesh.local/batch/*"].map(String::from));
    let server = start_server("server", &args);
    let (status, _stdout, all) = run_client(&pki.client_args(&server.url()));
    assert!(!status.success(), "{all}");
    assert!(all.contains("403"), "{all}");
    assert!(all.contains("is not allowed"), "{all}");

    // A caller below the allowed prefix gets through.
    let batch = pki.ca.client("spiffe://mesh.local/batch/nightly");
    let (cert, key) = batch.write(pki.path(), "batch");
    let (status, stdout, all) = run_client(&pki.client_args_with(&cert, &key, &server.url()));
    assert!(status.success(), "{all}");
    assert_eq!(
        body_json(&stdout)["caller"],
        "spiffe://mesh.local/batch/nightly"
    );
}

#[test]
fn admin_endpoints_report_health_readiness_and_metrics() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let (status, body) = server.admin_get("/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.admin_get("/readyz");
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["serial"], pki.server.serial_hex);

    let (ok, _, all) = run_client(&pki.client_args(&server.url()));
    assert!(ok.success(), "{all}");
    let (status, metrics) = server.admin_get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("mesh_handshakes_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mesh_certificate_expiry_seconds "),
        "{metrics}"
    );
    assert!(metrics.contains("mesh_rotations_total 0"), "{metrics}");
    let (status, _) = server.admin_get("/nope");
    assert_eq!(status, 404);
}

#[test]
fn replaced_files_are_reloaded_without_restart() {
    let pki = StaticPki::new();
    let mut args = pki.server_args();
    args.extend(["--reload-interval", "1s"].map(String::from));
    let server = start_server("server", &args);

    let next = pki.ca.server(SERVER_ID);
    // Replace key first, then certificate: in between the pair does not match and must be
    // refused while the old certificate keeps serving.
    let mark = server.proc.mark();
    pki::files::write_atomic(&pki.server_key, next.key_pem.as_bytes(), 0o600).unwrap();
    pki::files::write_atomic(&pki.server_cert, next.cert_pem.as_bytes(), 0o644).unwrap();
    let line = server.proc.wait_for_after(
        mark,
        |l| l.contains("certificate rotated"),
        Duration::from_secs(10),
    );
    assert!(
        line.contains(&pki.server.serial_hex) && line.contains(&next.serial_hex),
        "{line}"
    );

    let (status, stdout, all) = run_client(&pki.client_args(&server.url()));
    assert!(status.success(), "{all}");
    assert!(
        stdout.contains(&format!("Server Serial: {}", next.serial_hex)),
        "new handshakes must see the new certificate:\n{stdout}"
    );
}

#[test]
fn pinned_mode_trusts_exactly_the_pinned_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server_leaf = testkit::self_signed(SERVER_ID);
    let client_leaf = testkit::self_signed(CLIENT_ID);
    let stranger = testkit::self_signed("spiffe://mesh.local/service/stranger");
    let (scert, skey) = server_leaf.write(dir.path(), "server");
    let (ccert, ckey) = client_leaf.write(dir.path(), "client");
    let (xcert, xkey) = stranger.write(dir.path(), "stranger");
    let server = start_server(
        "server",
        &[
            "--cert".into(),
            s(&scert),
            "--key".into(),
            s(&skey),
            "--trust-pin".into(),
            client_leaf.spki_pin(),
        ],
    );
    let client_args = |cert: &std::path::Path, key: &std::path::Path| {
        vec![
            "--cert".into(),
            s(cert),
            "--key".into(),
            s(key),
            "--trust-pin".into(),
            server_leaf.spki_pin(),
            "--server".into(),
            server.url(),
        ]
    };
    let (status, stdout, all) = run_client(&client_args(&ccert, &ckey));
    assert!(status.success(), "{all}");
    assert_eq!(body_json(&stdout)["caller"], CLIENT_ID);

    let mark = server.proc.mark();
    let (status, _, all) = run_client(&client_args(&xcert, &xkey));
    assert!(!status.success(), "{all}");
    let line = server.proc.wait_for_after(
        mark,
        |l| l.contains("handshake_failed") || l.contains("failed:"),
        Duration::from_secs(10),
    );
    assert!(line.contains("matches none of the pinned keys"), "{line}");
}

#[test]
fn json_logs_carry_the_connection_fields() {
    let pki = StaticPki::new();
    let mut args = pki.server_args();
    args.extend(["--log-format", "json"].map(String::from));
    let server = start_server("server", &args);
    let (status, _, all) = run_client(&pki.client_args(&server.url()));
    assert!(status.success(), "{all}");
    let line = server
        .proc
        .wait_for(|l| l.contains("\"handshake_ok\""), Duration::from_secs(10));
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(v["spiffe_id"], CLIENT_ID);
    assert_eq!(v["serial"], pki.client.serial_hex.as_str());
    assert_eq!(v["client_key"], pki::client_key(&pki.client.der).unwrap());
    assert_eq!(v["version"], "TLS 1.3");
    assert_eq!(v["suite"], "TLS_AES_256_GCM_SHA384");
    assert_eq!(v["group"], "secp384r1");
    assert!(v["peer_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(v["subject"].is_string() && v["issuer"].is_string());
    let not_after = pki::CertInfo::from_der(&pki.client.der).unwrap().not_after;
    assert_eq!(v["not_after"], pki::timefmt::rfc3339(not_after));
}

/// Each connection's end is logged at debug level with the peer address of its handshake line
/// (which carries the peer's NotAfter): scripts/soak-test.sh pairs the two to check that no
/// connection outlives its peer's certificate.
#[test]
fn the_end_of_each_connection_is_logged_with_the_handshake_address() {
    let pki = StaticPki::new();
    let mut cmd = std::process::Command::new(programs::server());
    cmd.args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(pki.server_args())
        .env("RUST_LOG", "info,wire=debug");
    let server = testkit::Proc::spawn("server", cmd);
    let listening = server.wait_for(
        |l| l.starts_with("listening on https://"),
        Duration::from_secs(30),
    );
    let url = listening
        .trim()
        .trim_start_matches("listening on ")
        .to_string();
    let (status, _, all) = run_client(&pki.client_args(&url));
    assert!(status.success(), "{all}");
    let json = |l: &str| serde_json::from_str::<serde_json::Value>(l).expect("JSON log line");
    let opened =
        json(&server.wait_for(|l| l.contains("\"handshake_ok\""), Duration::from_secs(10)));
    // The client exits after its request: the server sees the connection end.
    let ended = json(&server.wait_for(
        |l| l.contains("\"connection_ended\""),
        Duration::from_secs(10),
    ));
    assert_eq!(ended["peer_addr"], opened["peer_addr"], "{ended}");
    assert!(ended["lived_ms"].is_u64(), "{ended}");
    assert!(opened["not_after"].is_string(), "{opened}");
}

#[test]
fn a_connection_is_closed_when_the_peer_certificate_expires() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    // A client certificate that expires in about three seconds.
    let mut spec = testkit::LeafSpec::new(CLIENT_ID);
    spec.ttl = time::Duration::seconds(3);
    let short = pki.ca.issue_spec(&spec);
    let (cert, key) = short.write(pki.path(), "short");
    let mut args = pki.client_args_with(&cert, &key, &server.url());
    args.extend(["--count", "80", "--interval", "100ms", "--quiet"].map(String::from));
    let mut cmd = std::process::Command::new(programs::client());
    cmd.args(&args);
    let client = testkit::Proc::spawn("client", cmd);

    let closed = server.proc.wait_for(
        |l| l.contains("closing the connection"),
        Duration::from_secs(20),
    );
    assert!(
        closed.contains("expired") && closed.contains(&short.serial_hex),
        "{closed}"
    );
    // The client's next connection is refused: its certificate has expired.
    let refused = client.wait_for(
        |l| l.contains("server rejected our certificate: expired"),
        Duration::from_secs(20),
    );
    assert!(
        refused.contains("FAILED") || refused.contains("request"),
        "{refused}"
    );
    let failed = server
        .proc
        .wait_for(|l| l.contains("handshake_failed"), Duration::from_secs(10));
    assert!(failed.contains("client certificate expired"), "{failed}");
}
