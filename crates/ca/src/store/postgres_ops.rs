//! The SQL of the PostgreSQL store: the schema migrations, the write transaction with its
//! audit append, and row reads. Columns and value encodings are the SQLite store's (`rows.rs`:
//! Unix seconds, JSON text), so the audit replay compares both backends' rows alike.

use std::sync::Mutex;

use deadpool_postgres::{Client, GenericClient};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::entries::EntryRow;
pub use super::rows::{json, ts};
use super::rows::{AuditRow, CertRow, TokenRow};
use super::sqlite_ops::Appended;
use super::{CertRecord, Result, StoreError};
use crate::audit;

/// The PostgreSQL migrations, in order (see `migrations.rs`).
pub const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    spiffe_id TEXT NOT NULL,
    dns TEXT NOT NULL,
    ips TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    used_serial TEXT
);
CREATE TABLE certs (
    serial TEXT PRIMARY KEY,
    spiffe_id TEXT NOT NULL,
    dns TEXT NOT NULL,
    ips TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    renewed_from TEXT,
    fingerprint TEXT NOT NULL,
    pem TEXT NOT NULL,
    revoked_at BIGINT,
    revoke_reason TEXT
);
CREATE INDEX certs_revoked ON certs (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX certs_renewed_from ON certs (renewed_from) WHERE renewed_from IS NOT NULL;
CREATE INDEX certs_spiffe_id ON certs (spiffe_id);
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('revocation_epoch', '0');
CREATE TABLE entries (
    id TEXT PRIMARY KEY,
    spiffe_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    selectors TEXT NOT NULL,
    ttl_seconds BIGINT NOT NULL,
    dns TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX entries_parent ON entries (parent_id);
INSERT INTO meta (key, value) VALUES ('entry_revision', '0');
",
    super::postgres_tokens::MIGRATION_TOKEN_REVOKED_AT,
    super::postgres_federations::MIGRATION_FEDERATIONS,
    super::migrations::MIGRATION_OCSP_RESPONDER_KIND,
];

/// The advisory lock every write transaction holds until it ends: writes from every replica
/// are serialised like SQLite's IMMEDIATE transactions, so the audit chain stays one chain
/// (each append reads the head another committed) and the lineage rules see each other's
/// results. The value is arbitrary but fixed ("mtls-ca" in ASCII).
pub const WRITE_LOCK: i64 = 0x006d_746c_732d_6361;

/// Takes `WRITE_LOCK` in the transaction open on `client` (until it ends).
pub async fn take_write_lock(client: &impl GenericClient) -> Result<()> {
    GenericClient::execute(client, "SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .await
        .map_err(pg("taking the write lock"))?;
    Ok(())
}

/// Maps a driver error: one without a server error code means the connection is gone (the
/// database unreachable), which callers answer with 503; anything else is a failed statement.
pub fn pg(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |source| {
        let unavailable = source
            .as_db_error()
            .is_none_or(|db| server_unavailable(db.code()));
        if unavailable {
            let cause = with_causes(&source);
            tracing::error!(error = %cause, context, "the PostgreSQL connection failed");
            StoreError::Unreachable(format!("{context}: {cause}"))
        } else {
            StoreError::Postgres { context, source }
        }
    }
}

/// `error` and the causes under it, each once: the driver's errors print only their kind
/// ("error performing TLS handshake") and keep the reason ("server does not support TLS", the
/// refused certificate) as their source.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// Whether the server refused because it is not (or no longer) a primary that accepts work:
/// shutting down or starting up (class 57P: a failover in progress), read-only (a standby, or
/// a demoted primary), or the connection failed (class 08). Nothing was written; another host
/// of a multi-host URL, or the same one a moment later, can answer: the caller gets 503.
fn server_unavailable(code: &tokio_postgres::error::SqlState) -> bool {
    use tokio_postgres::error::SqlState;
    [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::READ_ONLY_SQL_TRANSACTION,
    ]
    .contains(code)
        || code.code().starts_with("08")
}

/// A column of `row`, or a `Corrupt` error naming it.
pub fn col<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

/// The audit chain's last entry as the open batch left it: read once when the batch takes the
/// write lock (nobody else can append until it commits), then kept here, so an append costs
/// one INSERT and no SELECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditTail {
    pub seq: i64,
    pub hash: String,
}

impl AuditTail {
    /// The tail of an empty chain.
    pub fn genesis() -> AuditTail {
        AuditTail {
            seq: 0,
            hash: audit::GENESIS.to_string(),
        }
    }
}

/// An audit entry computed for the tail, not yet stored (see [`PgTx::next_audit`]).
pub struct PendingAudit {
    pub seq: i64,
    pub event: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl PendingAudit {
    /// The entry that follows `tail`, dated `at`.
    pub fn after(tail: &AuditTail, at: &str, event: &str, detail: &serde_json::Value) -> Self {
        let seq = tail.seq + 1;
        let detail = detail.to_string();
        let hash = audit::entry_hash(&tail.hash, seq, at, event, &detail);
        PendingAudit {
            seq,
            event: event.to_string(),
            detail,
            prev_hash: tail.hash.clone(),
            hash,
        }
    }

    /// The chain's tail once this entry is stored.
    pub fn as_tail(&self) -> AuditTail {
        AuditTail {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }

    /// This entry, for logging once its batch committed.
    pub fn as_appended(&self) -> Appended {
        Appended {
            seq: self.seq,
            hash: self.hash.clone(),
            event: self.event.clone(),
        }
    }
}

/// One write call inside the batch transaction (which holds `WRITE_LOCK`, `postgres_batch.rs`),
/// and the audit entries it appended.
pub struct PgTx<'c> {
    pub tx: &'c Client,
    /// When the call started (RFC 3339), the `at` of its audit entries.
    pub at: String,
    tail: Mutex<AuditTail>,
    appended: Mutex<Vec<Appended>>,
}

impl<'c> PgTx<'c> {
    /// A call on `client`, inside a transaction holding the write lock, whose chain ends at
    /// `tail`.
    pub fn new(client: &'c Client, at: String, tail: AuditTail) -> PgTx<'c> {
        PgTx {
            tx: client,
            at,
            tail: Mutex::new(tail),
            appended: Mutex::new(Vec::new()),
        }
    }

    /// The chain's tail after this call and the entries it appended (for logging once the
    /// batch commits).
    pub fn finish(self) -> (AuditTail, Vec<Appended>) {
        (
            self.tail.into_inner().unwrap_or_else(|p| p.into_inner()),
            self.appended
                .into_inner()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Runs `sql` as a prepared statement kept on the connection (one round trip, no parse).
    pub async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        context: &'static str,
    ) -> Result<u64> {
        let statement = self.tx.prepare_cached(sql).await.map_err(pg(context))?;
        GenericClient::execute(self.tx, &statement, params)
            .await
            .map_err(pg(context))
    }

    /// The entry that would follow the tail now; store it with the change it records, then
    /// [`PgTx::appended`] it.
    pub fn next_audit(&self, event: &str, detail: &serde_json::Value) -> PendingAudit {
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        PendingAudit::after(&tail, &self.at, event, detail)
    }

    /// Moves the tail past `entry`, which this call stored.
    pub fn appended(&self, entry: &PendingAudit) {
        *self.tail.lock().unwrap_or_else(|p| p.into_inner()) = entry.as_tail();
        self.appended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry.as_appended());
    }

    /// Appends one audit entry to the chain (the write lock makes this batch the only
    /// writer). The tail moves before the INSERT is awaited, so appends polled together
    /// (pipelined) still chain in order; a failed INSERT fails the whole call, whose tail is
    /// then dropped.
    pub async fn append_audit(&self, event: &str, detail: &serde_json::Value) -> Result<()> {
        let entry = self.next_audit(event, detail);
        self.appended(&entry);
        self.execute(
            "INSERT INTO audit (seq, at, event, detail, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &entry.seq,
                &self.at,
                &entry.event,
                &entry.detail,
                &entry.prev_hash,
                &entry.hash,
            ],
            "appending to the audit log",
        )
        .await?;
        Ok(())
    }

    pub async fn insert_cert(&self, c: &CertRecord) -> Result<()> {
        let renewed_from = c.renewed_from.as_deref();
        self.execute(
            "INSERT INTO certs (serial, spiffe_id, dns, ips, not_before, not_after, issued_at,
                                kind, renewed_from, fingerprint, pem)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &c.serial,
                &c.spiffe_id,
                &json(&c.dns),
                &json(&c.ips),
                &ts(c.not_before),
                &ts(c.not_after),
                &ts(c.issued_at),
                &c.kind.as_str(),
                &renewed_from,
                &c.fingerprint,
                &c.pem,
            ],
            "recording the certificate",
        )
        .await?;
        Ok(())
    }

    /// Moves a counter in `meta` (`revocation_epoch`, `entry_revision`).
    pub async fn bump(&self, key: &str, context: &'static str) -> Result<()> {
        self.execute(
            "UPDATE meta SET value = (value::BIGINT + 1)::TEXT WHERE key = $1",
            &[&key],
            context,
        )
        .await?;
        Ok(())
    }
}

