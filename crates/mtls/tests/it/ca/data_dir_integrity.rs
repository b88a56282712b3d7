//! A missing or foreign database is never recreated silently: at start the data directory's
//! root and database must belong together, and while the CA runs a removed or replaced
//! database file stops every write (503) and fails `/healthz`.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use super::common::*;
use mtls_ca::store::SqliteStore;

const ID: &str = "spiffe://mesh.local/service/a";

fn remove_db_files(dir: &Path) {
    for name in ["ca.db", "ca.db-wal", "ca.db-shm"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

fn troubleshooting_doc() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/troubleshooting.md"
    ))
    .unwrap()
}

/// `phrase` is in what the CA printed and quoted in docs/troubleshooting.md.
fn assert_documented(phrase: &str, output: &str) {
    assert!(output.contains(phrase), "{phrase:?} not in:\n{output}");
    assert!(
        troubleshooting_doc().contains(phrase),
        "docs/troubleshooting.md does not quote {phrase:?}"
    );
}

fn admin_code(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = admin_in(dir, args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_deleted_database_is_not_recreated_at_start() {
    let ca = Ca::start(&[]);
    let fingerprint = ca.fingerprint.clone();
    let (_, v) = enroll(&ca, ID).await;
    let out = ca.admin(&["revoke", "--serial", v["serial"].as_str().unwrap()]);
    assert!(out.status.success());
    let dir = ca.stop();
    remove_db_files(&dir);

    let (code, err) = Ca::start_refused(&dir, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("holds root {fingerprint} but no database ca.db")),
        "{err}"
    );
    assert_documented(
        "but no database ca.db: the issued certificates, revocations and audit log are missing; \
         restore ca.db from a backup, or move the directory away to start a new CA",
        &err,
    );
    // Every subcommand that opens the store refuses the same way.
    for args in [
        &["list"][..],
        &["token", "--spiffe-id", ID],
        &["audit", "verify"],
    ] {
        let (code, err) = admin_code(&dir, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("but no database ca.db"), "{args:?}: {err}");
    }
    assert!(!dir.join("ca.db").exists(), "a refused start created ca.db");
    assert!(!dir.join("ca.db.new").exists());
}

#[tokio::test]
async fn a_database_without_its_root_is_refused() {
    let ca = Ca::start(&[]);
    enroll(&ca, ID).await;
    let dir = ca.stop();
    std::fs::rename(dir.join("root.crt"), dir.with_extension("old.crt")).unwrap();
    std::fs::rename(dir.join("root.key"), dir.with_extension("old.key")).unwrap();

    let (code, err) = Ca::start_refused(&dir, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert_documented(
        "holds the database ca.db but no root certificate root.crt",
        &err,
    );
    assert!(
        !dir.join("root.crt").exists() && !dir.join("root.key").exists(),
        "a new root was generated next to the old database"
    );
    let (code, err) = admin_code(&dir, &["list"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("but no root certificate root.crt"), "{err}");
}

#[tokio::test]
async fn another_cas_database_is_refused() {
    let a = Ca::start(&[]);
    let b = Ca::start(&[]);
    enroll(&b, ID).await;
    let (fp_a, fp_b) = (a.fingerprint.clone(), b.fingerprint.clone());
    let dir_a = a.stop();
    let dir_b = b.stop();
    remove_db_files(&dir_a);
    for name in ["ca.db", "ca.db-wal"] {
        if dir_b.join(name).exists() {
            std::fs::copy(dir_b.join(name), dir_a.join(name)).unwrap();
        }
    }
    let (code, err) = Ca::start_refused(&dir_a, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("belongs to root {fp_b}, but")) && err.contains(&fp_a),
        "{err}"
    );
    assert_documented("the database was made by another CA", &err);
    let (code, err) = admin_code(&dir_a, &["token", "--spiffe-id", ID]);
    assert_eq!(code, Some(2));
    assert!(err.contains("made by another CA"), "{err}");
}

#[tokio::test]
async fn an_external_root_follows_the_same_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let root =
        pki::CaMaterial::generate_root("External Root", time::OffsetDateTime::now_utc()).unwrap();
    let (cert, key) = (tmp.path().join("ext.crt"), tmp.path().join("ext.key"));
    std::fs::write(&cert, root.cert_pem()).unwrap();
    std::fs::write(&key, root.key_pem().unwrap()).unwrap();
    let args = [
        "--root-cert",
        cert.to_str().unwrap(),
        "--root-key",
        key.to_str().unwrap(),
    ];
    let dir = tmp.path().join("data");
    // A root key others may read is refused (the CA does not change an operator's file).
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = Ca::start_refused(&dir, &args);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("open to group or others (mode 644)"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!dir.join("ca.db").exists(), "nothing created");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ca = Ca::start_in(&dir, &args);
    assert_eq!(ca.fingerprint, root.fingerprint());
    enroll(&ca, ID).await;
    let dir = ca.stop();
    assert!(dir.join("root.crt").exists(), "the root copy is kept");

    remove_db_files(&dir);
    let (code, err) = Ca::start_refused(&dir, &args);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("but no database ca.db"), "{err}");
    assert!(!dir.join("ca.db").exists());
}

