//! The default store: one SQLite file in the data directory, WAL journal, synchronous=FULL so a
//! committed issuance or revocation survives `kill -9` and power loss. Several processes (the
//! running CA and the admin subcommands) share the file; SQLite serialises their writes.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pki::clock::{Clock, SystemClock};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;

use super::details;
use super::entries::{AgentIssue, AgentOutcome, CreateEntry, EntryRecord};
use super::federations::{FederationRecord, StoredBundle};
use super::file_guard::FileGuard;
use super::rows::CertRow;
use super::sqlite_batch::{self, SqliteGroup};
use super::sqlite_federations;
use super::sqlite_ops::{
    db, execute_cached, json, log_appended, query_all, query_row_cached, read_audit, read_cert,
    read_token, ts, WriteTx, CERT_COLUMNS, TOKEN_COLUMNS,
};
use super::{
    migrations, replay, sqlite_entries, sqlite_lineage, sqlite_tokens, AuditCheck, AuditHead,
    CertRecord, Redeem, RenewOutcome, RenewalRequest, Result, Revoke, RevokeToken, Store,
    StoreError, TokenRecord,
};

/// The SQLite migrations, in order (see `migrations.rs`). Version 1 is the schema as it was
/// before versioning; it is idempotent, so it also brings up databases made before then.
pub const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    sqlite_tokens::MIGRATION_TOKEN_REVOKED_AT,
    sqlite_federations::MIGRATION_FEDERATIONS,
    migrations::MIGRATION_OCSP_RESPONDER_KIND,
];

const SCHEMA_V1: &str = "
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
CREATE INDEX IF NOT EXISTS certs_renewed_from ON certs (renewed_from) WHERE renewed_from IS NOT NULL;
CREATE INDEX IF NOT EXISTS certs_spiffe_id ON certs (spiffe_id);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revocation_epoch', '0');
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    spiffe_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    selectors TEXT NOT NULL,
    ttl_seconds INTEGER NOT NULL,
    dns TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_parent ON entries (parent_id);
INSERT OR IGNORE INTO meta (key, value) VALUES ('entry_revision', '0');
";

/// Applies the migrations `tx`'s database lacks, recording the version reached; refuses a
/// database of a newer schema. Returns the version now stored.
pub fn migrate(tx: &rusqlite::Transaction<'_>, what: &str) -> Result<u32> {
    tx.execute_batch("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .map_err(db("creating the meta table"))?;
    let stored: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [migrations::VERSION_KEY],
            |r| r.get(0),
        )
        .optional()
        .map_err(db("reading the schema version"))?;
    let found = migrations::parse_version(stored.as_deref())?;
    let todo = migrations::pending(found, MIGRATIONS, what)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(todo.start) {
        tx.execute_batch(sql).map_err(db("migrating the schema"))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![migrations::VERSION_KEY, (index + 1).to_string()],
        )
        .map_err(db("recording the schema version"))?;
    }
    Ok(MIGRATIONS.len() as u32)
}

/// Prepared statements kept per connection (rusqlite keeps 16 by default).
const STATEMENT_CACHE: usize = 64;

/// The CA's store in one SQLite file (see the module documentation).
pub struct SqliteStore {
    /// The writing connection: concurrent write calls share its transactions (group commit,
    /// `sqlite_batch.rs`).
    writer: SqliteGroup,
    /// Reads go through their own connection, so they see only committed data (never a batch
    /// still open on the writer) and do not wait for a batch's fsync.
    reader: Mutex<Connection>,
    /// The file this connection writes to; every write transaction checks the path still
    /// names it (see `file_guard.rs`).
    guard: FileGuard,
    /// Dates the audit entries.
    clock: Arc<dyn Clock>,
}

