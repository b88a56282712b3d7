//! The SQL of the PostgreSQL store: the schema migrations, the write transaction with its
//! audit append, and row reads. Columns and value encodings are the SQLite store's (`rows.rs`:
//! Unix seconds, JSON text), so the audit replay compares both backends' rows alike.

use std::sync::Mutex;

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

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
];

/// The advisory lock every write transaction holds until it ends: writes from every replica
/// are serialised like SQLite's IMMEDIATE transactions, so the audit chain stays one chain
/// (each append reads the head another committed) and the lineage rules see each other's
/// results. The value is arbitrary but fixed ("mtls-ca" in ASCII).
pub const WRITE_LOCK: i64 = 0x006d_746c_732d_6361;

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

/// A write transaction (holding `WRITE_LOCK`) and the audit entries appended in it.
pub struct PgTx<'c> {
    pub tx: tokio_postgres::Transaction<'c>,
    /// When the transaction started (RFC 3339), the `at` of its audit entries.
    at: String,
    appended: Mutex<Vec<Appended>>,
}

impl<'c> PgTx<'c> {
    /// Takes the write lock in `tx`.
    pub async fn new(tx: tokio_postgres::Transaction<'c>, at: String) -> Result<PgTx<'c>> {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .await
            .map_err(pg("taking the write lock"))?;
        Ok(PgTx {
            tx,
            at,
            appended: Mutex::new(Vec::new()),
        })
    }

    /// Commits and returns the entries appended, for logging.
    pub async fn commit(self) -> Result<Vec<Appended>> {
        self.tx.commit().await.map_err(pg("committing"))?;
        Ok(self
            .appended
            .into_inner()
            .unwrap_or_else(|p| p.into_inner()))
    }

    pub async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        context: &'static str,
    ) -> Result<u64> {
        self.tx.execute(sql, params).await.map_err(pg(context))
    }

    /// Appends one audit entry to the chain (the write lock makes this the only writer).
    pub async fn append_audit(&self, event: &str, detail: &serde_json::Value) -> Result<()> {
        let (last_seq, prev): (i64, String) = match self
            .tx
            .query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])
            .await
            .map_err(pg("reading the audit tail"))?
        {
            Some(row) => (col(&row, 0)?, col(&row, 1)?),
            None => (0, audit::GENESIS.to_string()),
        };
        let seq = last_seq + 1;
        let detail = detail.to_string();
        let hash = audit::entry_hash(&prev, seq, &self.at, event, &detail);
        self.execute(
            "INSERT INTO audit (seq, at, event, detail, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&seq, &self.at, &event, &detail, &prev, &hash],
            "appending to the audit log",
        )
        .await?;
        self.appended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Appended {
                seq,
                hash,
                event: event.to_string(),
            });
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

/// Rows of `sql` with `params`, each read by `read`.
pub async fn query_all<T>(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    read: impl Fn(&Row) -> Result<T>,
    context: &'static str,
) -> Result<Vec<T>> {
    client
        .query(sql, params)
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
    client
        .query_opt(sql, params)
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
