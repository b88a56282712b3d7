//! Settings that cannot work are refused at start by `mtls-server`, `mtls-client`,
//! `mtls-bench` and `mtls-proxy`: exit status 2, the option named, the accepted range stated,
//! and nothing done (no file read, no join token redeemed). Issue 10's list: durations under 1 s, zero
//! intervals (`--crl-refresh 0s` polled the CA in a tight loop), `--rotate-at` outside (0, 1).

use std::process::Command;

use super::common::{CLIENT_ID, RUN_TIMEOUT};
use crate::programs::{self, start_ca};

const CA_URL: &str = "https://localhost:1";
const FINGERPRINT: &str = "4811cb1c44cd3bbf2eee4d0a8b1a2ea5b0ff7e2cbc4a0edf74c1e8d3e4b1c2a3";

/// Enrolled-mode arguments that would be fine on their own.
fn enrolled(token: &str) -> Vec<String> {
    [
        "--ca-url",
        CA_URL,
        "--ca-fingerprint",
        FINGERPRINT,
        "--spiffe-id",
        CLIENT_ID,
        "--join-token-file",
        token,
    ]
    .map(String::from)
    .to_vec()
}

/// Runs `program` with `args`; returns (exit code, stderr).
fn refused(program: &str, args: &[String]) -> (Option<i32>, String) {
    let mut cmd = Command::new(programs::by_name(program));
    cmd.args(args);
    let (status, _, stderr) = testkit::run(program, cmd, RUN_TIMEOUT);
    (status.code(), stderr)
}

