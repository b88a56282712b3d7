//! Settings that cannot work are refused before anything starts, by `mtls-ca` serving and by
//! every subcommand: exit 2, the option named and the accepted range stated, and nothing
//! created in the data directory. The edges of each range are accepted.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::common::*;

/// (arguments after `--data-dir DIR`, what stderr must say: the option and the range).
const REFUSED: &[(&[&str], &[&str])] = &[
    (
        &["--cert-duration", "0s"],
        &["'--cert-duration <DURATION>'", "the minimum is 1s"],
    ),
    (
        &["--cert-duration", "1ms"],
        &["'--cert-duration <DURATION>'", "the minimum is 1s"],
    ),
    (
        &["--cert-duration=-5m"],
        &[
            "'--cert-duration <DURATION>'",
            "negative: the minimum is 1s",
        ],
    ),
    (
        &["--max-duration", "0s"],
        &["'--max-duration <DURATION>'", "the minimum is 1s"],
    ),
    (
        &["--cert-duration", "2h", "--max-duration", "1h"],
        &[
            "--cert-duration 2h is longer than --max-duration 1h",
            "1s to --max-duration",
        ],
    ),
    (
        &["--crl-validity", "1s"],
        &["'--crl-validity <DURATION>'", "the minimum is 2s"],
    ),
    (
        &["--idle-timeout", "0s"],
        &["'--idle-timeout <DURATION>'", "the minimum is 1s"],
    ),
    (
        &["--header-timeout", "500ms"],
        &["'--header-timeout <DURATION>'", "the minimum is 1s"],
    ),
    (
        &["--request-timeout", "0s"],
        &["'--request-timeout <DURATION>'", "the minimum is 1s"],
    ),
    (
        &["--drain", "0s"],
        &["'--drain <DURATION>'", "the minimum is 1s"],
    ),
    (
        &["--backdate=-1s"],
        &["'--backdate <DURATION>'", "negative: the minimum is 0s"],
    ),
    (
        &["--max-connections", "0"],
        &["'--max-connections <N>'", "the minimum is 1"],
    ),
    (
        &["--max-connections", "16", "--authenticated-reserve", "16"],
        &[
            "--authenticated-reserve 16",
            "the accepted range is 0 to --max-connections - 1 (15)",
        ],
    ),
    (
        &["--trust-domain", "Mesh.Local"],
        &["'--trust-domain <TRUST_DOMAIN>'", "lowercase"],
    ),
    (&["--dns", "a..b"], &["'--dns <DNS>'", "empty label"]),
    // The serve options are checked with a subcommand too.
    (
        &["--cert-duration", "0s", "list"],
        &["'--cert-duration <DURATION>'", "the minimum is 1s"],
    ),
    (
        &[
            "token",
            "--spiffe-id",
            "spiffe://mesh.local/service/a",
            "--ttl",
            "1ms",
        ],
        &[
            "'--ttl <DURATION>'",
            "too short: the accepted range is 1s to 7d",
        ],
    ),
    (
        &[
            "token",
            "--spiffe-id",
            "spiffe://mesh.local/service/a",
            "--ttl",
            "0s",
        ],
        &["'--ttl <DURATION>'", "the accepted range is 1s to 7d"],
    ),
    (
        &[
            "token",
            "--spiffe-id",
            "spiffe://mesh.local/service/a",
            "--ttl",
            "8d",
        ],
        &[
            "'--ttl <DURATION>'",
            "too long: the accepted range is 1s to 7d",
        ],
    ),
    (
        &[
            "token",
            "--spiffe-id",
            "spiffe://mesh.local/service/a",
            "--ttl=-1h",
        ],
        &[
            "'--ttl <DURATION>'",
            "negative: the accepted range is 1s to 7d",
        ],
    ),
    (
        &["token", "--spiffe-id", "spiffe://Mesh/x"],
        &["'--spiffe-id <SPIFFE_ID>'", "lowercase"],
    ),
    (
        &[
            "token",
            "--spiffe-id",
            "spiffe://mesh.local/a",
            "--dns",
            "x-",
        ],
        &["'--dns <DNS>'", "starts or ends with a hyphen"],
    ),
    (
        &["revoke", "--serial", "zz"],
        &["'--serial <SERIAL>'", "not hexadecimal"],
    ),
    (
        &["revoke", "--serial", "01", "--reason", "bored"],
        &["'--reason <REASON>'", "keyCompromise"],
    ),
    (
        &["audit", "verify", "--expect-head", "7"],
        &["'--expect-head <SEQ:HASH>'", "SEQ:HASH"],
    ),
];

#[test]
fn settings_that_cannot_work_are_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    for (args, needles) in REFUSED {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let out = admin_in(&dir, &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{stderr}");
        for needle in *needles {
            assert!(
                stderr.contains(needle),
                "{args:?}: {needle:?} not in:\n{stderr}"
            );
        }
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        assert!(!dir.exists(), "{args:?} created the data directory");
    }
}

#[test]
fn the_edges_of_every_range_are_accepted() {
    let ca = Ca::start(&[
        "--cert-duration",
        "1s",
        "--max-duration",
        "1s",
        "--crl-validity",
        "2s",
        "--idle-timeout",
        "1s",
        "--header-timeout",
        "1s",
        "--request-timeout",
        "1s",
        "--drain",
        "1s",
        "--backdate",
        "0s",
        "--max-connections",
        "1",
        "--authenticated-reserve",
        "0",
    ]);
    for ttl in ["1s", "7d"] {
        let token = ca.token("spiffe://mesh.local/service/a", &["--ttl", ttl]);
        assert!(token.starts_with("mtj_"), "{ttl}: {token}");
    }
}
