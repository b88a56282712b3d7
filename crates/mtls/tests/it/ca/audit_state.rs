//! The audit chain covers state: `audit verify` replays it against the tables, so editing the
//! tables (not just the log) is reported with the entry or row named. Also the published head:
//! `audit head`, the `mtls_ca_audit_head_seq` metric, the `audit_append` log line and
//! `audit verify --expect-head`.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};

use super::common::*;

/// A stopped CA after a realistic mix: three enrollments, a renewal, a revocation, and an
/// unused token created last.
struct History {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    a: String,
    a_renewed: String,
    b: String,
    c: String,
    head: String,
}

async fn history() -> History {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::start_in(&tmp.path().join("ca"), &[]);
    let (a_id, a) = enroll(&ca, "spiffe://mesh.local/service/a").await;
    let (_, b) = enroll(&ca, "spiffe://mesh.local/service/b").await;
    let (_, c) = enroll(&ca, "spiffe://mesh.local/service/c").await;
    let (_, new_csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let resp = client(&ca.root_pem(), Some(&a_id))
        .post(ca.url("/api/v1/renew"))
        .json(&serde_json::json!({ "csr": new_csr }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let renewed: serde_json::Value = resp.json().await.unwrap();
    let b_serial = b["serial"].as_str().unwrap().to_string();
    let out = ca.admin(&["revoke", "--serial", &b_serial, "--reason", "keyCompromise"]);
    assert!(out.status.success());
    ca.token("spiffe://mesh.local/service/d", &["--dns", "d.local"]);

    // The head is published three ways: the CLI, the metric and one log line per append.
    let out = ca.admin(&["audit", "head"]);
    assert!(out.status.success());
    let head = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (seq, hash) = head.split_once(':').unwrap();
    assert_eq!(hash.len(), 64, "{head}");
    let out = ca.admin(&["audit", "head", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"seq": seq.parse::<i64>().unwrap(), "hash": hash})
    );
    let metrics = client(&ca.root_pem(), None)
        .get(ca.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("\nmtls_ca_audit_head_seq {seq}\n")),
        "{metrics}"
    );
    // The renewal was appended by the CA process: its log line names seq and hash.
    let conn = rusqlite::Connection::open(ca.dir.join("ca.db")).unwrap();
    let (renew_seq, renew_hash): (i64, String) = conn
        .query_row(
            "SELECT seq, hash FROM audit WHERE event = 'renew'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let logs = ca.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("audit_append") && l.contains(&renew_hash))
        .unwrap_or_else(|| panic!("no audit_append line for the renewal:\n{logs}"));
    assert!(line.contains(&renew_seq.to_string()), "{line}");
    drop(conn);

    let dir = ca.stop();
    History {
        _tmp: tmp,
        dir,
        a: a["serial"].as_str().unwrap().to_string(),
        a_renewed: renewed["serial"].as_str().unwrap().to_string(),
        b: b_serial,
        c: c["serial"].as_str().unwrap().to_string(),
        head,
    }
}

impl History {
    /// A copy of the data directory to tamper with.
    fn copy(&self) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("ca");
        std::fs::create_dir(&dst).unwrap();
        for name in ["root.crt", "root.key", "ca.db", "ca.db-wal"] {
            if self.dir.join(name).exists() {
                std::fs::copy(self.dir.join(name), dst.join(name)).unwrap();
            }
        }
        (tmp, dst)
    }
}

fn sql(dir: &Path, statement: &str) -> usize {
    let conn = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
    conn.execute(statement, []).unwrap()
}

fn seq_of(dir: &Path, event: &str, needle: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
    conn.query_row(
        "SELECT seq FROM audit WHERE event = ?1 AND instr(detail, ?2) > 0",
        [event, needle],
        |r| r.get(0),
    )
    .unwrap()
}

fn verify(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["audit", "verify"];
    args.extend_from_slice(extra);
    let out = admin_in(dir, &args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn assert_tampered(dir: &Path, extra: &[&str], needles: &[&str]) {
    let (code, out) = verify(dir, extra);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("audit log TAMPERED"), "{out}");
    for needle in needles {
        assert!(out.contains(needle), "{needle:?} not in:\n{out}");
    }
}

#[tokio::test]
async fn table_tampering_is_reported_with_the_entry_or_row() {
    let h = history().await;
    let (code, out) = verify(&h.dir, &["--expect-head", &h.head]);
    assert_eq!(code, Some(0), "an untouched store must verify: {out}");
    assert!(
        out.contains("audit log intact") && out.contains("tables match it"),
        "{out}"
    );

    // Un-revoking a certificate.
    let (_t, dir) = h.copy();
    let revoke_seq = seq_of(&dir, "revoke", &h.b);
    sql(
        &dir,
        &format!(
            "UPDATE certs SET revoked_at = NULL, revoke_reason = NULL WHERE serial = '{}'",
            h.b
        ),
    );
    assert_tampered(
        &dir,
        &[],
        &[&format!(
            "certs row {}: revoked_at is NULL, but entry {revoke_seq} revoked it",
            h.b
        )],
    );

    // Changing the revocation time or reason.
    let (_t, dir) = h.copy();
    sql(
        &dir,
        &format!(
            "UPDATE certs SET revoke_reason = 'superseded' WHERE serial = '{}'",
            h.b
        ),
    );
    assert_tampered(
        &dir,
        &[],
        &[&format!(
            "certs row {}: revoke_reason is \"superseded\", but entry {revoke_seq} recorded \"keyCompromise\"",
            h.b
        )],
    );

    // Inserting a token row (a bearer token nobody audited).
    let (_t, dir) = h.copy();
    sql(
        &dir,
        "INSERT INTO tokens (hash, spiffe_id, dns, ips, created_at, expires_at)
         VALUES ('feedfacefeedface0000000000000000000000000000000000000000000000ff',
                 'spiffe://mesh.local/service/evil', '[]', '[]', 0, 99999999999)",
    );
    assert_tampered(
        &dir,
        &[],
        &["tokens row feedfacefeed: stored, but no audit entry created it"],
    );

    // Marking an unused token as used, or a used one as unused.
    let (_t, dir) = h.copy();
    sql(&dir, "UPDATE tokens SET used_at = NULL, used_serial = NULL WHERE used_serial IS NOT NULL AND spiffe_id LIKE '%/a'");
    let issue_seq = seq_of(&dir, "issue", &h.a);
    assert_tampered(
        &dir,
        &[],
        &[&format!(
            "used_at is NULL, but entry {issue_seq} redeemed it"
        )],
    );

    // Changing a certificate's not_after: the chain and the certificate itself disagree.
    let (_t, dir) = h.copy();
    let a_seq = seq_of(&dir, "issue", &h.a);
    sql(
        &dir,
        &format!(
            "UPDATE certs SET not_after = not_after + 86400 WHERE serial = '{}'",
            h.a
        ),
    );
    assert_tampered(
        &dir,
        &[],
        &[
            &format!("certs row {}: not_after is ", h.a),
            &format!("but entry {a_seq} recorded"),
            "but the certificate in its pem says",
        ],
    );

    // Swapping the PEMs of two certificates.
    let (_t, dir) = h.copy();
    {
        let conn = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
        let pem = |s: &str| -> String {
            conn.query_row("SELECT pem FROM certs WHERE serial = ?1", [s], |r| r.get(0))
                .unwrap()
        };
        let (pa, pc) = (pem(&h.a), pem(&h.c));
        conn.execute("UPDATE certs SET pem = ?1 WHERE serial = ?2", [&pc, &h.a])
            .unwrap();
        conn.execute("UPDATE certs SET pem = ?1 WHERE serial = ?2", [&pa, &h.c])
            .unwrap();
    }
    assert_tampered(
        &dir,
        &[],
        &[
            &format!("certs row {}: the SHA-256 of its pem is", h.a),
            &format!("certs row {}: the SHA-256 of its pem is", h.c),
            "pem swapped or edited?",
        ],
    );

    // Deleting a certificate row (say, to drop a revoked certificate from the CRL).
    let (_t, dir) = h.copy();
    let b_seq = seq_of(&dir, "issue", &h.b);
    sql(&dir, &format!("DELETE FROM certs WHERE serial = '{}'", h.b));
    assert_tampered(
        &dir,
        &[],
        &[&format!(
            "entry {b_seq} issued {}, but the certs table has no such row",
            h.b
        )],
    );

    // Renaming the parent a renewal came from.
    let (_t, dir) = h.copy();
    sql(
        &dir,
        &format!(
            "UPDATE certs SET renewed_from = NULL WHERE serial = '{}'",
            h.a_renewed
        ),
    );
    assert_tampered(
        &dir,
        &[],
        &[&format!("certs row {}: renewed_from is NULL", h.a_renewed)],
    );
}

#[tokio::test]
async fn a_cut_tail_is_reported_and_expect_head_catches_a_consistent_cut() {
    let h = history().await;
    let (seq, _) = h.head.split_once(':').unwrap();
    let conn_event = |dir: &Path| -> String {
        let conn = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
        conn.query_row(
            "SELECT event FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(conn_event(&h.dir), "token", "the history ends with a token");

    // Delete the trailing token entry: the row it created has no entry any more.
    let (_t, dir) = h.copy();
    sql(
        &dir,
        "DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)",
    );
    assert_tampered(
        &dir,
        &[],
        &["stored, but no audit entry created it (row inserted, or entries cut from the log)"],
    );
    assert_tampered(
        &dir,
        &["--expect-head", &h.head],
        &[
            "stored, but no audit entry created it",
            &format!("the expected head is entry {seq}, but the chain ends at entry"),
        ],
    );

    // Delete the entry and its row: consistent, only the published head notices.
    let (_t, dir) = h.copy();
    sql(
        &dir,
        "DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)",
    );
    sql(&dir, "DELETE FROM tokens WHERE used_at IS NULL");
    let (code, out) = verify(&dir, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_tampered(
        &dir,
        &["--expect-head", &h.head],
        &[&format!(
            "the expected head is entry {seq}, but the chain ends at entry"
        )],
    );

    // A head whose hash differs: the chain was rewritten.
    let other = format!("{seq}:{}", "ab".repeat(32));
    assert_tampered(
        &h.dir,
        &["--expect-head", &other],
        &[&format!("entry {seq} has hash"), "the chain was rewritten"],
    );

    // A malformed head is a usage error.
    let (code, out) = verify(&h.dir, &["--expect-head", "nonsense"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("is not SEQ:HASH"), "{out}");
}

/// Rewrites every entry into the first format (no "v", token hash prefixes, fewer fields) and
/// re-chains the hashes, as a log written by the previous version would look.
fn downgrade_entries(dir: &Path) {
    let conn = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
    let rows: Vec<(i64, String, String, String)> = conn
        .prepare("SELECT seq, at, event, detail FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut prev = mtls_ca::audit::GENESIS.to_string();
    for (seq, at, event, detail) in rows {
        let v: serde_json::Value = serde_json::from_str(&detail).unwrap();
        let pick = |keys: &[&str]| {
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.to_string(), v[*k].clone());
            }
            out
        };
        let old = match event.as_str() {
            "token" => {
                let mut o = pick(&["spiffe_id", "dns", "ips", "expires_at"]);
                o.insert(
                    "token_hash_prefix".into(),
                    v["token_hash"].as_str().unwrap()[..12].into(),
                );
                o
            }
            "issue" | "renew" => {
                let mut o = pick(&[
                    "serial",
                    "spiffe_id",
                    "dns",
                    "ips",
                    "not_after",
                    "fingerprint",
                    "renewed_from",
                ]);
                if event == "issue" {
                    o.insert(
                        "token_hash_prefix".into(),
                        v["token_hash"].as_str().unwrap()[..12].into(),
                    );
                }
                o
            }
            "revoke" => pick(&["serial", "reason", "actor"]),
            _ => v.as_object().unwrap().clone(),
        };
        let detail = serde_json::Value::Object(old).to_string();
        let hash = mtls_ca::audit::entry_hash(&prev, seq, &at, &event, &detail);
        conn.execute(
            "UPDATE audit SET detail = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![detail, prev, hash, seq],
        )
        .unwrap();
        prev = hash;
    }
}

#[tokio::test]
async fn entries_of_the_first_format_are_replayed_with_the_fields_they_have() {
    let h = history().await;
    let (_t, dir) = h.copy();
    downgrade_entries(&dir);
    let (code, out) = verify(&dir, &[]);
    assert_eq!(code, Some(0), "a first-format log must verify: {out}");

    // Tampering is still caught with the fields those entries have.
    sql(
        &dir,
        &format!(
            "UPDATE certs SET revoked_at = NULL, revoke_reason = NULL WHERE serial = '{}'",
            h.b
        ),
    );
    sql(
        &dir,
        "UPDATE tokens SET spiffe_id = 'spiffe://mesh.local/service/evil' WHERE used_at IS NULL",
    );
    assert_tampered(
        &dir,
        &[],
        &[
            &format!("certs row {}: revoked_at is NULL, but entry", h.b),
            "spiffe_id is spiffe://mesh.local/service/evil, but entry",
        ],
    );
}
