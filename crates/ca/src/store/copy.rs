//! Copying a whole store between backends (`mtls-ca migrate-store`): every table row for row,
//! so the audit chain (whose hashes cover each entry's text) arrives byte for byte and still
//! verifies, and the meta values (root fingerprint, trust domain, CRL number, epochs) come
//! with it. Both backends have one schema with the same columns and encodings (`rows.rs`):
//! integers (Unix seconds) and text.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::OpenFlags;

use super::{
    migrations, AuditCheck, AuditHead, PostgresStore, Result, SqliteStore, Store, StoreError,
};

/// Every table of the schema with its columns, in the order they are copied.
pub const TABLES: &[(&str, &[&str])] = &[
    ("meta", &["key", "value"]),
    (
        "tokens",
        &[
            "hash",
            "spiffe_id",
            "dns",
            "ips",
            "created_at",
            "expires_at",
            "used_at",
            "used_serial",
            "revoked_at",
        ],
    ),
    (
        "certs",
        &[
            "serial",
            "spiffe_id",
            "dns",
            "ips",
            "not_before",
            "not_after",
            "issued_at",
            "kind",
            "renewed_from",
            "fingerprint",
            "pem",
            "revoked_at",
            "revoke_reason",
        ],
    ),
    (
        "audit",
        &["seq", "at", "event", "detail", "prev_hash", "hash"],
    ),
    (
        "entries",
        &[
            "id",
            "spiffe_id",
            "parent_id",
            "selectors",
            "ttl_seconds",
            "dns",
            "created_at",
        ],
    ),
    (
        "federations",
        &[
            "trust_domain",
            "endpoint",
            "endpoint_spiffe_id",
            "fingerprint",
            "created_at",
            "bundle",
            "refreshed_at",
        ],
    ),
];

/// One stored value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer column (times, TTLs, sequence numbers).
    Int(i64),
    /// A text column.
    Text(String),
}

/// Every row of every table (`TABLES` order), read from one consistent snapshot.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Table name and its rows (cells in `TABLES` column order).
    pub tables: Vec<(&'static str, Vec<Vec<Cell>>)>,
}

impl Snapshot {
    /// The rows of `table`.
    pub fn rows(&self, table: &str) -> &[Vec<Cell>] {
        self.tables
            .iter()
            .find(|(name, _)| *name == table)
            .map(|(_, rows)| rows.as_slice())
            .unwrap_or(&[])
    }

    /// How many rows `table` has.
    pub fn count(&self, table: &str) -> usize {
        self.rows(table).len()
    }
}

