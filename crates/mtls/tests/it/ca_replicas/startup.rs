//! What a replica refuses at start: a bad or unreachable `--store`, a root other than the one
//! the database belongs to, no root next to a database that has one, and a schema newer than it
//! knows; and `mtls-ca migrate`.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::super::ca::common::*;
use testkit::postgres::PgCluster;

#[test]
fn a_store_that_is_neither_sqlite_nor_postgres_is_refused_without_echoing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = admin_in(tmp.path(), &["--store", "mysql://u:hunter2@h/db", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("expected sqlite:PATH or postgres://") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_database_is_named_without_its_password_and_nothing_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://ca:hunter2@127.0.0.1:{port}/ca");
    let dir = tmp.path().join("ca");
    let (code, stderr) = Ca::start_refused(&dir, &["--store", &url]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot connect to the CA database postgres://ca@127.0.0.1:{port}/ca"
        )) && !stderr.contains("hunter2"),
        "{stderr}"
    );
    assert!(
        !dir.join("root.key").exists(),
        "no root was made for an unreachable database"
    );
}

#[test]
fn a_replica_with_another_root_or_none_is_refused() {
    let url = PgCluster::shared().new_database();
    let tmp = tempfile::tempdir().unwrap();
    let first = Ca::start_in(&tmp.path().join("first"), &["--store", &url]);
    // Another CA's data directory (its own root) on the same database.
    let other = tmp.path().join("other");
    Ca::start_in(&other, &[]).stop();
    let (code, stderr) = Ca::start_refused(&other, &["--store", &url]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("belongs to root {}", first.fingerprint)),
        "{stderr}"
    );
    // An empty data directory next to a database that has a root: no new root is made.
    let empty = tmp.path().join("empty");
    let (code, stderr) = Ca::start_refused(&empty, &["--store", &url]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("copy root.crt and root.key"), "{stderr}");
    assert!(!empty.join("root.key").exists());
}

#[test]
fn migrate_reports_the_version_and_a_newer_schema_is_refused() {
    let cluster = PgCluster::shared();
    let url = cluster.new_database();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    // Before any CA: migrate creates the schema.
    let out = admin_in(&dir, &["--store", &url, "migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "schema version {}: up to date",
            mtls_ca::store::POSTGRES_SCHEMA_VERSION
        )
    );
    let db = url.rsplit('/').next().unwrap();
    cluster.psql(
        db,
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
    );
    let (code, stderr) = Ca::start_refused(&dir, &["--store", &url]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "schema version 99, but this mtls-ca knows versions up to {}",
            mtls_ca::store::POSTGRES_SCHEMA_VERSION
        )),
        "{stderr}"
    );
    assert!(!dir.join("root.key").exists());
}

#[test]
fn a_sqlite_store_elsewhere_is_used_by_the_service_and_the_subcommands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let db = tmp.path().join("elsewhere.db");
    let store = format!("sqlite:{}", db.display());
    let ca = Ca::start_in(&dir, &["--store", &store]);
    assert!(db.exists() && !dir.join("ca.db").exists());
    let token = ca.token("spiffe://mesh.local/service/a", &["--store", &store]);
    assert!(!token.is_empty());
    let out = ca.admin(&["--store", &store, "audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without --store the subcommands look for ca.db in the data directory: not there.
    let out = ca.admin(&["list"]);
    assert_eq!(out.status.code(), Some(2));
    let migrated = ca.admin(&["--store", &store, "migrate"]);
    assert_eq!(
        String::from_utf8_lossy(&migrated.stdout).trim(),
        format!(
            "schema version {}: up to date",
            mtls_ca::store::SQLITE_SCHEMA_VERSION
        )
    );
}

#[test]
fn a_sqlite_database_of_a_newer_schema_is_refused() {
    let ca = Ca::start(&[]);
    let dir = ca.stop();
    let conn = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
    let version: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, mtls_ca::store::SQLITE_SCHEMA_VERSION.to_string());
    conn.execute(
        "UPDATE meta SET value = '7' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let (code, stderr) = Ca::start_refused(&dir, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "schema version 7, but this mtls-ca knows versions up to {}",
            mtls_ca::store::SQLITE_SCHEMA_VERSION
        )),
        "{stderr}"
    );
    let out = admin_in(&dir, &["list"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_down_sign_answers_503_and_nothing_is_issued_then_it_recovers() {
    // A cluster of its own: this test stops and starts its server.
    let mut cluster = PgCluster::start();
    let url = cluster.new_database();
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::start_in(&tmp.path().join("ca"), &["--store", &url]);
    let id = "spiffe://mesh.local/service/patient";
    let token = ca.token(id, &["--store", &url]);
    let http = client(&ca.root_pem(), None);
    let body = sign_body(&csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1, id, None);

    cluster.stop_server();
    let resp = http
        .post(ca.url("/api/v1/sign"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "store_unreachable", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nothing was stored") && !message.contains("127.0.0.1"),
        "{message}"
    );
    let health = http.get(ca.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 503);
    // The cause is in the CA's log, with the database named.
    assert!(
        ca.logs().contains("no connection to the CA database"),
        "{}",
        ca.logs()
    );

    cluster.start_server();
    // The same token still works: the refused attempt stored nothing.
    let (status, v) = sign(&http, &ca, &token, &body).await;
    assert_eq!(status, 200, "{v}");
    let out = ca.admin(&["--store", &url, "audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
