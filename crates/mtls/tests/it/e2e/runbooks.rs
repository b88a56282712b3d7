//! The copy-paste runbooks of docs/operations.md, run by bash as written against a real CA
//! (only the CA's address differs), after the README's curl enrollment made `api.crt`.
#![cfg(unix)]

use super::readme_recipe::{doc_block, readme_block, report, run_in, README_CA};
use crate::programs::{self, start_ca};

#[test]
fn the_ocsp_runbook_reports_good_then_revoked() {
    programs::require(&["mtls-ca", "mtls-inspect"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_data = dir.path().join("ca-data");
    let ca = start_ca("ca", &ca_data, "127.0.0.1:0", &[]);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    let enroll = readme_block().replace(README_CA, &ca.url());
    let out = run_in(&work, &ca_data, &enroll);
    assert!(out.status.success(), "enrollment: {}", report(&out));

    let runbook = doc_block("docs/operations.md", "<!-- runbook: ocsp -->");
    assert!(runbook.contains(README_CA), "the runbook names {README_CA}");
    let out = run_in(&work, &ca_data, &runbook.replace(README_CA, &ca.url()));
    assert!(out.status.success(), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Response verify OK"), "{}", report(&out));
    assert!(
        stdout.contains("OCSP response api.ocsp"),
        "{}",
        report(&out)
    );
    assert!(stdout.contains("REVOKED at"), "{}", report(&out));
    assert!(stdout.contains("keyCompromise"), "{}", report(&out));
}

/// The offline-root runbook, then the intermediate-renewal runbook, as written; the CA then
/// starts on the directory, pins the offline root and serves the renewed intermediate.
#[test]
fn the_offline_root_and_intermediate_renewal_runbooks_run_as_written() {
    programs::require(&["mtls-ca"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_data = dir.path().join("ca-data");
    std::fs::create_dir(&ca_data).expect("mkdir");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");

    let init = doc_block("docs/operations.md", "<!-- runbook: offline-root -->");
    let out = run_in(&work, &ca_data, &init);
    assert!(out.status.success(), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let fingerprint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("root fingerprint (SHA-256): "))
        .unwrap_or_else(|| panic!("no fingerprint: {}", report(&out)))
        .to_string();
    let first = std::fs::read_to_string(ca_data.join("intermediate.crt")).expect("intermediate");

    let renew = doc_block(
        "docs/operations.md",
        "<!-- runbook: intermediate-renewal -->",
    );
    let out = run_in(&work, &ca_data, &renew);
    assert!(out.status.success(), "{}", report(&out));
    let renewed = std::fs::read_to_string(ca_data.join("intermediate.crt")).expect("renewed");
    assert_ne!(first, renewed, "the runbook installed a new certificate");

    let ca = start_ca("ca", &ca_data, "127.0.0.1:0", &[]);
    assert_eq!(ca.fingerprint, fingerprint);
}
