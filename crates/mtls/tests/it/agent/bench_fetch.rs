//! `mtls-bench --mode workload-fetch` against a real agent for 2 seconds: it fetches, checks
//! and reports, and a wrong expectation or a workload no entry matches is reported as errors
//! (the check can fail). No timing is asserted: the figures live in docs/performance.md
//! (scripts/bench-agent.sh).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

use super::common::*;
use crate::programs;

const CLIENTS: u64 = 4;

fn bench(agent: &Agent, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let concurrency = CLIENTS.to_string();
    let out = Command::new(programs::bench())
        .arg(agent.endpoint())
        .args([
            "--mode",
            "workload-fetch",
            "--duration",
            "2s",
            "--json",
            "--quiet",
        ])
        .args(["--concurrency", &concurrency])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

#[test]
fn workload_fetch_mode_fetches_cached_svids_from_a_real_agent() {
    let agent = start();

    // Before any entry matches, every fetch is refused, and counted as such.
    let (code, report, stderr) = bench(&agent, &[]);
    assert_eq!(code, 1, "{report} {stderr}");
    assert_eq!(report["requests"], 0, "{report}");
    assert!(
        report["errors"]["permission_denied"].as_u64().unwrap() > 0,
        "{report}"
    );

    let mark = agent.proc.mark();
    agent.entry(WEB_ID, &[&format!("unix:uid:{}", my_uid())], &[]);
    agent.wait_minted(mark, WEB_ID);

    let (code, report, stderr) = bench(&agent, &["--expect", WEB_ID]);
    assert_eq!(code, 0, "{report} {stderr}");
    assert_eq!(report["mode"], "workload-fetch", "{report}");
    assert_eq!(report["errors_total"], 0, "{report}");
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    // One connection per workload, kept for the run; every fetch carried certificate bytes.
    assert_eq!(report["handshakes"], CLIENTS, "{report}");
    assert!(
        report["body_bytes"].as_u64().unwrap() > report["requests"].as_u64().unwrap(),
        "{report}"
    );
    for p in ["p50_ms", "p99_ms", "p999_ms", "max_ms"] {
        assert!(report[p].as_f64().unwrap() > 0.0, "{p}: {report}");
    }

    // The identity check is real: expecting another SPIFFE ID fails every fetch.
    let (code, report, _) = bench(&agent, &["--expect", "spiffe://mesh.local/service/other"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["requests"], 0, "{report}");
    assert!(
        report["errors"]["identity_mismatch"].as_u64().unwrap() > 0,
        "{report}"
    );
}
