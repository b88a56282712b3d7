//! TLS to PostgreSQL (`--store postgres://...?sslmode=...`): a real cluster with `ssl=on` and a
//! server certificate from the test's own PKI (`PgCluster::start_tls`). The CA signs over
//! `verify-full` with the right root and its sessions really are encrypted (`pg_stat_ssl`);
//! a wrong root, a certificate for another host name, and `require` against a server without
//! TLS each stop the CA at start with a message naming the problem, and nothing is stored.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;

use super::super::ca::common::*;
use testkit::pki_kit::{LeafSpec, TestCa};
use testkit::postgres::{PgCluster, PgTls};

/// A TLS cluster whose server certificate (from `db_ca`) is valid for `spec`'s names.
fn tls_cluster(db_ca: &TestCa, spec: &LeafSpec, client_ca: Option<&TestCa>) -> PgCluster {
    let leaf = db_ca.issue_spec(spec);
    PgCluster::start_tls(
        &PgTls {
            cert_pem: leaf.cert_pem,
            key_pem: leaf.key_pem,
            client_ca_pem: client_ca.map(TestCa::cert_pem),
        },
        &[],
    )
}

fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// The CA's sessions on database `db` (not psql's own), as (encrypted, TLS version).
fn sessions(cluster: &PgCluster, db: &str) -> Vec<(bool, String)> {
    cluster
        .psql(
            db,
            "SELECT s.ssl || ' ' || coalesce(s.version, '-') FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
        )
        .lines()
        .map(|l| {
            let (ssl, version) = l.split_once(' ').unwrap();
            (ssl == "true", version.to_string())
        })
        .collect()
}

/// Whether the CA's schema exists in `db` (a refused start must not have created it).
fn has_schema(cluster: &PgCluster, db: &str) -> bool {
    cluster.psql(db, "SELECT to_regclass('meta') IS NOT NULL") == "t"
}

/// The CA's own error line (not its log lines) from `stderr`.
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("mtls-ca: error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"))
}

fn with(url: &str, params: &str) -> String {
    format!("{url}?{params}")
}

