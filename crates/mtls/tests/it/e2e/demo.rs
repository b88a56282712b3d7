//! Runs the README's first command, `scripts/demo.sh`, against the binaries of this build:
//! CA, enrollment, an mTLS call, three refusals, rotation under traffic. The script checks every
//! outcome itself and prints "DEMO OK" only if all of them happened.
//!
//! The script gets the directory of the programs Cargo built for this test (or
//! `$MTLS_BIN_DIR`) with `--bin-dir`, so it builds nothing. Needs bash, openssl (3.0+) and curl.
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::programs;

/// The programs the demo runs.
const BINARIES: [&str; 4] = ["mtls-ca", "mtls-server", "mtls-client", "mtls-inspect"];

/// The demo normally takes 15-20 s; its own waits are bounded well below this.
const DEMO_TIMEOUT: Duration = Duration::from_secs(240);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Waits for `child` at most `limit`; on timeout sends SIGTERM (so a script's cleanup trap runs
/// and stops what it started), then SIGKILL. Returns None on timeout. A waiter thread owns the
/// child and reports its exit over a channel, so the wait is an event with a deadline.
fn wait_bounded(child: Child, limit: Duration) -> Option<ExitStatus> {
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut child = child;
        let _ = tx.send(child.wait());
    });
    if let Ok(status) = rx.recv_timeout(limit) {
        return Some(status.expect("wait for child"));
    }
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    if rx.recv_timeout(Duration::from_secs(10)).is_err() {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        let _ = rx.recv_timeout(Duration::from_secs(10));
    }
    None
}

#[test]
fn demo_script_runs_every_step_and_says_demo_ok() {
    programs::require(&BINARIES);
    let bin_dir = programs::bin_dir();

    let logs = tempfile::tempdir().expect("tempdir");
    let out_path = logs.path().join("demo.out");
    let err_path = logs.path().join("demo.err");
    let script = workspace_root().join("scripts/demo.sh");
    #[allow(clippy::disallowed_methods)] // the report says how long the real demo took
    let started = Instant::now();
    let child = Command::new("bash")
        .arg(&script)
        .arg("--no-build")
        .arg("--bin-dir")
        .arg(&bin_dir)
        .current_dir(workspace_root())
        .env("NO_COLOR", "1")
        .env_remove("MTLS_JOIN_TOKEN")
        .env_remove("MTLS_CA_DATA_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(fs::File::create(&out_path).expect("create demo.out"))
        .stderr(fs::File::create(&err_path).expect("create demo.err"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
    let status = wait_bounded(child, DEMO_TIMEOUT);
    let took = started.elapsed();
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let report = format!(
        "scripts/demo.sh --no-build --bin-dir {} ({took:.1?}): {status:?}\n\
         --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        bin_dir.display()
    );
    println!("{report}");

    let status = status.unwrap_or_else(|| panic!("the demo did not finish in time\n{report}"));
    assert!(status.success(), "the demo failed\n{report}");
    assert!(stdout.contains("DEMO OK"), "no DEMO OK line\n{report}");
    // Every step ran (the script's own checks decide pass or fail; these guard against a
    // script that skips steps yet says DEMO OK).
    for step in 1..=8 {
        assert!(
            stdout.contains(&format!("== Step {step}/8: ")),
            "step {step} missing\n{report}"
        );
    }
    for needle in [
        "server rejected our certificate: unknown CA",
        "server rejected our certificate: revoked",
        "failed: no client certificate presented",
        "60 request(s): 60 ok, 0 failed",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not shown\n{report}");
    }
}