impl SqliteStore {
    /// Creates a new database at `path` holding the schema and `meta` (for example the trust
    /// domain and the root fingerprint), and closes it. Refuses an existing file. The file is
    /// left as a single file in rollback-journal mode, so the caller can rename it into place
    /// atomically; `open` switches it to WAL.
    pub fn initialise(path: &Path, meta: &[(&str, &str)]) -> Result<()> {
        // The file is created here, owner-only, and never replaced: SQLite would create it
        // with the umask's mode, and its -wal and -shm files take the database file's mode.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(pki::files::KEY_MODE)
            .open(path)
            .map_err(|e| {
                StoreError::Setup(if e.kind() == std::io::ErrorKind::AlreadyExists {
                    format!(
                        "{} already exists; refusing to initialise over it",
                        path.display()
                    )
                } else {
                    format!("cannot create the CA database {}: {e}", path.display())
                })
            })?;
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
        migrate(&tx, &path.display().to_string())?;
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
        // Brings databases made by earlier versions up to the current schema; refuses one
        // made by a newer version.
        let mut conn = conn;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db("starting a transaction"))?;
        migrate(&tx, &path.display().to_string())?;
        tx.commit().map_err(db("committing the schema"))?;
        let guard = FileGuard::capture(path).map_err(|e| {
            StoreError::Setup(format!(
                "cannot stat the CA database {}: {e}",
                path.display()
            ))
        })?;
        let reader = Self::open_reader(path)?;
        // Room for every statement the hot paths run (`execute_cached`), so none is evicted
        // by the occasional admin query and parsed again.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteStore {
            writer: sqlite_batch::new_group(conn),
            reader: Mutex::new(reader),
            guard,
            clock: Arc::new(SystemClock),
        })
    }

    /// The read connection: the same file (already in WAL mode), writes refused.
    fn open_reader(path: &Path) -> Result<Connection> {
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            StoreError::Setup(format!(
                "cannot open the CA database {} a second time for reading: {e}",
                path.display()
            ))
        })?;
        reader
            .busy_timeout(Duration::from_secs(10))
            .map_err(db("setting busy timeout"))?;
        reader
            .pragma_update(None, "query_only", "ON")
            .map_err(db("making the read connection read-only"))?;
        Ok(reader)
    }

    /// How many batch transactions the writer has ended (group commit; tests and benchmarks).
    pub fn batches_committed(&self) -> usize {
        self.writer.commits()
    }

    /// How many write calls are waiting for the writing connection right now (they will join
    /// the open batch); for tests that build a batch step by step.
    pub fn writers_waiting(&self) -> usize {
        self.writer.waiting()
    }

    /// Dates audit entries by `clock` instead of the system clock (tests that set the time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SqliteStore {
        self.clock = clock;
        self
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
        // read transaction back, so the connection is still consistent.
        let mut guard = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Runs `f` atomically and durably: in its own savepoint of a batch transaction shared with
    /// concurrent calls (IMMEDIATE, so writers in other processes serialise), returning once
    /// the batch has committed; an Err rolls back `f`'s writes only. Refuses before writing
    /// anything when the database file is no longer the one opened. Audit entries appended in
    /// it are logged after the commit.
    fn write_tx<T>(&self, f: impl FnOnce(&WriteTx<'_>) -> Result<T>) -> Result<T> {
        let (out, appended) = self.writer.write(|conn| {
            // Read inside the batch, while this call holds the connection (the group commit
            // tests gate this clock to build a batch step by step).
            let at = pki::timefmt::rfc3339(self.clock.now());
            sqlite_batch::run_in_savepoint(conn, at, |tx| {
                self.guard.check().map_err(StoreError::Unavailable)?;
                f(tx)
            })
        })?;
        log_appended(&appended);
        Ok(out)
    }

    /// Certificates matching `condition` (the SQL after WHERE) with `params`.
    fn certs_where(
        &self,
        condition: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<CertRecord>> {
        let rows = self.with_conn(|c| {
            query_all(
                c,
                &format!("SELECT {CERT_COLUMNS} FROM certs WHERE {condition}"),
                params,
                read_cert,
                "reading certificates",
            )
        })?;
        rows.into_iter().map(CertRow::into_record).collect()
    }
}

impl Store for SqliteStore {
    fn init_meta(&self, key: &str, value: &str) -> Result<String> {
        self.write_tx(|tx| {
            tx.tx
                .execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                    params![key, value],
                )
                .map_err(db("writing metadata"))?;
            tx.tx
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .map_err(db("reading metadata"))
        })
    }

    fn swap_meta(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        event: &str,
        detail: &serde_json::Value,
    ) -> Result<bool> {
        self.write_tx(|tx| {
            let changed = match expected {
                None => tx.tx.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                    params![key, new],
                ),
                Some(old) => tx.tx.execute(
                    "UPDATE meta SET value = ?2 WHERE key = ?1 AND value = ?3",
                    params![key, new, old],
                ),
            }
            .map_err(db("writing metadata"))?;
            if changed != 1 {
                return Ok(false);
            }
            tx.append_audit(event, detail)?;
            Ok(true)
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
            tx.tx
                .execute(
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
            tx.append_audit("token", &details::token(t))
        })
    }

    fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let row = self.with_conn(|c| {
            query_row_cached(
                c,
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"),
                [hash],
                read_token,
            )
            .optional()
            .map_err(db("looking up the token"))
        })?;
        row.map(|r| r.into_record()).transpose()
    }

    fn redeem_token(&self, hash: &str, now: OffsetDateTime, cert: &CertRecord) -> Result<Redeem> {
        self.write_tx(|tx| {
            let used_at = ts(now);
            let changed = execute_cached(
                &tx.tx,
                "UPDATE tokens SET used_at = ?1, used_serial = ?2
                     WHERE hash = ?3 AND used_at IS NULL AND revoked_at IS NULL
                       AND expires_at > ?1",
                params![used_at, cert.serial, hash],
            )
            .map_err(db("redeeming the token"))?;
            if changed != 1 {
                // Nothing was written: committing the empty transaction stores nothing.
                return Ok(Redeem::AlreadyUsed);
            }
            tx.insert_cert(cert)?;
            tx.append_audit("issue", &details::issue(cert, hash, used_at))?;
            Ok(Redeem::Done)
        })
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.with_conn(|c| sqlite_tokens::list(c))
    }

    fn revoke_token(&self, id: &str, actor: &str, now: OffsetDateTime) -> Result<RevokeToken> {
        self.write_tx(|tx| sqlite_tokens::revoke(tx, id, actor, now))
    }

    fn record_renewal(&self, renewal: &RenewalRequest<'_>) -> Result<RenewOutcome> {
        self.write_tx(|tx| sqlite_lineage::renew(tx, renewal))
    }

    fn find_cert(&self, serial: &str) -> Result<Option<CertRecord>> {
        Ok(self
            .certs_where("serial = ?1", &[&serial])?
            .into_iter()
            .next())
    }

    fn list_certs(&self) -> Result<Vec<CertRecord>> {
        self.certs_where("1 ORDER BY issued_at, serial", &[])
    }

    fn revoke(
        &self,
        serial: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Revoke> {
        self.write_tx(|tx| sqlite_lineage::revoke(tx, serial, reason, actor, ts(now)))
    }

    fn revoke_identity(
        &self,
        spiffe_id: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<String>> {
        self.write_tx(|tx| sqlite_lineage::revoke_identity(tx, spiffe_id, reason, actor, ts(now)))
    }

    fn revoked_unexpired(&self, now: OffsetDateTime) -> Result<Vec<CertRecord>> {
        self.certs_where(
            "revoked_at IS NOT NULL AND not_after > ?1 ORDER BY revoked_at, serial",
            &[&ts(now)],
        )
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

    fn next_crl_number(&self, at_least: u64) -> Result<u64> {
        // Stored as text in meta, like the epochs; i64 holds milliseconds for 290 million years.
        let at_least = i64::try_from(at_least).unwrap_or(i64::MAX);
        let next: i64 = self.write_tx(|tx| {
            tx.tx
                .query_row(
                    "INSERT INTO meta (key, value) VALUES ('crl_number', ?1)
                     ON CONFLICT (key) DO UPDATE
                     SET value = MAX(CAST(value AS INTEGER) + 1, CAST(excluded.value AS INTEGER))
                     RETURNING CAST(value AS INTEGER)",
                    [at_least.to_string()],
                    |r| r.get(0),
                )
                .map_err(db("taking a CRL number"))
        })?;
        u64::try_from(next).map_err(|_| StoreError::Corrupt(format!("crl_number {next}")))
    }

    fn record_event(&self, event: &str, detail: &serde_json::Value) -> Result<()> {
        self.write_tx(|tx| tx.append_audit(event, detail))
    }

    fn record_ocsp_responder(&self, cert: &CertRecord) -> Result<()> {
        self.write_tx(|tx| {
            tx.insert_cert(cert)?;
            tx.append_audit("ocsp_responder", &details::cert(cert))
        })
    }

    fn create_entry(&self, entry: &EntryRecord) -> Result<CreateEntry> {
        self.write_tx(|tx| sqlite_entries::create(tx, entry))
    }

    fn delete_entry(&self, id: &str, actor: &str, now: OffsetDateTime) -> Result<bool> {
        self.write_tx(|tx| sqlite_entries::delete(tx, id, actor, ts(now)))
    }

    fn find_entry(&self, id: &str) -> Result<Option<EntryRecord>> {
        self.with_conn(|c| sqlite_entries::find(c, id))
    }

    fn list_entries(&self, parent_id: Option<&str>) -> Result<Vec<EntryRecord>> {
        self.with_conn(|c| sqlite_entries::list(c, parent_id))
    }

    fn entry_revision(&self) -> Result<u64> {
        self.with_conn(|c| sqlite_entries::revision(c))
    }

    fn record_agent_issue(&self, issue: &AgentIssue<'_>) -> Result<AgentOutcome> {
        self.write_tx(|tx| sqlite_entries::record_issue(tx, issue))
    }

    fn add_federation(&self, federation: &FederationRecord, actor: &str) -> Result<bool> {
        self.write_tx(|tx| sqlite_federations::add(tx, federation, actor))
    }

    fn remove_federation(
        &self,
        trust_domain: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        self.write_tx(|tx| sqlite_federations::remove(tx, trust_domain, actor, ts(now)))
    }

    fn list_federations(&self) -> Result<Vec<FederationRecord>> {
        self.with_conn(|c| sqlite_federations::list(c))
    }

    fn store_federated_bundle(
        &self,
        trust_domain: &str,
        bundle: &str,
        roots: &[String],
        sequence: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<StoredBundle> {
        self.write_tx(|tx| {
            sqlite_federations::store_bundle(tx, trust_domain, bundle, roots, sequence, ts(now))
        })
    }

    fn health_probe(&self, now: OffsetDateTime) -> std::result::Result<(), String> {
        self.guard.check()?;
        self.guard.check_writable()?;
        let written = self.write_tx(|tx| {
            tx.tx
                .execute(
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
            // One read transaction: the chain and the tables come from the same snapshot, even
            // while the CA keeps writing.
            let tx = c.transaction().map_err(db("starting a read transaction"))?;
            let entries = read_audit(&tx)?;
            let tokens = query_all(
                &tx,
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, hash"),
                [],
                read_token,
                "reading tokens",
            )?;
            let certs = query_all(
                &tx,
                &format!("SELECT {CERT_COLUMNS} FROM certs ORDER BY issued_at, serial"),
                [],
                read_cert,
                "reading certificates",
            )?;
            let registrations = sqlite_entries::all_rows(&tx)?;
            let federations = sqlite_federations::list(&tx)?;
            Ok(replay::check(
                &entries,
                &tokens,
                &certs,
                &registrations,
                &federations,
            ))
        })
    }

    fn audit_head(&self) -> Result<Option<AuditHead>> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    Ok(AuditHead {
                        seq: r.get(0)?,
                        hash: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(db("reading the audit head"))
        })
    }

    fn audit_hash_at(&self, seq: i64) -> Result<Option<String>> {
        self.with_conn(|c| {
            c.query_row("SELECT hash FROM audit WHERE seq = ?1", [seq], |r| r.get(0))
                .optional()
                .map_err(db("reading the audit log"))
        })
    }
}