fn root_param(path: &Path) -> String {
    format!("sslrootcert={}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_signs_over_verify_full_with_the_right_root_and_a_wrong_root_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let db_ca = TestCa::new("Database Root");
    let cluster = tls_cluster(
        &db_ca,
        &LeafSpec::new("spiffe://db.local/postgres").localhost(),
        None,
    );
    let root = db_ca.write_root(tmp.path(), "db-root.crt");
    let base = cluster.new_database();
    let url = with(&base, &format!("sslmode=verify-full&{}", root_param(&root)));

    let ca = Ca::start_in(&tmp.path().join("ca"), &["--store", &url]);
    let id = "spiffe://mesh.local/service/over-tls";
    // The subcommands take the same URL (one connection path).
    let token = ca.token(id, &["--store", &url]);
    let http = client(&ca.root_pem(), None);
    let body = sign_body(&csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1, id, None);
    let (status, v) = sign(&http, &ca, &token, &body).await;
    assert_eq!(status, 200, "{v}");
    let open = sessions(&cluster, db_name(&base));
    assert!(!open.is_empty(), "the CA holds no session");
    assert!(
        open.iter()
            .all(|(ssl, version)| *ssl && version == "TLSv1.3"),
        "every session of the CA is TLS 1.3: {open:?}"
    );
    for args in [
        &["--store", url.as_str(), "audit", "verify"][..],
        &["--store", url.as_str(), "migrate"],
        &["--store", url.as_str(), "list"],
    ] {
        let out = ca.admin(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = ca.admin(&["--store", &url, "list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(v["certificates"].as_array().unwrap().len(), 1, "{v}");

    // Another CA's root as sslrootcert: the CA does not start, says why, creates nothing.
    let stranger = TestCa::new("Some Other Root").write_root(tmp.path(), "other-root.crt");
    let fresh = cluster.new_database();
    let wrong = with(
        &fresh,
        &format!("sslmode=verify-full&{}", root_param(&stranger)),
    );
    let dir = tmp.path().join("refused");
    let (code, stderr) = Ca::start_refused(&dir, &["--store", &wrong]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        error_line(&stderr).contains(&format!(
            "the certificate of PostgreSQL server 127.0.0.1 is not signed by a CA in \
             sslrootcert {}",
            stranger.display()
        )),
        "{stderr}"
    );
    assert!(!has_schema(&cluster, db_name(&fresh)));
    assert!(!dir.join("root.key").exists(), "no root was made");
    // The admin subcommands refuse it the same way.
    let out = admin_in(&dir, &["--store", &wrong, "migrate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        error_line(&stderr).contains("is not signed by a CA in sslrootcert"),
        "{stderr}"
    );
    assert!(!has_schema(&cluster, db_name(&fresh)));
}

#[test]
fn verify_full_refuses_a_certificate_for_another_host_but_verify_ca_accepts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let db_ca = TestCa::new("Database Root");
    let mut spec = LeafSpec::new("spiffe://db.local/postgres");
    spec.dns = vec!["db.internal".into()];
    let cluster = tls_cluster(&db_ca, &spec, None);
    let root = root_param(&db_ca.write_root(tmp.path(), "db-root.crt"));
    let base = cluster.new_database();

    let full = with(&base, &format!("sslmode=verify-full&{root}"));
    let dir = tmp.path().join("ca");
    let (code, stderr) = Ca::start_refused(&dir, &["--store", &full]);
    assert_eq!(code, Some(2), "{stderr}");
    let line = error_line(&stderr);
    assert!(
        line.contains(
            "the certificate of PostgreSQL server 127.0.0.1 is not valid for the host name"
        ) && line.contains("db.internal"),
        "{stderr}"
    );
    assert!(!has_schema(&cluster, db_name(&base)));

    // verify-ca checks the chain only: the same server is accepted.
    let chain_only = with(&base, &format!("sslmode=verify-ca&{root}"));
    let out = admin_in(&dir, &["--store", &chain_only, "migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(has_schema(&cluster, db_name(&base)));
}

#[test]
fn require_refuses_a_server_without_tls_and_prefer_is_refused_outright() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = PgCluster::shared(); // ssl is off there
    let base = cluster.new_database();
    let dir = tmp.path().join("ca");
    let (code, stderr) = Ca::start_refused(&dir, &["--store", &with(&base, "sslmode=require")]);
    assert_eq!(code, Some(2), "{stderr}");
    let line = error_line(&stderr);
    assert!(
        line.contains("(sslmode=require)") && line.contains("server does not support TLS"),
        "{stderr}"
    );
    assert!(!has_schema(cluster, db_name(&base)));
    let (code, stderr) = Ca::start_refused(&dir, &["--store", &with(&base, "sslmode=prefer")]);
    assert_eq!(code, Some(2), "{stderr}");
    let line = error_line(&stderr);
    assert!(
        line.contains("sslmode=prefer is refused") && line.contains("verify-full"),
        "{stderr}"
    );
    assert!(!has_schema(cluster, db_name(&base)));
}

#[test]
fn a_client_certificate_logs_the_ca_in_where_the_server_demands_one() {
    let tmp = tempfile::tempdir().unwrap();
    let db_ca = TestCa::new("Database Root");
    let clients = TestCa::new("Database Clients");
    let cluster = tls_cluster(
        &db_ca,
        &LeafSpec::new("spiffe://db.local/postgres").localhost(),
        Some(&clients),
    );
    let root = root_param(&db_ca.write_root(tmp.path(), "db-root.crt"));
    let (cert, key) = clients
        .client("spiffe://mesh.local/mtls-ca")
        .write(tmp.path(), "ca-client");
    let base = cluster.new_database();
    let dir = tmp.path().join("ca");

    // Without a client certificate the server refuses the login.
    let bare = with(&base, &format!("sslmode=verify-full&{root}"));
    let out = admin_in(&dir, &["--store", &bare, "migrate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        error_line(&stderr).contains("requires a valid client certificate"),
        "{stderr}"
    );
    assert!(!has_schema(&cluster, db_name(&base)));

    let url = with(
        &base,
        &format!(
            "sslmode=verify-full&{root}&sslcert={}&sslkey={}",
            cert.display(),
            key.display()
        ),
    );
    let out = admin_in(&dir, &["--store", &url, "migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(has_schema(&cluster, db_name(&base)));
}
