//! A two-tier CA end to end (`mtls-ca init --offline-root`): services enrolled from it send
//! leaf + intermediate (checked with `openssl s_client -showcerts` and `openssl verify
//! -untrusted`), requests keep succeeding while the intermediate is renewed by the offline
//! ceremony against the running CA, which takes it up without a restart (zero failed
//! requests, the new intermediate on the wire from the services and the CA's API), a bad
//! intermediate.crt written over it changes nothing, and a revoked client is refused through a CRL signed by the intermediate.

use std::process::Command;
use std::time::Duration;

use super::common::*;
use crate::programs::{self, start_ca};
use testkit::ServerProc;

const PASSPHRASE: &str = "correct horse battery staple\n";

/// The PEM blocks of `text`, in order.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end_marker = "-----END CERTIFICATE-----";
        let end = rest[start..].find(end_marker).expect("an END line") + start + end_marker.len();
        out.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    out
}

/// The chain the server at `port` sends, as `openssl s_client -showcerts` prints it.
fn chain_on_the_wire(port: u16, root: &std::path::Path) -> Vec<String> {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-showcerts",
        ])
        .arg("-CAfile")
        .arg(root)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl must be installed (Debian package openssl)");
    pem_blocks(&String::from_utf8_lossy(&out.stdout))
}