#[test]
fn impossible_settings_exit_2_naming_the_option_and_the_range() {
    programs::require(&["mtls-server", "mtls-client", "mtls-bench", "mtls-proxy"]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "not-redeemed").unwrap();
    let token = token.display().to_string();
    let client = |extra: &[&str]| {
        let mut a = enrolled(&token);
        a.extend(["--server", "https://localhost:2"].map(String::from));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let server = |extra: &[&str]| {
        let mut a = enrolled(&token);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let bench = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "https://127.0.0.1:1/",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
            "--ca-cert",
            "r.pem",
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let proxy = |extra: &[&str]| {
        let mut a: Vec<String> = ["inbound", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9"]
            .map(String::from)
            .to_vec();
        a.extend(enrolled(&token));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let one_second = "the minimum is 1s";
    let cases: Vec<(&str, Vec<String>, &str, &str)> = vec![
        (
            "mtls-server",
            server(&["--crl-refresh", "0s"]),
            "--crl-refresh",
            one_second,
        ),
        (
            "mtls-server",
            server(&["--crl-refresh", "500ms"]),
            "--crl-refresh",
            one_second,
        ),
        (
            "mtls-server",
            server(&["--crl-max-staleness=-5s"]),
            "--crl-max-staleness",
            "negative",
        ),
        (
            "mtls-server",
            server(&["--reload-interval", "0s"]),
            "--reload-interval",
            one_second,
        ),
        (
            "mtls-server",
            server(&["--enroll-timeout", "1ms"]),
            "--enroll-timeout",
            one_second,
        ),
        ("mtls-server", server(&["--ttl", "0s"]), "--ttl", one_second),
        (
            "mtls-server",
            server(&["--idle-timeout", "0s"]),
            "--idle-timeout",
            one_second,
        ),
        (
            "mtls-server",
            server(&["--header-timeout", "10ms"]),
            "--header-timeout",
            one_second,
        ),
        (
            "mtls-server",
            server(&["--request-timeout", "0s"]),
            "--request-timeout",
            one_second,
        ),
        (
            "mtls-server",
            server(&["--drain", "0s"]),
            "--drain",
            one_second,
        ),
        (
            "mtls-server",
            server(&["--rotate-at", "0"]),
            "--rotate-at",
            "between 0 and 1 (exclusive)",
        ),
        (
            "mtls-server",
            server(&["--rotate-at", "1.5"]),
            "--rotate-at",
            "between 0 and 1 (exclusive)",
        ),
        (
            "mtls-server",
            server(&["--max-connections", "0"]),
            "--max-connections",
            "the minimum is 1",
        ),
        (
            "mtls-server",
            server(&["--max-connections-per-identity", "0"]),
            "--max-connections-per-identity",
            "the minimum is 1",
        ),
        (
            "mtls-server",
            server(&["--groups", "secp256r1"]),
            "--groups",
            "it accepts x25519, X25519MLKEM768",
        ),
        (
            "mtls-server",
            server(&["--allow-id", "web"]),
            "--allow-id",
            "expected a SPIFFE ID or a prefix",
        ),
        (
            "mtls-server",
            server(&["--admin-listen", "0.0.0.0:9090"]),
            "--admin-listen",
            "loopback",
        ),
        (
            "mtls-server",
            server(&["--curve", "P-192"]),
            "--curve",
            "P-256, P-384 or P-521",
        ),
        (
            "mtls-client",
            client(&["--crl-refresh", "0s"]),
            "--crl-refresh",
            one_second,
        ),
        (
            "mtls-client",
            client(&["--timeout", "0s"]),
            "--timeout",
            one_second,
        ),
        (
            "mtls-client",
            client(&["--interval", "0s"]),
            "--interval",
            "the minimum is 10ms",
        ),
        (
            "mtls-client",
            client(&["--rotate-at=-0.1"]),
            "--rotate-at",
            "between 0 and 1",
        ),
        (
            "mtls-client",
            client(&["--server-id", "billing"]),
            "--server-id",
            "spiffe://",
        ),
        (
            "mtls-client",
            client(&["--path", "api"]),
            "--path",
            "starting with /",
        ),
        (
            "mtls-bench",
            bench(&["--duration", "0s"]),
            "--duration",
            "the range is 1s to 10m",
        ),
        (
            "mtls-bench",
            bench(&["--duration", "11m"]),
            "--duration",
            "the range is 1s to 10m",
        ),
        (
            "mtls-bench",
            bench(&["--concurrency", "0"]),
            "--concurrency",
            "the minimum is 1",
        ),
        (
            "mtls-bench",
            bench(&["--requests", "0"]),
            "--requests",
            "the minimum is 1",
        ),
        (
            "mtls-bench",
            bench(&["--rate", "0"]),
            "--rate",
            "the minimum is 1",
        ),
        (
            "mtls-bench",
            bench(&["--threads", "0"]),
            "--threads",
            "the minimum is 1",
        ),
        (
            "mtls-bench",
            bench(&["--groups", "brainpool"]),
            "--groups",
            "known: secp384r1",
        ),
    ];
    let proxy_cases: Vec<(&str, Vec<String>, &str, &str)> = vec![
        (
            "mtls-proxy",
            proxy(&["--idle-timeout", "0s"]),
            "--idle-timeout",
            one_second,
        ),
        (
            "mtls-proxy",
            proxy(&["--connect-timeout", "10ms"]),
            "--connect-timeout",
            one_second,
        ),
        (
            "mtls-proxy",
            proxy(&["--handshake-timeout", "0s"]),
            "--handshake-timeout",
            one_second,
        ),
        (
            "mtls-proxy",
            proxy(&["--drain", "0s"]),
            "--drain",
            one_second,
        ),
        (
            "mtls-proxy",
            proxy(&["--crl-refresh", "0s"]),
            "--crl-refresh",
            one_second,
        ),
        (
            "mtls-proxy",
            proxy(&["--max-connections", "0"]),
            "--max-connections",
            "the minimum is 1",
        ),
        (
            "mtls-proxy",
            proxy(&["--max-connections-per-identity", "0"]),
            "--max-connections-per-identity",
            "the minimum is 1",
        ),
        (
            "mtls-proxy",
            proxy(&["--allow-id", "web"]),
            "--allow-id",
            "expected a SPIFFE ID or a prefix",
        ),
        (
            "mtls-proxy",
            proxy(&["--rotate-at", "1"]),
            "--rotate-at",
            "between 0 and 1 (exclusive)",
        ),
    ];
    for (program, args, option, range) in cases.into_iter().chain(proxy_cases) {
        let (code, stderr) = refused(program, &args);
        assert_eq!(code, Some(2), "{program} {args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("'{option} ")) && stderr.contains(range),
            "{program} {option}: {stderr}"
        );
    }

    // Credential options that do not fit together: exit 2 with both options named.
    let mut both = server(&[]);
    both.extend(["--cert", "c.pem", "--key", "k.pem"].map(String::from));
    let (code, stderr) = refused("mtls-server", &both);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr
            .contains("--ca-url (enrolled mode) and --cert/--key (static mode) exclude each other"),
        "{stderr}"
    );
    let (code, stderr) = refused(
        "mtls-client",
        &[
            "--server",
            "https://localhost:2",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
            "--spiffe-id",
            CLIENT_ID,
        ]
        .map(String::from),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--spiffe-id is for enrolled mode"),
        "{stderr}"
    );
}

/// A refused setting stops the program before it redeems the join token: the same token
/// enrolls afterwards.
#[test]
fn a_refused_setting_redeems_no_token() {
    programs::require(&["mtls-ca", "mtls-client"]);
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let token = dir.path().join("client.token");
    std::fs::write(&token, ca.token(CLIENT_ID, &[])).unwrap();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "--ca-url",
            &ca.url(),
            "--ca-fingerprint",
            &ca.fingerprint,
            "--spiffe-id",
            CLIENT_ID,
            "--join-token-file",
            &token.display().to_string(),
            "--server",
            "https://localhost:1",
            "--count",
            "0",
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let (code, stderr) = refused("mtls-client", &args(&["--crl-refresh", "0s"]));
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stderr) = refused("mtls-client", &args(&[]));
    assert_eq!(code, Some(0), "the token was still unused: {stderr}");
}