#[tokio::test]
async fn a_database_of_an_earlier_version_adopts_the_root_once() {
    let ca = Ca::start(&[]);
    let fingerprint = ca.fingerprint.clone();
    enroll(&ca, ID).await;
    let dir = ca.stop();
    let conn = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
    let n = conn
        .execute("DELETE FROM meta WHERE key = 'root_fingerprint'", [])
        .unwrap();
    assert_eq!(n, 1, "a new database records its root");
    drop(conn);

    let ca = Ca::start_in(&dir, &[]);
    assert!(ca.logs().contains("root_adopted"), "{}", ca.logs());
    assert_eq!(ca.cert_count(), 1);
    let dir = ca.stop();
    let recorded = SqliteStore::peek_meta(&dir.join("ca.db"), "root_fingerprint").unwrap();
    assert_eq!(recorded, Some(fingerprint));
    let ca = Ca::start_in(&dir, &[]);
    assert!(!ca.logs().contains("root_adopted"), "adopted twice");
}

#[tokio::test]
async fn an_interrupted_first_start_is_finished_or_discarded() {
    // Crash before the root was written: the pending database is discarded, a new CA starts.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    std::fs::create_dir(&dir).unwrap();
    SqliteStore::initialise(
        &dir.join("ca.db.new"),
        &[("trust_domain", "mesh.local"), ("root_fingerprint", "00")],
    )
    .unwrap();
    let ca = Ca::start_in(&dir, &[]);
    let fingerprint = ca.fingerprint.clone();
    assert!(!dir.join("ca.db.new").exists());

    // Crash after the root was written, before the rename: the start is completed.
    let dir = ca.stop();
    remove_db_files(&dir);
    SqliteStore::initialise(
        &dir.join("ca.db.new"),
        &[
            ("trust_domain", "mesh.local"),
            ("root_fingerprint", &fingerprint),
        ],
    )
    .unwrap();
    let ca = Ca::start_in(&dir, &[]);
    assert_eq!(ca.fingerprint, fingerprint);
    assert!(
        ca.logs().contains("completed a first start"),
        "{}",
        ca.logs()
    );

    // A pending database of another root is not taken over.
    let dir = ca.stop();
    remove_db_files(&dir);
    SqliteStore::initialise(
        &dir.join("ca.db.new"),
        &[("trust_domain", "mesh.local"), ("root_fingerprint", "ab")],
    )
    .unwrap();
    let (code, err) = Ca::start_refused(&dir, &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("belongs to root ab"), "{err}");
    assert!(!dir.join("ca.db").exists());
}

