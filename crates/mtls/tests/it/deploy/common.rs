//! What the deploy checks share: the files under `deploy/`, the workspace's programs, and the
//! check that a command line is accepted by the program it names.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The repository's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// A file under `deploy/`, as text.
pub fn read(relative: &str) -> String {
    let path = deploy_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `[[bin]]` names of the mtls package (crates/mtls/Cargo.toml): the programs that exist.
pub fn workspace_programs() -> Vec<String> {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let manifest: toml::Table = manifest.parse().unwrap();
    let bins = manifest["bin"].as_array().expect("[[bin]] tables");
    bins.iter()
        .map(|b| {
            b["name"]
                .as_str()
                .expect("a [[bin]] has a name")
                .to_string()
        })
        .collect()
}

/// Checks that `program` accepts `args` (from `origin`, named in the failure) without running
/// anything: it runs `program ARGS... --help`. Clap reads the arguments in order, checks each
/// flag name, parses each value with the program's own value parsers (the last flag's value
/// too: clap settles a value when the next flag starts), and stops at the first it refuses
/// (exit 2, naming it); only when every one of ARGS is accepted does it reach `--help`, print
/// the usage and exit 0. The checks between options that run after parsing (conflicts,
/// missing required options) are not reached; the systemd test starts the units' programs for
/// those.
pub fn assert_accepted(program: &Path, args: &[String], origin: &str) {
    let (accepted, output) = parse(program, args);
    assert!(
        accepted && output.contains("Usage:"),
        "{origin}: {} does not accept {args:?}:\n{output}",
        program.display()
    );
}

/// Runs `program ARGS... --help`: (exit status 0, its output).
fn parse(program: &Path, args: &[String]) -> (bool, String) {
    let mut cmd = Command::new(program);
    cmd.args(args).arg("--help");
    // Values the programs read from the environment must come from the file under test only.
    for var in [
        "MTLS_CA_DATA_DIR",
        "MTLS_CA_STORE",
        "MTLS_CA_STORE_TO",
        "MTLS_JOIN_TOKEN",
        "SPIFFE_ENDPOINT_SOCKET",
    ] {
        cmd.env_remove(var);
    }
    let (status, _, output) = testkit::process::run("parser", cmd, Duration::from_secs(30));
    (status.success(), output)
}

/// The port of a `HOST:PORT` listen address.
pub fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{addr:?} is not HOST:PORT"))
}

/// The value following `flag` in `args` (the first occurrence).
pub fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// The parser check must be able to fail: a flag that does not exist and a value its parser
/// refuses (the last one given too) are both reported, naming them.
#[test]
fn the_parser_check_refuses_unknown_flags_and_bad_values() {
    let ca = crate::programs::ca();
    let (accepted, output) = parse(&ca, &["--listen".into(), "127.0.0.1:0".into()]);
    assert!(accepted && output.contains("Usage:"), "{output}");
    let (accepted, output) = parse(&ca, &["--no-such-flag".into()]);
    assert!(!accepted, "{output}");
    assert!(
        output.contains("unexpected argument '--no-such-flag'"),
        "{output}"
    );
    let (accepted, output) = parse(&ca, &["--cert-duration".into(), "0s".into()]);
    assert!(!accepted, "{output}");
    assert!(
        output.contains("invalid value '0s' for '--cert-duration"),
        "{output}"
    );
}
