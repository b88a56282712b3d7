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
