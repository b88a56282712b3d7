//! `scripts/latency-floor.py`: the machine's own wake-up latency over a Unix socket, the floor
//! under the agent's fetch latency (docs/performance.md, "mtls-agent").

use std::path::Path;
use std::process::{Command, Stdio};

fn run(args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/latency-floor.py");
    Command::new("python3")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running python3 scripts/latency-floor.py")
}

/// The number after `label` in `line` ("p50 0.035 / ...").
fn figure(line: &str, label: &str) -> f64 {
    let after = line
        .split(&format!("{label} "))
        .nth(1)
        .unwrap_or_else(|| panic!("no {label} in {line}"));
    let number: String = after
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number
        .parse()
        .unwrap_or_else(|e| panic!("{label} in {line}: {e}"))
}

#[test]
fn the_floor_is_measured_over_the_requests_asked_for_and_ordered() {
    let out = run(&["--rate", "2000", "--requests", "300"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("paced at 2000/s, 300 requests"), "{stdout}");
    let (p50, p99, p999, max) = (
        figure(&stdout, "p50"),
        figure(&stdout, "p99"),
        figure(&stdout, "p99.9"),
        figure(&stdout, "max"),
    );
    assert!(
        p50 > 0.0 && p50 <= p99 && p99 <= p999 && p999 <= max,
        "{stdout}"
    );
    assert!(stdout.contains("% of the machine's CPU time"), "{stdout}");
}

#[test]
fn settings_out_of_range_are_refused() {
    for args in [&["--rate", "0"][..], &["--requests", "5"][..]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--rate must be >= 1"),
            "{args:?}"
        );
    }
}