fn mtls_ca(args: &[&str], dir: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(programs::ca())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run mtls-ca");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_offline_root_ca_serves_leaf_and_intermediate_renews_live_under_load_and_revokes() {
    require_binaries();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("pass"), PASSPHRASE).unwrap();
    let (ok, out, err) = mtls_ca(
        &[
            "--data-dir",
            "ca",
            "init",
            "--offline-root",
            "offline",
            "--passphrase-file",
            "pass",
            "--trust-domain",
            "mesh.local",
            "--intermediate-lifetime",
            "30d",
        ],
        dir,
    );
    assert!(ok, "{out}{err}");
    let fingerprint = out
        .trim()
        .strip_prefix("root fingerprint (SHA-256): ")
        .expect("the fingerprint line")
        .to_string();
    assert!(
        !dir.join("ca/root.key").exists(),
        "the root key stays offline"
    );
    assert!(dir.join("offline/root.key").exists());

    let ca = start_ca(
        "ca",
        &dir.join("ca"),
        "127.0.0.1:0",
        &["--cert-duration", "10s"],
    );
    assert_eq!(ca.fingerprint, fingerprint, "services pin the offline root");
    let server = enrolled_server(&ca, dir, &["--crl-refresh", "1s"]);
    let mut client = spawn_client(
        &ca,
        dir,
        &server,
        &[
            "--server-id",
            SERVER_ID,
            "--count",
            "250",
            "--interval",
            "100ms",
            "--quiet",
        ],
    );
    client.wait_for(|l| l.starts_with("[CLIENT] connected:"), LONG);

    // Leaf + intermediate on the wire, and OpenSSL builds the path to the root with them.
    let root = dir.join("ca/root.crt");
    let first_intermediate = std::fs::read_to_string(dir.join("ca/intermediate.crt")).unwrap();
    let chain = chain_on_the_wire(server.port, &root);
    assert_eq!(chain.len(), 2, "leaf and intermediate, no root: {chain:?}");
    assert_eq!(chain[1], first_intermediate);
    std::fs::write(dir.join("leaf.pem"), &chain[0]).unwrap();
    std::fs::write(dir.join("inter.pem"), &chain[1]).unwrap();
    let verify = Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            "ca/root.crt",
            "-untrusted",
            "inter.pem",
            "leaf.pem",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let without = Command::new("openssl")
        .args(["verify", "-CAfile", "ca/root.crt", "leaf.pem"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!without.status.success(), "the leaf alone must not verify");

    // The offline ceremony on one machine against the running CA: no restart. It takes up
    // the renewed intermediate.crt within a poll (about a second).
    let ca_mark = ca.proc.mark();
    let (ok, out, err) = mtls_ca(
        &[
            "--data-dir",
            "ca",
            "intermediate",
            "renew",
            "--root-key",
            "offline",
            "--passphrase-file",
            "pass",
            "--lifetime",
            "60d",
        ],
        dir,
    );
    assert!(ok, "{out}{err}");
    let renewed = std::fs::read_to_string(dir.join("ca/intermediate.crt")).unwrap();
    assert_ne!(renewed, first_intermediate);
    ca.proc
        .wait_for_after(ca_mark, |l| l.contains("intermediate reloaded"), LONG);
    assert_eq!(ca_metric(&ca, "mtls_ca_intermediate_reloads_total "), 1);
    // The CA's own API certificate is re-issued under it.
    let api_chain = chain_on_the_wire(ca.port, &root);
    assert_eq!(api_chain.get(1), Some(&renewed), "{api_chain:?}");
    // A renewal answered just before the reload may still be logged: wait for rotations until
    // one brings the renewed intermediate (the next comes ~5 s later).
    let renewed_on_the_wire = |server: &ServerProc| {
        let mut mark = server.proc.mark();
        let mut chain = Vec::new();
        for _ in 0..3 {
            server
                .proc
                .wait_for_after(mark, |l| l.contains("certificate rotated"), LONG);
            mark = server.proc.mark();
            chain = chain_on_the_wire(server.port, &root);
            if chain.get(1) == Some(&renewed) {
                break;
            }
        }
        chain
    };
    let chain = renewed_on_the_wire(&server);
    assert_eq!(chain.len(), 2, "{chain:?}");
    assert_eq!(
        chain[1], renewed,
        "the server sends the renewed intermediate"
    );

    // Another key's certificate written over intermediate.crt changes nothing: the CA keeps
    // signing under the renewed intermediate, stays healthy, counts and logs the refusal.
    let ca_mark = ca.proc.mark();
    std::fs::copy(dir.join("ca/root.crt"), dir.join("ca/intermediate.crt")).unwrap();
    let refused = ca.proc.wait_for_after(
        ca_mark,
        |l| l.contains("not taking up the changed intermediate"),
        LONG,
    );
    assert!(refused.contains("does not fit this CA"), "{refused}");
    assert!(ca_metric(&ca, "mtls_ca_intermediate_reload_failures_total ") >= 1);
    assert_eq!(ca_metric(&ca, "mtls_ca_intermediate_reloads_total "), 1);
    let health = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&root)
        .arg(format!("https://localhost:{}/healthz", ca.port))
        .output()
        .expect("run curl");
    assert!(health.status.success(), "{health:?}");
    let chain = renewed_on_the_wire(&server);
    assert_eq!(
        chain.get(1),
        Some(&renewed),
        "leaves are still issued under the renewed intermediate"
    );
    assert_eq!(chain_on_the_wire(ca.port, &root).get(1), Some(&renewed));

    let status = client
        .wait_exit(Duration::from_secs(120))
        .expect("client finished in time");
    let out = client.output();
    assert!(
        out.contains("250 request(s): 250 ok, 0 failed"),
        "requests failed during the intermediate renewal:\n{out}"
    );
    assert!(status.success(), "{out}");

    // Revocation through the intermediate's CRL: a new client, revoked, is refused.
    let revoked = spawn_client(
        &ca,
        dir,
        &server,
        &["--count", "600", "--interval", "100ms", "--quiet"],
    );
    let connected = revoked.wait_for(|l| l.starts_with("[CLIENT] connected:"), LONG);
    let serial = connected
        .split_whitespace()
        .find_map(|w| w.strip_prefix("own_serial="))
        .expect("own serial")
        .to_string();
    let mark = revoked.mark();
    ca.revoke(&serial);
    revoked.wait_for_after(
        mark,
        |l| l.contains("server rejected our certificate: revoked"),
        LONG,
    );
}
