//! `lint` does work linear in the number of certificates: each candidate issuer is parsed once
//! and each certificate finds its issuer by one hash lookup and one signature check. Counted,
//! not timed, so a busy machine cannot make it flake. (It used to parse every candidate for
//! every certificate: 2,000 certificates took 19 s; docs/performance.md has the figures.)

#![allow(clippy::unwrap_used)]

use super::common;

use mtls_inspect::input;
use mtls_inspect::lint::{self, Policy, ProfileChoice, Severity};
use testkit::bundle::leaf_bundle;

fn policy() -> Policy {
    Policy {
        trust_domain: None,
        max_lifetime: time::Duration::hours(24),
        max_ca_lifetime: time::Duration::days(3660),
        profile: ProfileChoice::Auto,
    }
}

#[test]
fn lint_work_grows_linearly_with_the_bundle() {
    let now = common::now();
    let root = pki::CaMaterial::generate_root("Bundle Root", now).unwrap();
    let mut work = Vec::new();
    let mut pem = String::new();
    for leaves in [500, 2000] {
        // The root comes last, so a scan for the issuer would cross the whole bundle.
        pem = leaf_bundle(&root, leaves, now);
        let parsed = input::parse("bundle.pem", pem.as_bytes()).unwrap();
        let (reports, stats) = lint::lint_all(&parsed.objects, &[], &policy()).unwrap();
        assert_eq!(reports.len(), leaves + 1);
        assert!(
            reports
                .iter()
                .flat_map(|r| &r.findings)
                .all(|f| f.severity != Severity::Error),
            "our CA's certificates lint clean"
        );
        // Every certificate is a candidate issuer, parsed once; each leaf's signature is
        // checked once, against the root (the root is self-issued: no lookup).
        assert_eq!(stats.parses, leaves + 1);
        assert_eq!(stats.signature_checks, leaves);
        work.push(stats.parses + stats.signature_checks);
    }
    // Four times the certificates, four times the work (a quadratic scan would be 16 times).
    assert!(work[1] <= 4 * work[0], "{work:?}");

    // The binary lints a 2,000-certificate bundle to the end (the issuer of every leaf is the
    // last certificate of the file).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bundle.pem"), &pem).unwrap();
    let r = common::run_in(dir.path(), &["lint", "bundle.pem"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .ends_with("2001 certificates: 0 errors, 0 warnings\n"),
        "{}",
        &r.stdout[r.stdout.len().saturating_sub(200)..]
    );
}