/// Rows of `sql` with `params`, each read by `read`. Every statement is prepared once per
/// connection and kept (deadpool-postgres' statement cache): one round trip instead of two.
pub async fn query_all<T>(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    read: impl Fn(&Row) -> Result<T>,
    context: &'static str,
) -> Result<Vec<T>> {
    let statement = client.prepare_cached(sql).await.map_err(pg(context))?;
    GenericClient::query(client, &statement, params)
        .await
        .map_err(pg(context))?
        .iter()
        .map(read)
        .collect()
}

/// The first row of `sql`, if any.
pub async fn query_one<T>(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    read: impl Fn(&Row) -> Result<T>,
    context: &'static str,
) -> Result<Option<T>> {
    let statement = client.prepare_cached(sql).await.map_err(pg(context))?;
    GenericClient::query_opt(client, &statement, params)
        .await
        .map_err(pg(context))?
        .as_ref()
        .map(read)
        .transpose()
}

pub use super::sqlite_entries::ENTRY_COLUMNS;
pub use super::sqlite_ops::{CERT_COLUMNS, TOKEN_COLUMNS};

pub fn read_cert(r: &Row) -> Result<CertRow> {
    Ok(CertRow {
        serial: col(r, 0)?,
        spiffe_id: col(r, 1)?,
        dns: col(r, 2)?,
        ips: col(r, 3)?,
        not_before: col(r, 4)?,
        not_after: col(r, 5)?,
        issued_at: col(r, 6)?,
        kind: col(r, 7)?,
        renewed_from: col(r, 8)?,
        fingerprint: col(r, 9)?,
        pem: col(r, 10)?,
        revoked_at: col(r, 11)?,
        revoke_reason: col(r, 12)?,
    })
}

