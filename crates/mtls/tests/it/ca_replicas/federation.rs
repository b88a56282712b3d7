//! Federation on the PostgreSQL store: `mtls-ca federation add|list|remove` against a CA whose
//! store is PostgreSQL, the running CA fetching the other domain's bundle into it, each change
//! in the audit chain, and `audit verify` catching a federation edited behind the log's back.
//! (The end-to-end calls across domains run on SQLite: `e2e/federation.rs`.)
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use super::super::ca::common::*;
use testkit::postgres::PgCluster;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn federations_are_stored_audited_and_verified_on_postgres() {
    let cluster = PgCluster::shared();
    let url = cluster.new_database();
    let tmp = tempfile::tempdir().unwrap();
    let b = Ca::start_in(&tmp.path().join("b"), &["--trust-domain", "b.example"]);
    let a = Ca::start_in(
        &tmp.path().join("a"),
        &["--store", &url, "--trust-domain", "a.example"],
    );
    let endpoint = format!("https://127.0.0.1:{}/api/v1/bundle/spiffe", b.port);
    let fingerprint = format!("sha256:{}", b.fingerprint);
    let add = |args: &[&str]| {
        let mut all = vec!["--store", url.as_str(), "federation", "add"];
        all.extend_from_slice(args);
        a.admin(&all)
    };
    let base = [
        "--trust-domain",
        "b.example",
        "--endpoint",
        endpoint.as_str(),
        "--endpoint-spiffe-id",
        "spiffe://b.example/ca",
        "--fingerprint",
        fingerprint.as_str(),
    ];
    // Our own trust domain is refused, naming the flag; nothing is stored.
    let mut own = base;
    own[1] = "a.example";
    let out = add(&own);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--trust-domain a.example"),
        "{}",
        text(&out)
    );

    let out = add(&base);
    assert!(out.status.success(), "{}", text(&out));
    let again = add(&base);
    assert!(!again.status.success() && text(&again).contains("federated already"));

    // The running CA fetches b's bundle into the database (it logs the stored change).
    a.proc.wait_for(
        |l| l.contains("federated_bundle_updated") && l.contains("b.example"),
        Duration::from_secs(60),
    );
    let out = a.admin(&["--store", &url, "federation", "list", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        listed["federations"][0]["roots"][0],
        serde_json::json!(format!("sha256:{}", b.fingerprint))
    );
    let verify = || a.admin(&["--store", &url, "audit", "verify"]);
    assert!(verify().status.success(), "{}", text(&verify()));

    // An endpoint changed behind the log's back.
    let db = url.rsplit('/').next().unwrap();
    cluster.psql(
        db,
        "UPDATE federations SET endpoint = 'https://evil.example/b'",
    );
    let out = verify();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("federations row b.example"),
        "{}",
        text(&out)
    );
    cluster.psql(
        db,
        &format!("UPDATE federations SET endpoint = '{endpoint}'"),
    );
    assert!(verify().status.success(), "{}", text(&verify()));

    let out = a.admin(&["--store", &url, "federation", "remove", "b.example"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(verify().status.success(), "{}", text(&verify()));
    let out = a.admin(&["--store", &url, "federation", "remove", "b.example"]);
    assert!(!out.status.success() && text(&out).contains("not federated"));
}
