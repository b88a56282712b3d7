//! Settings of `mtls-inspect` that cannot work are refused before any input is read: exit 2,
//! the option named and the accepted range stated. The edges of each range are accepted.

use super::common::{data_dir, run_in};

const REFUSED: &[(&[&str], &[&str])] = &[
    (
        &["lint", "--max-lifetime", "0s", "leaf.pem"],
        &["'--max-lifetime <DURATION>'", "the minimum is 1s"],
    ),
    (
        &["lint", "--max-lifetime", "500ms", "leaf.pem"],
        &["'--max-lifetime <DURATION>'", "the minimum is 1s"],
    ),
    (
        &["lint", "--max-ca-lifetime=-1d", "root.pem"],
        &[
            "'--max-ca-lifetime <DURATION>'",
            "negative: the minimum is 1s",
        ],
    ),
    (
        &["remote", "127.0.0.1:9", "--timeout", "0s"],
        &["'--timeout <DURATION>'", "the minimum is 1s"],
    ),
    (
        &["needs-renewal", "leaf.pem", "--at-fraction", "1.5"],
        &[
            "'--at-fraction <FRACTION>'",
            "outside the accepted range 0 to 1",
        ],
    ),
    (
        &["needs-renewal", "leaf.pem", "--at-fraction=-0.1"],
        &[
            "'--at-fraction <FRACTION>'",
            "outside the accepted range 0 to 1",
        ],
    ),
    (
        &["needs-renewal", "leaf.pem", "--at-fraction", "half"],
        &["'--at-fraction <FRACTION>'", "the accepted range is 0 to 1"],
    ),
    (
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--at",
            "0001-01-01T00:00:00Z",
        ],
        &[
            "'--at <RFC3339>'",
            "1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z",
        ],
    ),
];

#[test]
fn settings_that_cannot_work_are_refused_at_start() {
    for (args, needles) in REFUSED {
        let r = run_in(&data_dir(), args);
        assert_eq!(r.code, 2, "{args:?}:\n{}", r.stderr);
        for needle in *needles {
            assert!(
                r.stderr.contains(needle),
                "{args:?}: {needle:?} not in:\n{}",
                r.stderr
            );
        }
        assert!(r.stdout.is_empty(), "{args:?} printed {}", r.stdout);
    }
}

#[test]
fn the_edges_of_the_ranges_are_accepted() {
    for args in [
        &[
            "lint",
            "--max-lifetime",
            "1s",
            "--max-ca-lifetime",
            "1s",
            "leaf.pem",
        ][..],
        &["needs-renewal", "leaf.pem", "--at-fraction", "0"],
        &["needs-renewal", "leaf.pem", "--at-fraction", "1"],
    ] {
        let r = run_in(&data_dir(), args);
        assert!(
            r.code == 0 || r.code == 1,
            "{args:?}: {}\n{}",
            r.code,
            r.stderr
        );
    }
}
