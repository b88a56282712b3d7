//! The default store: one SQLite file in the data directory, WAL journal, synchronous=FULL so a
//! committed issuance or revocation survives `kill -9` and power loss. Several processes (the
//! running CA and the admin subcommands) share the file; SQLite serialises their writes.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::file_guard::FileGuard;
use super::{
    AuditCheck, CertRecord, IssueKind, Redeem, Result, Revoke, Store, StoreError, TokenRecord,
};
use crate::audit;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    spiffe_id TEXT NOT NULL,
    dns TEXT NOT NULL,
    ips TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    used_serial TEXT
);
CREATE TABLE IF NOT EXISTS certs (
    serial TEXT PRIMARY KEY,
    spiffe_id TEXT NOT NULL,
    dns TEXT NOT NULL,
    ips TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    renewed_from TEXT,
    fingerprint TEXT NOT NULL,
    pem TEXT NOT NULL,
    revoked_at INTEGER,
    revoke_reason TEXT
);
CREATE INDEX IF NOT EXISTS certs_revoked ON certs (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revocation_epoch', '0');
";

pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The file this connection writes to; every write transaction checks the path still
    /// names it (see `file_guard.rs`).
    guard: FileGuard,
}

fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Db { context, source }
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_ts(v: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(v)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {v}")))
}

fn json<T: serde::Serialize>(v: &T) -> String {
    // Serialising Vec<String>/Vec<IpAddr> cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|_| StoreError::Corrupt(format!("{what}: {s:?}")))
}

impl SqliteStore {
    /// Creates a new database at `path` holding the schema and `meta` (for example the trust
    /// domain and the root fingerprint), and closes it. Refuses an existing file. The file is
    /// left as a single file in rollback-journal mode, so the caller can rename it into place
    /// atomically; `open` switches it to WAL.
    pub fn initialise(path: &Path, meta: &[(&str, &str)]) -> Result<()> {
        if path.exists() {
            return Err(StoreError::Setup(format!(
                "{} already exists; refusing to initialise over it",
                path.display()
            )));
        }
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            StoreError::Setup(format!(
                "cannot create the CA database {}: {e}",
                path.display()
            ))
        })?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db("setting synchronous=FULL"))?;
        let tx = conn.transaction().map_err(db("starting a transaction"))?;
        tx.execute_batch(SCHEMA)
            .map_err(db("creating the schema"))?;
        for (key, value) in meta {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map_err(db("writing metadata"))?;
        }
        tx.commit().map_err(db("committing the new database"))?;
        conn.close()
            .map_err(|(_, e)| db("closing the new database")(e))
    }

    /// `initialise` and `open` in one step, for a database at a path nobody else uses yet.
    pub fn create(path: &Path, meta: &[(&str, &str)]) -> Result<SqliteStore> {
        Self::initialise(path, meta)?;
        Self::open(path)
    }

    /// Opens an existing CA database. Never creates one: a missing file is an error, so a
    /// deleted database can never be replaced by an empty one behind the operator's back.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            StoreError::Setup(format!(
                "cannot open the CA database {}: {e}",
                path.display()
            ))
        })?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(db("setting busy timeout"))?;
        let is_ca_db: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'trust_domain'",
                [],
                |r| r.get(0),
            )
            .optional()
            .unwrap_or(None);
        if is_ca_db.is_none() {
            return Err(StoreError::Setup(format!(
                "{} is not a CA database (it records no trust domain); restore the CA's ca.db \
                 from a backup, or move the data directory away to start a new CA",
                path.display()
            )));
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db("setting synchronous=FULL"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db("enabling foreign keys"))?;
        // Idempotent: brings databases made by earlier versions up to the current schema.
        conn.execute_batch(SCHEMA)
            .map_err(db("updating the schema"))?;
        let guard = FileGuard::capture(path).map_err(|e| {
            StoreError::Setup(format!(
                "cannot stat the CA database {}: {e}",
                path.display()
            ))
        })?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            guard,
        })
    }

    /// Reads one metadata value of the database at `path` without opening it for writing
    /// (used to inspect a half-initialised data directory).
    pub fn peek_meta(path: &Path, key: &str) -> Result<Option<String>> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Setup(format!("cannot open {}: {e}", path.display())))?;
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(db("reading metadata"))
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        // A poisoned lock only means another thread panicked mid-call; SQLite rolled its
        // transaction back, so the connection is still consistent.
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Runs `f` in an IMMEDIATE transaction (the write lock is taken first, so concurrent
    /// writers in this and other processes serialise) and commits when it returns Ok. Refuses
    /// before writing anything when the database file is no longer the one opened.
    fn write_tx<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.with_conn(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db("starting a transaction"))?;
            self.guard.check().map_err(StoreError::Unavailable)?;
            let out = f(&tx)?;
            tx.commit().map_err(db("committing"))?;
            Ok(out)
        })
    }
}

