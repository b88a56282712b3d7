//! The delegated OCSP responder certificate on the PostgreSQL store: recorded at start with
//! its audit entry (schema version 4, `ocsp-responder` rows), listed and verified by the
//! subcommands. (The full cycle with OpenSSL and revocation runs on SQLite:
//! `ca/ocsp_responder_store.rs`.)
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::super::ca::common::*;
use testkit::postgres::PgCluster;

#[test]
fn the_delegated_responder_is_stored_and_audited_on_postgres() {
    let cluster = PgCluster::shared();
    let url = cluster.new_database();
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::start_in(
        &tmp.path().join("a"),
        &["--store", &url, "--ocsp-responder", "delegated"],
    );
    let out = ca.admin(&["--store", &url, "list", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let responders: Vec<&serde_json::Value> = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "ocsp-responder")
        .collect();
    assert_eq!(responders.len(), 1, "{v}");
    assert_eq!(responders[0]["spiffe_id"], "", "{v}");
    assert_eq!(responders[0]["status"], "valid", "{v}");
    let out = ca.admin(&["--store", &url, "audit", "verify"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
