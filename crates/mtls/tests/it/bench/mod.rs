//! `mtls-bench` against a real `mtls-server`, and against a plaintext HTTP server; the
//! benchmark scripts' smoke runs.

mod agent_script;
mod ca_script;
mod latency_floor;
mod plain;
mod smoke;

/// Runs `scripts/SCRIPT --smoke --bin-dir <this test build's binaries> ARGS`, asserts it succeeded
/// and returns its stdout.
fn smoke_script(script: &str, args: &[&str]) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts").join(script))
        .args(["--smoke", "--bin-dir"])
        .arg(crate::programs::bin_dir())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running bash {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}: {stdout}\n{stderr}");
    stdout
}
