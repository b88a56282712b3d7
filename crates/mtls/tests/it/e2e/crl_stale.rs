//! Issue 9 item 8: a stale CRL is not trusted forever. The CA signs CRLs valid for 4 s
//! (`--crl-validity`); the server may use one up to 3 s past its nextUpdate
//! (`--crl-max-staleness`). With the CA stopped the server first reports `degraded`, then fails
//! closed (every handshake refused with the stale reason, readiness 503), and recovers at once
//! when the CA is back.

use std::path::Path;
use std::process::Command;

use super::common::*;
use crate::programs::{self, start_ca};
use pki::CaMaterial;
use testkit::{run, ServerProc, TestCa};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// One request from a static-mode mtls-client holding a certificate from the CA's own root;
/// it keeps no CRL, so only the server's verdict counts. Returns (success, output).
fn probe(server: &ServerProc, dir: &Path) -> (bool, String) {
    let mut cmd = Command::new(programs::client());
    cmd.args(["--cert", &s(&dir.join("probe.crt"))])
        .args(["--key", &s(&dir.join("probe.key"))])
        .args(["--ca-cert", &s(&dir.join("ca").join("root.crt"))])
        .args(["--server", &server.url()]);
    let (status, _, out) = run("probe", cmd, LONG);
    (status.success(), out)
}

fn readyz(server: &ServerProc) -> (u16, serde_json::Value) {
    let (status, body) = server.admin_get("/readyz");
    (status, serde_json::from_str(&body).expect("readyz JSON"))
}

fn metric(server: &ServerProc, prefix: &str) -> Option<u64> {
    let (_, body) = server.admin_get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_service_cut_off_from_the_ca_degrades_then_fails_closed_then_recovers() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let ca_args = ["--crl-validity", "4s"];
    let mut ca = start_ca("ca", &ca_dir, "127.0.0.1:0", &ca_args);
    let port = ca.port;
    // The CA signs CRLs valid for exactly --crl-validity.
    let crl_file = dir.path().join("ca.crl");
    let mut curl = Command::new("curl");
    curl.args([
        "-sS",
        "--cacert",
        &s(&ca_dir.join("root.crt")),
        "-o",
        &s(&crl_file),
    ])
    .arg(format!("{}/api/v1/crl", ca.url()));
    let (status, _, out) = run("curl", curl, LONG);
    assert!(status.success(), "{out}");
    let der = std::fs::read(&crl_file).unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
    let validity = crl.next_update().unwrap().timestamp() - crl.last_update().timestamp();
    assert_eq!(validity, 4);

    // A client certificate from the CA's root, for probing the server from outside the CA.
    let root = TestCa {
        ca: CaMaterial::load(
            &std::fs::read(ca_dir.join("root.crt")).unwrap(),
            &std::fs::read(ca_dir.join("root.key")).unwrap(),
        )
        .unwrap(),
    };
    root.client(CLIENT_ID).write(dir.path(), "probe");

    let server = enrolled_server(
        &ca,
        dir.path(),
        &["--crl-refresh", "1s", "--crl-max-staleness", "3s"],
    );
    let (ok, out) = probe(&server, dir.path());
    assert!(ok, "{out}");
    assert_eq!(metric(&server, "mesh_crl_stale "), Some(0));

    let mark = server.proc.mark();
    ca.proc.kill();
    let stale = server.proc.wait_for_after(
        mark,
        |l| l.contains("event=\"crl_stale\"") && l.contains("state=\"stale\""),
        LONG,
    );
    assert!(stale.contains("revocation list stale"), "{stale}");
    let (status, body) = readyz(&server);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["crl"]["state"], "stale", "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("nextUpdate"),
        "{body}"
    );

    let closed = server.proc.wait_for_after(
        mark,
        |l| l.contains("event=\"crl_stale\"") && l.contains("state=\"failing_closed\""),
        LONG,
    );
    assert!(closed.contains("ERROR"), "{closed}");
    let (status, body) = readyz(&server);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("--crl-max-staleness 3s"),
        "{body}"
    );
    let refused_mark = server.proc.mark();
    let (ok, out) = probe(&server, dir.path());
    assert!(
        !ok,
        "a handshake while failing closed must be refused:\n{out}"
    );
    assert!(out.contains("server rejected our certificate"), "{out}");
    let refused =
        server
            .proc
            .wait_for_after(refused_mark, |l| l.contains("handshake_failed"), LONG);
    assert!(
        refused.contains("code=\"crl_stale\"")
            && refused.contains("client certificate revocation status unknown"),
        "{refused}"
    );
    assert!(metric(&server, "mesh_handshakes_total{result=\"crl_stale\"} ") >= Some(1));
    assert_eq!(metric(&server, "mesh_crl_stale "), Some(2));
    // Logged once per transition, not per handshake.
    let transitions = server
        .proc
        .lines_matching(|l| l.contains("state=\"failing_closed\""));
    assert_eq!(transitions.len(), 1, "{transitions:#?}");

    // The CA comes back: the next refresh brings a fresh CRL and everything recovers.
    let back = server.proc.mark();
    ca = start_ca("ca-again", &ca_dir, &format!("127.0.0.1:{port}"), &ca_args);
    server
        .proc
        .wait_for_after(back, |l| l.contains("revocation list fresh again"), LONG);
    let (status, body) = readyz(&server);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    let (ok, out) = probe(&server, dir.path());
    assert!(ok, "{out}");
    assert_eq!(metric(&server, "mesh_crl_stale "), Some(0));
    drop(ca);
}

#[test]
fn the_ca_refuses_a_crl_validity_under_two_seconds() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(programs::ca());
    cmd.arg("--data-dir").arg(dir.path().join("ca")).args([
        "--listen",
        "127.0.0.1:0",
        "--crl-validity",
        "1s",
    ]);
    let (status, _, out) = run("mtls-ca", cmd, LONG);
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("'--crl-validity <DURATION>': \"1s\" is too short: the minimum is 2s"),
        "{out}"
    );
}