async fn healthz(http: &reqwest::Client, ca: &Ca) -> (u16, serde_json::Value) {
    let resp = http.get(ca.url("/healthz")).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Polls `/healthz` until it answers `want` (verdicts are cached for a second).
async fn healthz_until(http: &reqwest::Client, ca: &Ca, want: u16) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, v) = healthz(http, ca).await;
        if status == want {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz stayed {status}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_database_removed_while_running_stops_every_write() {
    let ca = Ca::start(&["--admin-id", "spiffe://mesh.local/admin"]);
    let http = client(&ca.root_pem(), None);
    let (status, v) = healthz(&http, &ca).await;
    assert_eq!(
        (status, v.clone()),
        (200, serde_json::json!({"status": "ok"}))
    );

    let (holder, enrolled) = enroll(&ca, ID).await;
    let token = ca.token("spiffe://mesh.local/service/b", &[]);
    remove_db_files(&ca.dir);

    let v = healthz_until(&http, &ca, 503).await;
    assert_eq!(v["status"], "unhealthy");
    assert!(
        v["reason"].as_str().unwrap().contains("ca.db was removed"),
        "{v}"
    );
    assert!(
        !v.to_string().contains(ca.dir.to_str().unwrap()),
        "path leaked: {v}"
    );

    // sign, renew and revoke all answer 503 store_unavailable.
    let (_, c) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (status, v) = sign(
        &http,
        &ca,
        &token,
        &sign_body(&c, "spiffe://mesh.local/service/b", None),
    )
    .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "store_unavailable");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("restore ca.db from a backup"),
        "{v}"
    );
    let mine = client(&ca.root_pem(), Some(&holder));
    let resp = mine
        .post(ca.url("/api/v1/renew"))
        .json(&serde_json::json!({"csr": c}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "store_unavailable");
    let resp = mine
        .post(ca.url("/api/v1/revoke"))
        .json(&serde_json::json!({"serial": enrolled["serial"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "store_unavailable");

    // Nothing was issued, renewed or revoked, and the loud log line came once.
    let metrics = http
        .get(ca.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&metrics, "mtls_ca_issued_total"), 1);
    assert_eq!(metric(&metrics, "mtls_ca_renewed_total"), 0);
    assert_eq!(metric(&metrics, "mtls_ca_revoked_total"), 0);
    assert_eq!(
        ca.logs().matches("the CA database is gone").count(),
        1,
        "{}",
        ca.logs()
    );
    // The CLI does not recreate the database either.
    let (code, err) = admin_code(&ca.dir, &["token", "--spiffe-id", ID]);
    assert_eq!(code, Some(2));
    assert!(err.contains("but no database ca.db"), "{err}");
    assert!(!ca.dir.join("ca.db").exists());
}

#[tokio::test]
async fn a_database_replaced_while_running_stops_every_write() {
    let ca = Ca::start(&[]);
    let http = client(&ca.root_pem(), None);
    let token = ca.token(ID, &[]);
    // Same content, new file: what a restore from backup over a running CA looks like.
    let copy = ca.dir.join("copy.db");
    std::fs::copy(ca.dir.join("ca.db"), &copy).unwrap();
    std::fs::rename(&copy, ca.dir.join("ca.db")).unwrap();

    let v = healthz_until(&http, &ca, 503).await;
    assert!(
        v["reason"].as_str().unwrap().contains("ca.db was replaced"),
        "{v}"
    );
    let (_, c) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (status, v) = sign(&http, &ca, &token, &sign_body(&c, ID, None)).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "store_unavailable");
}

#[tokio::test]
async fn a_read_only_database_fails_the_health_check() {
    use std::os::unix::fs::PermissionsExt;
    let ca = Ca::start(&[]);
    let http = client(&ca.root_pem(), None);
    let db = ca.dir.join("ca.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
    let v = healthz_until(&http, &ca, 503).await;
    assert!(v["reason"].as_str().unwrap().contains("read-only"), "{v}");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    healthz_until(&http, &ca, 200).await;
}