pub fn read_token(r: &Row) -> Result<TokenRow> {
    Ok(TokenRow {
        hash: col(r, 0)?,
        spiffe_id: col(r, 1)?,
        dns: col(r, 2)?,
        ips: col(r, 3)?,
        created_at: col(r, 4)?,
        expires_at: col(r, 5)?,
        used_at: col(r, 6)?,
        used_serial: col(r, 7)?,
        revoked_at: col(r, 8)?,
    })
}

pub fn read_entry(r: &Row) -> Result<EntryRow> {
    Ok(EntryRow {
        id: col(r, 0)?,
        spiffe_id: col(r, 1)?,
        parent_id: col(r, 2)?,
        selectors: col(r, 3)?,
        ttl_seconds: col(r, 4)?,
        dns: col(r, 5)?,
        created_at: col(r, 6)?,
    })
}

pub fn read_audit(r: &Row) -> Result<AuditRow> {
    Ok(AuditRow {
        seq: col(r, 0)?,
        at: col(r, 1)?,
        event: col(r, 2)?,
        detail: col(r, 3)?,
        prev_hash: col(r, 4)?,
        hash: col(r, 5)?,
    })
}

/// The certificate with `serial`, if stored.
pub async fn cert(client: &impl GenericClient, serial: &str) -> Result<Option<CertRecord>> {
    query_one(
        client,
        &format!("SELECT {CERT_COLUMNS} FROM certs WHERE serial = $1"),
        &[&serial],
        read_cert,
        "looking up the certificate",
    )
    .await?
    .map(CertRow::into_record)
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::server_unavailable;
    use tokio_postgres::error::SqlState;

    #[test]
    fn a_server_in_failover_is_unavailable_but_a_refused_statement_is_not() {
        for code in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::CONNECTION_FAILURE,
            SqlState::CONNECTION_EXCEPTION,
        ] {
            assert!(server_unavailable(&code), "{}", code.code());
        }
        for code in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::SYNTAX_ERROR,
            SqlState::T_R_SERIALIZATION_FAILURE,
        ] {
            assert!(!server_unavailable(&code), "{}", code.code());
        }
    }
}
