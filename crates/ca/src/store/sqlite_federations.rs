//! The SQL of federated trust domains (see `federations.rs`), each write inside the SQLite
//! store's write transaction with its audit entry.

use rusqlite::{params, Connection, OptionalExtension};

use super::federations::{self, FederationRecord, StoredBundle};
use super::sqlite_ops::{db, query_all, WriteTx};
use super::Result;

/// Version 3 of the SQLite schema (`IF NOT EXISTS` like the first version's statements: a
/// database rolled back to an older version by hand keeps its newer tables).
pub const MIGRATION_FEDERATIONS: &str = "
CREATE TABLE IF NOT EXISTS federations (
    trust_domain TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    endpoint_spiffe_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    bundle TEXT,
    refreshed_at INTEGER
);";

const COLUMNS: &str =
    "trust_domain, endpoint, endpoint_spiffe_id, fingerprint, created_at, bundle, refreshed_at";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<FederationRecord> {
    Ok(FederationRecord {
        trust_domain: r.get(0)?,
        endpoint: r.get(1)?,
        endpoint_spiffe_id: r.get(2)?,
        fingerprint: r.get(3)?,
        created_at: r.get(4)?,
        bundle: r.get(5)?,
        refreshed_at: r.get(6)?,
    })
}

pub fn add(tx: &WriteTx<'_>, f: &FederationRecord, actor: &str) -> Result<bool> {
    let inserted = tx
        .tx
        .execute(
            &format!(
                "INSERT INTO federations ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL)
                 ON CONFLICT (trust_domain) DO NOTHING"
            ),
            params![
                f.trust_domain,
                f.endpoint,
                f.endpoint_spiffe_id,
                f.fingerprint,
                f.created_at
            ],
        )
        .map_err(db("storing the federation"))?;
    if inserted == 0 {
        return Ok(false);
    }
    tx.append_audit("federation_add", &federations::add_detail(f, actor))?;
    Ok(true)
}

pub fn remove(tx: &WriteTx<'_>, trust_domain: &str, actor: &str, now: i64) -> Result<bool> {
    let changed = tx
        .tx
        .execute(
            "DELETE FROM federations WHERE trust_domain = ?1",
            [trust_domain],
        )
        .map_err(db("removing the federation"))?;
    if changed == 0 {
        return Ok(false);
    }
    tx.append_audit(
        "federation_remove",
        &federations::remove_detail(trust_domain, now, actor),
    )?;
    Ok(true)
}

pub fn list(conn: &Connection) -> Result<Vec<FederationRecord>> {
    query_all(
        conn,
        &format!("SELECT {COLUMNS} FROM federations ORDER BY trust_domain"),
        [],
        read,
        "reading federations",
    )
}

pub fn store_bundle(
    tx: &WriteTx<'_>,
    trust_domain: &str,
    bundle: &str,
    roots: &[String],
    sequence: Option<u64>,
    now: i64,
) -> Result<StoredBundle> {
    let stored: Option<Option<String>> = tx
        .tx
        .query_row(
            "SELECT bundle FROM federations WHERE trust_domain = ?1",
            [trust_domain],
            |r| r.get(0),
        )
        .optional()
        .map_err(db("reading the federated bundle"))?;
    let Some(stored) = stored else {
        return Ok(StoredBundle::Gone);
    };
    tx.tx
        .execute(
            "UPDATE federations SET bundle = ?2, refreshed_at = ?3 WHERE trust_domain = ?1",
            params![trust_domain, bundle, now],
        )
        .map_err(db("storing the federated bundle"))?;
    if stored.as_deref() == Some(bundle) {
        return Ok(StoredBundle::Unchanged);
    }
    tx.append_audit(
        "federation_bundle",
        &federations::bundle_detail(trust_domain, bundle, roots, sequence, now),
    )?;
    Ok(StoredBundle::Changed)
}