/// Reads every row of the SQLite store at `path` in one read transaction (a consistent
/// snapshot even while a CA writes to it). Opens the file read-only: nothing is migrated or
/// written; a schema version other than `version` (the one this program writes) is refused.
pub fn read_sqlite(path: &Path, version: u32) -> Result<Snapshot> {
    let db = |context: &'static str| move |source| StoreError::Db { context, source };
    let mut conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| {
        StoreError::Setup(format!(
            "cannot open the SQLite store {} to copy it: {e}",
            path.display()
        ))
    })?;
    let tx = conn
        .transaction()
        .map_err(db("starting the read transaction"))?;
    let stored: String = tx
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [migrations::VERSION_KEY],
            |r| r.get(0),
        )
        .map_err(|e| {
            StoreError::Setup(format!(
                "{} is not a CA store (no schema version: {e})",
                path.display()
            ))
        })?;
    let found = migrations::parse_version(Some(&stored))?;
    if found != version {
        return Err(StoreError::Setup(format!(
            "{} has schema version {found}, but this mtls-ca copies version {version}: run \
             `mtls-ca --store sqlite:{} migrate` with this version first",
            path.display(),
            path.display()
        )));
    }
    let mut snapshot = Snapshot::default();
    for (table, columns) in TABLES {
        let sql = format!("SELECT {} FROM {table}", columns.join(", "));
        let mut stmt = tx.prepare(&sql).map_err(db("reading a table to copy"))?;
        let rows = stmt
            .query_map([], |row| {
                (0..columns.len())
                    .map(|i| {
                        Ok(match row.get_ref(i)? {
                            ValueRef::Null => Cell::Null,
                            ValueRef::Integer(n) => Cell::Int(n),
                            ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into()),
                            other => {
                                return Err(rusqlite::Error::InvalidColumnType(
                                    i,
                                    columns[i].into(),
                                    other.data_type(),
                                ))
                            }
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Cell>>>()
            })
            .map_err(db("reading a table to copy"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db("reading a table to copy"))?;
        snapshot.tables.push((table, rows));
    }
    Ok(snapshot)
}

/// What `sqlite_to_postgres` copied.
#[derive(Debug)]
pub struct Copied {
    /// Rows per table.
    pub counts: Vec<(&'static str, usize)>,
    /// The audit chain's last entry on the target (the source's).
    pub head: Option<AuditHead>,
    /// The target database, without its password.
    pub target: String,
}

/// `mtls-ca migrate-store`: copies the SQLite store at `src` into the empty PostgreSQL database
/// at `url`. Refuses a source whose audit chain does not verify against its tables, a target
/// that is not empty, and schemas of different versions; verifies the target's chain at the
/// end (the same entries, the same head).
pub fn sqlite_to_postgres(src: &Path, url: &str) -> Result<Copied> {
    let source = SqliteStore::open(src)?;
    match source.verify_audit()? {
        AuditCheck::Intact { .. } => {}
        other => {
            return Err(StoreError::Setup(format!(
                "the source {} does not verify ({}): nothing copied; find out what changed \
                 with `mtls-ca --store sqlite:{} audit verify` before moving its records",
                src.display(),
                describe_check(&other),
                src.display()
            )))
        }
    }
    drop(source);
    let version = super::SQLITE_SCHEMA_VERSION;
    if super::postgres_ops::MIGRATIONS.len() as u32 != version {
        return Err(StoreError::Setup(format!(
            "this mtls-ca's SQLite schema is version {version} but its PostgreSQL schema is \
             version {}: it cannot copy between them",
            super::postgres_ops::MIGRATIONS.len()
        )));
    }
    let snapshot = read_sqlite(src, version)?;
    let expected_head = snapshot
        .rows("audit")
        .last()
        .and_then(|row| match row.as_slice() {
            [Cell::Int(seq), _, _, _, _, Cell::Text(hash)] => Some(AuditHead {
                seq: *seq,
                hash: hash.clone(),
            }),
            _ => None,
        });
    let target = PostgresStore::connect(url)?;
    target.load_snapshot(&snapshot)?;
    match target.verify_audit()? {
        AuditCheck::Intact { head, .. } if head == expected_head => Ok(Copied {
            counts: TABLES
                .iter()
                .map(|(table, _)| (*table, snapshot.count(table)))
                .collect(),
            head,
            target: target.name().to_string(),
        }),
        other => Err(StoreError::Setup(format!(
            "the copy in {} does not verify ({}; expected head {expected_head:?}): drop that \
             database and copy again",
            target.name(),
            describe_check(&other)
        ))),
    }
}

fn describe_check(check: &AuditCheck) -> String {
    match check {
        AuditCheck::Intact { entries, head } => format!("intact, {entries} entries, head {head:?}"),
        AuditCheck::Broken { seq, reason } => format!("chain broken at entry {seq}: {reason}"),
        AuditCheck::Mismatch { problems, .. } => {
            format!("tables disagree with the chain: {}", problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    /// A column added by a migration but not listed here would be dropped by `migrate-store`
    /// without a word (`tokens.revoked_at` once was): the list must be the schema, exactly.
    #[test]
    fn every_column_of_the_current_schema_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        drop(SqliteStore::create(&path, &[("trust_domain", "mesh.local")]).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'schema_version'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        tables.sort();
        let mut listed: Vec<String> = TABLES.iter().map(|(t, _)| t.to_string()).collect();
        listed.sort();
        assert_eq!(tables, listed, "tables of the schema vs TABLES");
        for (table, columns) in TABLES {
            let mut actual: Vec<String> = conn
                .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            actual.sort();
            let mut expected: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            expected.sort();
            assert_eq!(actual, expected, "columns of {table}");
        }
    }
}
