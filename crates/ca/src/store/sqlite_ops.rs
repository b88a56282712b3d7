//! The SQL the SQLite store runs inside its transactions: row reads, inserts, and the audit
//! append that every mutation makes in the same transaction as the change it records.

use std::cell::RefCell;

use rusqlite::{params, Connection, OptionalExtension, Savepoint};

pub use super::rows::{json, ts};
use super::rows::{AuditRow, CertRow, TokenRow};
use super::{CertRecord, Result, StoreError};
use crate::audit;

pub fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Db { context, source }
}

/// Runs `sql` through the connection's prepared-statement cache. Issuance runs the same few
/// statements for every certificate; parsing them anew each time cost about 6% of the CA's CPU
/// under load (docs/performance.md, "CA issuance").
pub fn execute_cached<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the statement cache (see `execute_cached`).
pub fn query_row_cached<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    read: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, read)
}

/// An audit entry appended in a transaction, logged once the transaction commits.
pub struct Appended {
    pub seq: i64,
    pub hash: String,
    pub event: String,
}

/// One write call's savepoint inside a batch transaction (see `sqlite_batch.rs`) and the
/// audit entries appended in it.
pub struct WriteTx<'c> {
    pub tx: Savepoint<'c>,
    /// When the transaction started (RFC 3339), the `at` of its audit entries.
    at: String,
    appended: RefCell<Vec<Appended>>,
}

impl<'c> WriteTx<'c> {
    pub fn new(tx: Savepoint<'c>, at: String) -> Self {
        WriteTx {
            tx,
            at,
            appended: RefCell::new(Vec::new()),
        }
    }

    /// Releases the savepoint (its writes join the batch, committed with it) and returns the
    /// entries appended, to log once the batch commits.
    pub fn release(self) -> Result<Vec<Appended>> {
        self.tx.commit().map_err(db("releasing a savepoint"))?;
        Ok(self.appended.into_inner())
    }

    /// Rolls the savepoint's writes back and releases it.
    pub fn abandon(self) -> rusqlite::Result<()> {
        self.tx.finish()
    }

    /// Appends one audit entry to the chain.
    pub fn append_audit(&self, event: &str, detail: &serde_json::Value) -> Result<()> {
        let (last_seq, prev): (i64, String) = query_row_cached(
            &self.tx,
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db("reading the audit tail"))?
        .unwrap_or((0, audit::GENESIS.to_string()));
        let seq = last_seq + 1;
        let at = &self.at;
        let detail = detail.to_string();
        let hash = audit::entry_hash(&prev, seq, at, event, &detail);
        execute_cached(
            &self.tx,
            "INSERT INTO audit (seq, at, event, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![seq, at, event, detail, prev, hash],
        )
        .map_err(db("appending to the audit log"))?;
        self.appended.borrow_mut().push(Appended {
            seq,
            hash,
            event: event.to_string(),
        });
        Ok(())
    }

    pub fn insert_cert(&self, c: &CertRecord) -> Result<()> {
        execute_cached(
            &self.tx,
            "INSERT INTO certs (serial, spiffe_id, dns, ips, not_before, not_after, issued_at,
                                    kind, renewed_from, fingerprint, pem)
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
}

/// Logs each committed audit entry: publishing the head (seq and hash) elsewhere is what lets
/// `audit verify --expect-head` notice a cut or rewritten tail. Never logs the detail.
pub fn log_appended(appended: &[Appended]) {
    for a in appended {
        tracing::info!(
            event = "audit_append",
            seq = a.seq,
            hash = %a.hash,
            audit_event = %a.event,
            "audit entry appended"
        );
    }
}

pub const CERT_COLUMNS: &str = "serial, spiffe_id, dns, ips, not_before, not_after, issued_at, \
                                kind, renewed_from, fingerprint, pem, revoked_at, revoke_reason";

pub fn read_cert(r: &rusqlite::Row<'_>) -> rusqlite::Result<CertRow> {
    Ok(CertRow {
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

pub const TOKEN_COLUMNS: &str =
    "hash, spiffe_id, dns, ips, created_at, expires_at, used_at, used_serial, revoked_at";

pub fn read_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        hash: r.get(0)?,
        spiffe_id: r.get(1)?,
        dns: r.get(2)?,
        ips: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        used_at: r.get(6)?,
        used_serial: r.get(7)?,
        revoked_at: r.get(8)?,
    })
}

/// Rows of `sql` (with `params`) read by `read`.
pub fn query_all<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    context: &'static str,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db(context))?;
    let rows = stmt.query_map(params, read).map_err(db(context))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db(context))
}

pub fn read_audit(conn: &Connection) -> Result<Vec<AuditRow>> {
    query_all(
        conn,
        "SELECT seq, at, event, detail, prev_hash, hash FROM audit ORDER BY seq",
        [],
        |r| {
            Ok(AuditRow {
                seq: r.get(0)?,
                at: r.get(1)?,
                event: r.get(2)?,
                detail: r.get(3)?,
                prev_hash: r.get(4)?,
                hash: r.get(5)?,
            })
        },
        "reading the audit log",
    )
}
