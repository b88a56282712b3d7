//! `scripts/bench-ca.sh --smoke` runs end to end against this build (a real mtls-ca, tokens in
//! its store, mtls-bench --mode ca-sign), on SQLite and on a throwaway PostgreSQL with two CA
//! replicas, so the issuance benchmark cannot rot. No timing is
//! asserted: figures live in docs/performance.md.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;

use crate::programs;

/// Runs `scripts/bench-ca.sh --smoke ARGS` on this build; returns its result row's cells
/// (`| clients | certificates/s | p50 | p99 | CA CPU | CA CPU ms/cert | load CPU ms/cert |
/// PostgreSQL CPU | WAL fsyncs/s | errors |`).
fn smoke(args: &[&str]) -> Vec<String> {
    let bin_dir = programs::bin_dir();
    assert!(
        bin_dir.join("examples/ca_crash_load").is_file(),
        "{}/examples/ca_crash_load is missing: `cargo test` builds it unless a test target is \
         named; build it with `cargo build -p mtls --example ca_crash_load`",
        bin_dir.display()
    );
    let stdout = super::smoke_script("bench-ca.sh", args);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| 4 |"))
        .unwrap_or_else(|| panic!("no result row: {stdout}"));
    let cells: Vec<String> = row.split('|').map(|c| c.trim().to_string()).collect();
    assert_eq!(cells.len(), 12, "{row}");
    assert_eq!(cells[10], "0", "no errors: {row}");
    assert!(cells[2].parse::<f64>().unwrap() > 0.0, "{row}");
    // CPU comes in 10 ms clock ticks: a 40-certificate run may read 0, but never less; the
    // load generator's made its CSRs before the run and did TLS handshakes, never 0.
    assert!(cells[6].parse::<f64>().is_ok_and(|v| v >= 0.0), "{row}");
    assert!(cells[7].parse::<f64>().is_ok_and(|v| v > 0.0), "{row}");
    cells
}

#[test]
fn bench_ca_smoke_run_issues_certificates_with_zero_errors() {
    let cells = smoke(&[]);
    // SQLite: no PostgreSQL figures.
    assert_eq!((cells[8].as_str(), cells[9].as_str()), ("-", "-"));
}

#[test]
fn bench_ca_smoke_run_on_postgres_with_two_replicas_issues_with_zero_errors() {
    let cells = smoke(&["--store", "postgres", "--replicas", "2"]);
    // The PostgreSQL columns are there and numeric. Their values are figures for long runs,
    // not something a 40-certificate run can assert on: CPU comes in 10 ms clock ticks, and
    // backends publish their WAL counters to pg_stat_wal only about once a second, so both
    // can read 0 here (seen under load).
    for cell in &cells[8..10] {
        assert!(cell.parse::<f64>().is_ok_and(|v| v >= 0.0), "{cells:?}");
    }
}

#[test]
fn bench_ca_refuses_replicas_without_postgres() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(root.join("scripts/bench-ca.sh"))
        .args(["--replicas", "2"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--replicas 2 needs --store postgres"),
        "{stderr}"
    );
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

#[test]
fn bench_ca_smoke_run_with_the_key_in_softhsm_issues_with_zero_errors() {
    let cells = smoke(&["--key", "pkcs11"]);
    assert_eq!((cells[8].as_str(), cells[9].as_str()), ("-", "-"));
}
