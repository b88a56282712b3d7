//! `scripts/bench-ca.sh --smoke` runs end to end against this build (a real mtls-ca, tokens in
//! its store, mtls-bench --mode ca-sign), so the issuance benchmark cannot rot. No timing is
//! asserted: figures live in docs/performance.md.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

use crate::programs;

#[test]
fn bench_ca_smoke_run_issues_certificates_with_zero_errors() {
    let bin_dir = programs::bin_dir();
    assert!(
        bin_dir.join("examples/ca_crash_load").is_file(),
        "{}/examples/ca_crash_load is missing: `cargo test` builds it unless a test target is \
         named; build it with `cargo build -p mtls --example ca_crash_load`",
        bin_dir.display()
    );
    let stdout = super::smoke_script("bench-ca.sh");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| 4 |"))
        .unwrap_or_else(|| panic!("no result row: {stdout}"));
    // | clients | certificates/s | p50 | p99 | CA CPU | errors |
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cells[6], "0", "{row}");
    assert!(cells[2].parse::<f64>().unwrap() > 0.0, "{row}");
}

#[test]
fn ca_sign_mode_needs_a_tokens_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = testkit::pki_kit::TestCa::new("Bench Tokens Root");
    let root = ca.write_root(tmp.path(), "root");
    let (cert, key) = ca
        .client("spiffe://mesh.local/bench/client")
        .write(tmp.path(), "client");
    let out = Command::new(programs::bench())
        .args([
            "https://127.0.0.1:1/api/v1/sign",
            "--mode",
            "ca-sign",
            "--cert",
        ])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("--ca-cert")
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--mode ca-sign needs --tokens FILE"),
        "{stderr}"
    );
}