/// Appends one audit entry inside the caller's transaction.
fn append_audit(tx: &Transaction<'_>, event: &str, detail: &serde_json::Value) -> Result<()> {
    let (last_seq, prev): (i64, String) = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db("reading the audit tail"))?
        .unwrap_or((0, audit::GENESIS.to_string()));
    let seq = last_seq + 1;
    let at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map_err(|e| StoreError::Corrupt(format!("formatting time: {e}")))?;
    let detail = detail.to_string();
    let hash = audit::entry_hash(&prev, seq, &at, event, &detail);
    tx.execute(
        "INSERT INTO audit (seq, at, event, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![seq, at, event, detail, prev, hash],
    )
    .map_err(db("appending to the audit log"))?;
    Ok(())
}

fn insert_cert(tx: &Transaction<'_>, c: &CertRecord) -> Result<()> {
    tx.execute(
        "INSERT INTO certs (serial, spiffe_id, dns, ips, not_before, not_after, issued_at, kind,
                            renewed_from, fingerprint, pem)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            c.serial,
            c.spiffe_id,
            json(&c.dns),
            json(&c.ips),
            ts(c.not_before),
            ts(c.not_after),
            ts(c.issued_at),
            c.kind.as_str(),
            c.renewed_from,
            c.fingerprint,
            c.pem
        ],
    )
    .map_err(db("recording the certificate"))?;
    Ok(())
}

fn cert_detail(c: &CertRecord) -> serde_json::Value {
    serde_json::json!({
        "serial": c.serial,
        "spiffe_id": c.spiffe_id,
        "dns": c.dns,
        "ips": c.ips,
        "not_after": c.not_after.unix_timestamp(),
        "fingerprint": c.fingerprint,
        "renewed_from": c.renewed_from,
    })
}

const CERT_COLUMNS: &str =
    "serial, spiffe_id, dns, ips, not_before, not_after, issued_at, kind, renewed_from,
                            fingerprint, pem, revoked_at, revoke_reason";

