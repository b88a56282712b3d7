//! `mtls-ca migrate-store` (SQLite to PostgreSQL, everything with the audit chain intact) and
//! `mtls-ca backup` (an online copy of a running SQLite CA) with its restore.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;

use super::super::ca::common::*;
use super::shared_state::copy_root;
use testkit::postgres::PgCluster;
use x509_parser::prelude::FromDer;

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sqlite_meta(db: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT key, value FROM meta WHERE key <> 'schema_version' ORDER BY key")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Every token as `hash=used_serial` (empty when unused), by hash.
fn sqlite_token_links(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT hash || '=' || coalesce(used_serial, '') FROM tokens ORDER BY hash")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn listed(out: &std::process::Output) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
    let mut certs: Vec<(String, String)> = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["serial"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    certs.sort();
    certs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_store_copies_everything_and_a_ca_on_the_copy_serves_it() {
    let ca = Ca::start(&[]);
    let (holder, _) = enroll(&ca, "spiffe://mesh.local/service/kept").await;
    let (key, request) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]);
    let (status, renewed) = renew(&ca, &holder, &request).await;
    assert_eq!(status, 200, "{renewed}");
    let renewed = Identity {
        cert_pem: renewed["certificate"].as_str().unwrap().to_string(),
        key_pem: key.serialize_pem(),
    };
    let (_, gone) = enroll(&ca, "spiffe://mesh.local/service/gone").await;
    let gone_serial = gone["serial"].as_str().unwrap().to_string();
    ok(&ca.admin(&["revoke", "--serial", &gone_serial]));
    // An unused token and a CRL (the CRL number moves).
    let unused = ca.token("spiffe://mesh.local/service/later", &[]);
    let http = client(&ca.root_pem(), None);
    // A used token whose retry (the same CSR) must still get its certificate on the copy:
    // the token's link to it (tokens.used_serial) is carried.
    let retried_id = "spiffe://mesh.local/service/retried";
    let retried_token = ca.token(retried_id, &[]);
    let retried_body = sign_body(
        &csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1,
        retried_id,
        None,
    );
    let (status, retried) = sign(&http, &ca, &retried_token, &retried_body).await;
    assert_eq!(status, 200, "{retried}");
    assert!(http
        .get(ca.url("/api/v1/crl"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let before = listed(&ca.admin(&["list", "--format", "json"]));
    let dir = ca.stop();
    let db = dir.join("ca.db");
    let from = format!("sqlite:{}", db.display());

    let cluster = PgCluster::shared();
    let url = cluster.new_database();
    let name = url.rsplit('/').next().unwrap().to_string();
    let out = ok(&admin_in(
        &dir,
        &["migrate-store", "--from", &from, "--to", &url],
    ));
    assert!(out.contains("audit chain verified there"), "{out}");
    // Meta (root fingerprint, trust domain, CRL number, epochs) as in the source.
    let pg_meta = cluster.psql(
        &name,
        "SELECT key || '=' || value FROM meta WHERE key <> 'schema_version' ORDER BY key",
    );
    let sqlite: Vec<String> = sqlite_meta(&db)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(pg_meta.lines().collect::<Vec<_>>(), sqlite);
    // Every token's link to its certificate, as in the source.
    let pg_links = cluster.psql(
        &name,
        "SELECT hash || '=' || coalesce(used_serial, '') FROM tokens ORDER BY hash",
    );
    let sqlite_links = sqlite_token_links(&db);
    assert_eq!(pg_links.lines().collect::<Vec<_>>(), sqlite_links);
    let retried_serial = retried["serial"].as_str().unwrap();
    assert!(
        sqlite_links
            .iter()
            .any(|l| l.ends_with(&format!("={retried_serial}"))),
        "{sqlite_links:?}"
    );
    assert!(
        sqlite.iter().any(|l| l.starts_with("crl_number=")),
        "{sqlite:?}"
    );

    // A CA started on the copy (same data directory, same root) serves what the source held.
    let copy = Ca::start_in(&dir, &["--store", &url]);
    assert_eq!(
        listed(&copy.admin(&["--store", &url, "list", "--format", "json"])),
        before
    );
    let verdict = ok(&copy.admin(&["--store", &url, "audit", "verify"]));
    assert!(verdict.contains("audit log intact"), "{verdict}");
    let crl = http.get(copy.url("/api/v1/crl")).send().await.unwrap();
    let der = crl.bytes().await.unwrap();
    let (_, parsed) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
    let revoked: Vec<String> = parsed
        .iter_revoked_certificates()
        .map(|r| hex::encode(pki::serial::strip_leading_zeros(r.raw_serial())))
        .collect();
    assert_eq!(revoked, vec![gone_serial.clone()]);
    // The unused token is still good; the renewed certificate renews on the copy.
    let (status, v) = sign(
        &http,
        &copy,
        &unused,
        &sign_body(
            &csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1,
            "spiffe://mesh.local/service/later",
            None,
        ),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = renew(&copy, &renewed, &csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1).await;
    assert_eq!(status, 200, "{v}");
    // The used token's retry gets the certificate issued before the copy.
    let (status, v) = sign(&http, &copy, &retried_token, &retried_body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["serial"], retried["serial"]);
    assert_eq!(v["certificate"], retried["certificate"]);

    // Copying again into the now used database is refused, naming why; nothing changes.
    let again = admin_in(&dir, &["migrate-store", "--from", &from, "--to", &url]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert!(ok(&copy.admin(&["--store", &url, "audit", "verify"])).contains("audit log intact"));
}

#[test]
fn migrate_store_refuses_a_tampered_source_and_copies_nothing() {
    let ca = Ca::start(&[]);
    ca.token("spiffe://mesh.local/service/a", &[]);
    let dir = ca.stop();
    let db = dir.join("ca.db");
    // A token row nobody audited.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE tokens SET spiffe_id = 'spiffe://mesh.local/service/evil'",
            [],
        )
        .unwrap();
    let cluster = PgCluster::shared();
    let url = cluster.new_database();
    let name = url.rsplit('/').next().unwrap().to_string();
    let out = admin_in(
        &dir,
        &[
            "migrate-store",
            "--from",
            &format!("sqlite:{}", db.display()),
            "--to",
            &url,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does not verify") && stderr.contains("nothing copied"),
        "{stderr}"
    );
    // Nothing at all was written to the target (not even the schema).
    assert_eq!(
        cluster.psql(
            &name,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_of_a_signing_ca_restores_to_a_ca_that_verifies_and_serves() {
    let ca = Ca::start(&[]);
    let http = client(&ca.root_pem(), None);
    let jobs: Vec<(String, String)> = (0..24)
        .map(|i| {
            let id = format!("spiffe://mesh.local/backup/w{i}");
            let token = ca.token(&id, &[]);
            (id, token)
        })
        .collect();
    // A token used before the backup: its retry with the same CSR must work on the restore.
    let retried_id = "spiffe://mesh.local/service/retried";
    let retried_token = ca.token(retried_id, &[]);
    let retried_body = sign_body(
        &csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1,
        retried_id,
        None,
    );
    let (status, retried) = sign(&http, &ca, &retried_token, &retried_body).await;
    assert_eq!(status, 200, "{retried}");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ca-backup.db");
    // Signing goes on while the backup runs.
    let signing = {
        let http = http.clone();
        let url = ca.url("/api/v1/sign");
        tokio::spawn(async move {
            for (id, token) in jobs {
                let body = sign_body(&csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1, &id, None);
                let resp = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 200);
            }
        })
    };
    let out = {
        let dir = ca.dir.clone();
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            admin_in(&dir, &["backup", "--to", file.to_str().unwrap()])
        })
        .await
        .unwrap()
    };
    let printed = ok(&out);
    assert!(printed.contains("chain verified"), "{printed}");
    signing.await.unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup is owner-only like ca.db");
    }
    // Never overwritten.
    let again = ca.admin(&["backup", "--to", file.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));

    // Restore as docs/operations.md says: the key material and the backup as ca.db.
    let restored = tmp.path().join("restored");
    copy_root(&ca.dir, &restored);
    std::fs::copy(&file, restored.join("ca.db")).unwrap();
    let verdict = ok(&admin_in(&restored, &["audit", "verify"]));
    assert!(verdict.contains("audit log intact"), "{verdict}");
    drop(ca);
    let back = Ca::start_in(&restored, &[]);
    let (_, v) = enroll(&back, "spiffe://mesh.local/service/after-restore").await;
    assert!(v["serial"].is_string());
    let (status, v) = sign(&http, &back, &retried_token, &retried_body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["serial"], retried["serial"]);
    assert_eq!(v["certificate"], retried["certificate"]);
    assert!(ok(&back.admin(&["audit", "verify"])).contains("audit log intact"));
}

#[test]
fn backup_of_a_postgres_store_points_to_pg_dump() {
    let url = PgCluster::shared().new_database();
    let tmp = tempfile::tempdir().unwrap();
    let out = admin_in(
        tmp.path(),
        &[
            "--store",
            &url,
            "backup",
            "--to",
            tmp.path().join("x.db").to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pg_dump"), "{stderr}");
}

#[test]
fn migrate_store_refuses_a_target_that_is_not_postgres_without_repeating_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = admin_in(
        tmp.path(),
        &[
            "migrate-store",
            "--from",
            "sqlite:/nonexistent/ca.db",
            "--to",
            "mysql://u:hunter2@h/db",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--to: expected sqlite:PATH or postgres://") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}
