//! `needs-renewal`: exit 0 when due, 1 when not, 2 on error (`step certificate needs-renewal`).

#![allow(clippy::unwrap_used)]

use super::common;

use super::common::{json, run_in};

fn renewal(args: &[&str]) -> common::Run {
    let mut full = vec!["needs-renewal", "leaf.pem"];
    full.extend_from_slice(args);
    run_in(&common::data_dir(), &full)
}

#[test]
fn due_not_due_and_expired() {
    // leaf.pem: NotBefore 2025-12-31T23:59:30Z, NotAfter 2026-01-01T01:00:00Z (1h 30s).
    let r = renewal(&["--at", "2026-01-01T00:10:00Z"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(
        r.stdout,
        "renewal not due: 17% of the lifetime has elapsed; due at 2026-01-01T00:29:45Z (in 19m 45s, at 50%)\n"
    );
    let r = renewal(&["--at", "2026-01-01T00:40:00Z"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .starts_with("renewal due: 66% of the lifetime has elapsed"),
        "{}",
        r.stdout
    );
    let r = renewal(&["--at", "2026-01-01T00:40:00Z", "--at-fraction", "0.9"]);
    assert_eq!(r.code, 1);
    let r = renewal(&["--at", "2026-01-02T00:00:00Z"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout,
        "renewal due: the certificate expired 23h ago (2026-01-01T01:00:00Z)\n"
    );
}

#[test]
fn json_output() {
    let r = renewal(&["--at", "2026-01-01T00:10:00Z", "--format", "json"]);
    assert_eq!(r.code, 1);
    let doc = json(&r);
    assert_eq!(doc["schema"], "mtls-inspect.needs-renewal/v1");
    assert_eq!(doc["needs_renewal"], false);
    assert_eq!(doc["renew_at"], "2026-01-01T00:29:45Z");
    assert_eq!(doc["expired"], false);
}

#[test]
fn errors_exit_2() {
    for (args, needle) in [
        (
            vec!["needs-renewal", "leaf.pem", "--at-fraction", "1.5"],
            "invalid value '1.5' for '--at-fraction <FRACTION>': 1.5 is outside the accepted range 0 to 1",
        ),
        (
            vec!["needs-renewal", "missing.pem"],
            "cannot read missing.pem",
        ),
        (
            vec!["needs-renewal", "crl.pem"],
            "object #1 is a CRL, but the certificate must be certificates",
        ),
        (vec!["needs-renewal"], "required"),
    ] {
        let r = run_in(&common::data_dir(), &args);
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
}