fn read_cert(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawCert> {
    Ok(RawCert {
        serial: r.get(0)?,
        spiffe_id: r.get(1)?,
        dns: r.get(2)?,
        ips: r.get(3)?,
        not_before: r.get(4)?,
        not_after: r.get(5)?,
        issued_at: r.get(6)?,
        kind: r.get(7)?,
        renewed_from: r.get(8)?,
        fingerprint: r.get(9)?,
        pem: r.get(10)?,
        revoked_at: r.get(11)?,
        revoke_reason: r.get(12)?,
    })
}

/// Row as SQLite returns it, converted to a `CertRecord` outside the rusqlite callback.
struct RawCert {
    serial: String,
    spiffe_id: String,
    dns: String,
    ips: String,
    not_before: i64,
    not_after: i64,
    issued_at: i64,
    kind: String,
    renewed_from: Option<String>,
    fingerprint: String,
    pem: String,
    revoked_at: Option<i64>,
    revoke_reason: Option<String>,
}

impl RawCert {
    fn into_record(self) -> Result<CertRecord> {
        Ok(CertRecord {
            dns: from_json(&self.dns, "certs.dns")?,
            ips: from_json(&self.ips, "certs.ips")?,
            not_before: from_ts(self.not_before)?,
            not_after: from_ts(self.not_after)?,
            issued_at: from_ts(self.issued_at)?,
            kind: match self.kind.as_str() {
                "sign" => IssueKind::Sign,
                "renew" => IssueKind::Renew,
                other => return Err(StoreError::Corrupt(format!("certs.kind {other:?}"))),
            },
            revoked_at: self.revoked_at.map(from_ts).transpose()?,
            serial: self.serial,
            spiffe_id: self.spiffe_id,
            renewed_from: self.renewed_from,
            fingerprint: self.fingerprint,
            pem: self.pem,
            revoke_reason: self.revoke_reason,
        })
    }
}

impl Store for SqliteStore {
    fn init_meta(&self, key: &str, value: &str) -> Result<String> {
        self.write_tx(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map_err(db("writing metadata"))?;
            tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .map_err(db("reading metadata"))
        })
    }

    fn get_meta(&self, key: &str) -> Result<Option<String>> {
        self.with_conn(|c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(db("reading metadata"))
        })
    }

    fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        self.write_tx(|tx| {
            tx.execute(
                "INSERT INTO tokens (hash, spiffe_id, dns, ips, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    t.hash,
                    t.spiffe_id,
                    json(&t.dns),
                    json(&t.ips),
                    ts(t.created_at),
                    ts(t.expires_at)
                ],
            )
            .map_err(db("storing the token"))?;
            // The audit entry names the token by a prefix of its hash: enough to correlate,
            // useless for redeeming.
            append_audit(
                tx,
                "token",
                &serde_json::json!({
                    "token_hash_prefix": &t.hash[..12.min(t.hash.len())],
                    "spiffe_id": t.spiffe_id,
                    "dns": t.dns,
                    "ips": t.ips,
                    "expires_at": t.expires_at.unix_timestamp(),
                }),
            )
        })
    }

    fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let raw = self.with_conn(|c| {
            c.query_row(
                "SELECT hash, spiffe_id, dns, ips, created_at, expires_at, used_at FROM tokens WHERE hash = ?1",
                [hash],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(db("looking up the token"))
        })?;
        raw.map(|(hash, spiffe_id, dns, ips, created, expires, used)| {
            Ok(TokenRecord {
                hash,
                spiffe_id,
                dns: from_json(&dns, "tokens.dns")?,
                ips: from_json(&ips, "tokens.ips")?,
                created_at: from_ts(created)?,
                expires_at: from_ts(expires)?,
                used_at: used.map(from_ts).transpose()?,
            })
        })
        .transpose()
    }

    fn redeem_token(&self, hash: &str, now: OffsetDateTime, cert: &CertRecord) -> Result<Redeem> {
        self.write_tx(|tx| {
            let changed = tx
                .execute(
                    "UPDATE tokens SET used_at = ?1, used_serial = ?2
                     WHERE hash = ?3 AND used_at IS NULL AND expires_at > ?1",
                    params![ts(now), cert.serial, hash],
                )
                .map_err(db("redeeming the token"))?;
            if changed != 1 {
                // Nothing was written: committing the empty transaction stores nothing.
                return Ok(Redeem::AlreadyUsed);
            }
            insert_cert(tx, cert)?;
            let mut detail = cert_detail(cert);
            detail["token_hash_prefix"] = serde_json::Value::from(&hash[..12.min(hash.len())]);
            append_audit(tx, "issue", &detail)?;
            Ok(Redeem::Done)
        })
    }

    fn record_renewal(&self, cert: &CertRecord) -> Result<()> {
        self.write_tx(|tx| {
            insert_cert(tx, cert)?;
            append_audit(tx, "renew", &cert_detail(cert))
        })
    }

    fn find_cert(&self, serial: &str) -> Result<Option<CertRecord>> {
        let raw = self.with_conn(|c| {
            c.query_row(
                &format!("SELECT {CERT_COLUMNS} FROM certs WHERE serial = ?1"),
                [serial],
                read_cert,
            )
            .optional()
            .map_err(db("looking up the certificate"))
        })?;
        raw.map(RawCert::into_record).transpose()
    }

    fn list_certs(&self) -> Result<Vec<CertRecord>> {
        let raws = self.with_conn(|c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {CERT_COLUMNS} FROM certs ORDER BY issued_at, serial"
                ))
                .map_err(db("listing certificates"))?;
            let rows = stmt
                .query_map([], read_cert)
                .map_err(db("listing certificates"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db("listing certificates"))
        })?;
        raws.into_iter().map(RawCert::into_record).collect()
    }

    fn revoke(
        &self,
        serial: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Revoke> {
        self.write_tx(|tx| {
            let state: Option<Option<i64>> = tx
                .query_row(
                    "SELECT revoked_at FROM certs WHERE serial = ?1",
                    [serial],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db("looking up the certificate"))?;
            match state {
                None => return Ok(Revoke::UnknownSerial),
                Some(Some(_)) => return Ok(Revoke::AlreadyRevoked),
                Some(None) => {}
            }
            tx.execute(
                "UPDATE certs SET revoked_at = ?1, revoke_reason = ?2 WHERE serial = ?3",
                params![ts(now), reason, serial],
            )
            .map_err(db("revoking"))?;
            tx.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revocation_epoch'",
                [],
            )
            .map_err(db("bumping the revocation epoch"))?;
            append_audit(
                tx,
                "revoke",
                &serde_json::json!({"serial": serial, "reason": reason, "actor": actor}),
            )?;
            Ok(Revoke::Done)
        })
    }

    fn revoked_unexpired(&self, now: OffsetDateTime) -> Result<Vec<CertRecord>> {
        let raws = self.with_conn(|c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {CERT_COLUMNS} FROM certs WHERE revoked_at IS NOT NULL AND not_after > ?1
                     ORDER BY revoked_at, serial"
                ))
                .map_err(db("reading revocations"))?;
            let rows = stmt.query_map([ts(now)], read_cert).map_err(db("reading revocations"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db("reading revocations"))
        })?;
        raws.into_iter().map(RawCert::into_record).collect()
    }

    fn revocation_epoch(&self) -> Result<u64> {
        self.with_conn(|c| {
            let v: String = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'revocation_epoch'",
                    [],
                    |r| r.get(0),
                )
                .map_err(db("reading the revocation epoch"))?;
            v.parse()
                .map_err(|_| StoreError::Corrupt(format!("revocation_epoch {v:?}")))
        })
    }

    fn record_event(&self, event: &str, detail: &serde_json::Value) -> Result<()> {
        self.write_tx(|tx| append_audit(tx, event, detail))
    }

    fn health_probe(&self, now: OffsetDateTime) -> std::result::Result<(), String> {
        self.guard.check()?;
        self.guard.check_writable()?;
        let written = self.write_tx(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('heartbeat', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [ts(now).to_string()],
            )
            .map_err(db("writing the heartbeat"))
        });
        written.map(|_| ()).map_err(|e| match e {
            StoreError::Unavailable(reason) => reason,
            other => {
                tracing::error!(error = %other, "health probe: writing to the CA database failed");
                "a write to the CA database failed (see the CA log)".to_string()
            }
        })
    }

    fn verify_audit(&self) -> Result<AuditCheck> {
        self.with_conn(|c| {
            let mut stmt = c
                .prepare("SELECT seq, at, event, detail, prev_hash, hash FROM audit ORDER BY seq")
                .map_err(db("reading the audit log"))?;
            let mut rows = stmt.query([]).map_err(db("reading the audit log"))?;
            let mut prev = audit::GENESIS.to_string();
            let mut expected_seq = 1i64;
            let mut count = 0u64;
            let mut issued_serials = std::collections::HashSet::new();
            let mut revoked_serials = std::collections::HashSet::new();
            while let Some(r) = rows.next().map_err(db("reading the audit log"))? {
                let seq: i64 = r.get(0).map_err(db("reading seq"))?;
                let at: String = r.get(1).map_err(db("reading at"))?;
                let event: String = r.get(2).map_err(db("reading event"))?;
                let detail: String = r.get(3).map_err(db("reading detail"))?;
                let prev_hash: String = r.get(4).map_err(db("reading prev_hash"))?;
                let hash: String = r.get(5).map_err(db("reading hash"))?;
                if seq != expected_seq {
                    return Ok(AuditCheck::Broken {
                        seq,
                        reason: format!("entry {expected_seq} is missing (found {seq} next)"),
                    });
                }
                if prev_hash != prev {
                    return Ok(AuditCheck::Broken {
                        seq,
                        reason: "its prev_hash does not match the previous entry's hash".into(),
                    });
                }
                if audit::entry_hash(&prev_hash, seq, &at, &event, &detail) != hash {
                    return Ok(AuditCheck::Broken {
                        seq,
                        reason: "its content does not match its hash (the row was edited)".into(),
                    });
                }
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&detail) {
                    if let Some(serial) = v["serial"].as_str() {
                        match event.as_str() {
                            "issue" | "renew" => issued_serials.insert(serial.to_string()),
                            "revoke" => revoked_serials.insert(serial.to_string()),
                            _ => false,
                        };
                    }
                }
                prev = hash;
                expected_seq += 1;
                count += 1;
            }
            drop(rows);
            drop(stmt);
            // The chain alone cannot notice its tail being cut off; the data can: every stored
            // certificate and revocation must have its audit entry.
            let mut stmt = c
                .prepare("SELECT serial, revoked_at IS NOT NULL FROM certs")
                .map_err(db("reading certificates"))?;
            let certs = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))
                .map_err(db("reading certificates"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db("reading certificates"))?;
            for (serial, revoked) in certs {
                if !issued_serials.contains(&serial) {
                    return Ok(AuditCheck::Broken {
                        seq: expected_seq,
                        reason: format!("certificate {serial} is stored but its issue entry is missing (log truncated?)"),
                    });
                }
                if revoked && !revoked_serials.contains(&serial) {
                    return Ok(AuditCheck::Broken {
                        seq: expected_seq,
                        reason: format!("certificate {serial} is revoked but its revoke entry is missing (log truncated?)"),
                    });
                }
            }
            Ok(AuditCheck::Intact { entries: count })
        })
    }
}
