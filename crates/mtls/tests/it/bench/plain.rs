//! mtls-bench against a plaintext HTTP server (the direct baseline of scripts/bench-proxies.sh):
//! every body byte is counted (bulk throughput), `--rate` paces the run, and a wrong body or a
//! closed server is still reported as errors. No timing is asserted beyond the pacing bound.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

use crate::programs;
use testkit::pki_kit::TestCa;

/// Response body size: larger than any single read or TLS record, so counting is not by luck.
const BODY: usize = 300_000;

/// A keep-alive HTTP/1.1 server that answers every request with `BODY` bytes starting with
/// `marker`. Returns its port.
fn plain_server(marker: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = serve(conn, marker);
            });
        }
    });
    port
}

fn serve(conn: TcpStream, marker: &str) -> std::io::Result<()> {
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut body = vec![b'.'; BODY];
    body[..marker.len()].copy_from_slice(marker.as_bytes());
    loop {
        // Read one request head; the end of the stream ends the connection.
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
        }
        writer
            .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\n\r\n").as_bytes())?;
        writer.write_all(&body)?;
    }
}

fn bench(url: &str, extra: &[&str], pki: &std::path::Path) -> (i32, serde_json::Value) {
    let dir = pki.display().to_string();
    let mut args = vec![
        url.to_string(),
        "--cert".into(),
        format!("{dir}/client.crt"),
        "--key".into(),
        format!("{dir}/client.key"),
        "--ca-cert".into(),
        format!("{dir}/root.crt"),
        "--json".into(),
        "--quiet".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(programs::bench())
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stderr}"));
    (out.status.code().unwrap_or(-1), report)
}

fn pki() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Bench Plain Root");
    ca.write_root(tmp.path(), "root.crt");
    ca.client("spiffe://mesh.local/bench/client")
        .write(tmp.path(), "client");
    tmp
}

#[test]
fn plain_http_target_counts_every_body_byte_and_keeps_to_the_rate() {
    let tmp = pki();
    let port = plain_server("bulk-marker");
    let url = format!("http://127.0.0.1:{port}/bulk");
    // 40 requests/s over 4 connections for 2 s: about 80 requests, never many more.
    let (code, report) = bench(
        &url,
        &[
            "--mode",
            "keepalive",
            "--concurrency",
            "4",
            "--duration",
            "2s",
            "--rate",
            "40",
            "--expect",
            "bulk-marker",
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["errors_total"], 0, "{report}");
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 0, "{report}");
    let seconds = report["seconds"].as_f64().unwrap();
    assert!(
        (requests as f64) <= 40.0 * seconds + 4.0,
        "--rate 40 exceeded: {report}"
    );
    assert_eq!(report["rate"], 40, "{report}");
    assert_eq!(
        report["body_bytes"].as_u64().unwrap(),
        requests * BODY as u64,
        "every byte of every body is counted: {report}"
    );
    assert!(
        report["body_mib_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );

    // Unpaced, new connections: works over plaintext too and runs past the paced count.
    let (code, report) = bench(
        &url,
        &[
            "--mode",
            "new",
            "--concurrency",
            "2",
            "--duration",
            "1s",
            "--expect",
            "",
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{report}");
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["rate"], serde_json::Value::Null, "{report}");
}

#[test]
fn plain_http_target_still_checks_the_body_and_reports_a_dead_server() {
    let tmp = pki();
    let port = plain_server("something-else");
    let url = format!("http://127.0.0.1:{port}/");
    let (code, report) = bench(
        &url,
        &[
            "--duration",
            "1s",
            "--concurrency",
            "1",
            "--expect",
            "bulk-marker",
        ],
        tmp.path(),
    );
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["requests"], 0, "{report}");
    assert_eq!(
        report["body_bytes"], 0,
        "failed requests count no bytes: {report}"
    );
    assert!(
        report["errors"]["identity_mismatch"].as_u64().unwrap() > 0,
        "{report}"
    );

    // Nothing listens on a port just freed: connection errors, exit 1.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, report) = bench(
        &format!("http://127.0.0.1:{closed}/"),
        &["--duration", "1s", "--concurrency", "1", "--expect", "x"],
        tmp.path(),
    );
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["requests"], 0, "{report}");
    assert!(
        report["errors"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("connect")),
        "{report}"
    );
}
