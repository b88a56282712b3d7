//! CI's smoke run: mtls-bench drives a real mtls-server for 2 seconds in both modes with zero
//! errors, and a wrong expectation is reported as errors (the check can fail). No timing is
//! asserted: figures live in docs/performance.md.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

use crate::programs::{self, start_server};
use testkit::pki_kit::TestCa;

fn bench(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(programs::bench()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

#[test]
fn two_second_smoke_run_against_mtls_server_has_zero_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Bench Smoke Root");
    let root = ca.write_root(tmp.path(), "root");
    let (scert, skey) = ca
        .server("spiffe://mesh.local/bench/server")
        .write(tmp.path(), "server");
    let (ccert, ckey) = ca
        .client("spiffe://mesh.local/bench/client")
        .write(tmp.path(), "client");
    let server = start_server(
        "mtls-server",
        &[
            "--cert".into(),
            scert.display().to_string(),
            "--key".into(),
            skey.display().to_string(),
            "--ca-cert".into(),
            root.display().to_string(),
        ],
    );
    let url = format!("https://localhost:{}/api/status", server.port);
    let common = [
        "--duration",
        "2s",
        "--concurrency",
        "4",
        "--cert",
        ccert.to_str().unwrap(),
        "--key",
        ckey.to_str().unwrap(),
        "--ca-cert",
        root.to_str().unwrap(),
        "--json",
        "--quiet",
    ];
    for mode in ["new", "keepalive"] {
        let mut args = vec![url.as_str(), "--mode", mode];
        args.extend_from_slice(&common);
        let (code, report, stderr) = bench(&args);
        assert_eq!(code, 0, "{mode}: {report} {stderr}");
        assert_eq!(report["errors_total"], 0, "{mode}: {report}");
        assert!(report["requests"].as_u64().unwrap() > 0, "{mode}: {report}");
        assert!(
            report["handshakes"].as_u64().unwrap() > 0,
            "{mode}: {report}"
        );
    }

    // The identity check is real: expecting another caller turns every response into an error.
    let mut args = vec![
        url.as_str(),
        "--mode",
        "keepalive",
        "--expect",
        "spiffe://mesh.local/someone-else",
    ];
    args.extend_from_slice(&common);
    let (code, report, _) = bench(&args);
    assert_eq!(code, 1);
    assert_eq!(report["requests"], 0);
    assert!(
        report["errors"]["identity_mismatch"].as_u64().unwrap() > 0,
        "{report}"
    );
}

#[test]
fn non_loopback_targets_are_refused() {
    let out = Command::new(programs::bench())
        .args([
            "https://192.0.2.1:443/",
            "--cert",
            "x",
            "--key",
            "y",
            "--ca-cert",
            "z",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"));
}

#[test]
fn tls_modes_refuse_to_start_without_the_certificate_options() {
    for (missing, args) in [
        ("--cert", ["--key", "y", "--ca-cert", "z"]),
        ("--key", ["--cert", "x", "--ca-cert", "z"]),
        ("--ca-cert", ["--cert", "x", "--key", "y"]),
    ] {
        let out = Command::new(programs::bench())
            .arg("https://127.0.0.1:1/")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "{missing} is required by every --mode but workload-fetch"
            )),
            "{stderr}"
        );
    }
}
