//! The SQL of registration entries and agent issuances (see `entries.rs`), each inside the
//! SQLite store's write transaction with its audit entry.

use rusqlite::{params, Connection, OptionalExtension};

use super::details;
use super::entries::{AgentIssue, AgentIssued, AgentOutcome, CreateEntry, EntryRecord, EntryRow};
use super::rows::CertRow;
use super::sqlite_ops::{db, json, query_all, read_cert, ts, WriteTx, CERT_COLUMNS};
use super::{Presented, Result, StoreError};

pub const ENTRY_COLUMNS: &str = "id, spiffe_id, parent_id, selectors, ttl_seconds, dns, created_at";

pub fn read_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<EntryRow> {
    Ok(EntryRow {
        id: r.get(0)?,
        spiffe_id: r.get(1)?,
        parent_id: r.get(2)?,
        selectors: r.get(3)?,
        ttl_seconds: r.get(4)?,
        dns: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn bump_revision(tx: &WriteTx<'_>) -> Result<()> {
    tx.tx
        .execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'entry_revision'",
            [],
        )
        .map_err(db("moving the entry revision"))?;
    Ok(())
}

pub fn create(tx: &WriteTx<'_>, e: &EntryRecord) -> Result<CreateEntry> {
    let selectors = json(&e.selectors);
    let existing: Option<String> = tx
        .tx
        .query_row(
            "SELECT id FROM entries WHERE parent_id = ?1 AND spiffe_id = ?2 AND selectors = ?3",
            params![e.parent_id, e.spiffe_id, selectors],
            |r| r.get(0),
        )
        .optional()
        .map_err(db("looking for a duplicate entry"))?;
    if let Some(id) = existing {
        return Ok(CreateEntry::Duplicate { id });
    }
    tx.tx
        .execute(
            &format!("INSERT INTO entries ({ENTRY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                e.id,
                e.spiffe_id,
                e.parent_id,
                selectors,
                e.ttl_seconds,
                json(&e.dns),
                ts(e.created_at)
            ],
        )
        .map_err(db("storing the entry"))?;
    bump_revision(tx)?;
    tx.append_audit("entry_create", &details::entry_create(e))?;
    Ok(CreateEntry::Created)
}

pub fn delete(tx: &WriteTx<'_>, id: &str, actor: &str, now: i64) -> Result<bool> {
    let changed = tx
        .tx
        .execute("DELETE FROM entries WHERE id = ?1", [id])
        .map_err(db("deleting the entry"))?;
    if changed == 0 {
        return Ok(false);
    }
    bump_revision(tx)?;
    tx.append_audit("entry_delete", &details::entry_delete(id, now, actor))?;
    Ok(true)
}

pub fn find(conn: &Connection, id: &str) -> Result<Option<EntryRecord>> {
    conn.query_row(
        &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE id = ?1"),
        [id],
        read_entry,
    )
    .optional()
    .map_err(db("looking up the entry"))?
    .map(EntryRow::into_record)
    .transpose()
}

pub fn list(conn: &Connection, parent: Option<&str>) -> Result<Vec<EntryRecord>> {
    let rows = match parent {
        Some(p) => query_all(
            conn,
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE parent_id = ?1 ORDER BY created_at, id"
            ),
            [p],
            read_entry,
            "reading entries",
        )?,
        None => all_rows(conn)?,
    };
    rows.into_iter().map(EntryRow::into_record).collect()
}

pub fn all_rows(conn: &Connection) -> Result<Vec<EntryRow>> {
    query_all(
        conn,
        &format!("SELECT {ENTRY_COLUMNS} FROM entries ORDER BY created_at, id"),
        [],
        read_entry,
        "reading entries",
    )
}

pub fn revision(conn: &Connection) -> Result<u64> {
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'entry_revision'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db("reading the entry revision"))?;
    let v = v.unwrap_or_else(|| "0".into());
    v.parse()
        .map_err(|_| StoreError::Corrupt(format!("entry_revision {v:?}")))
}

pub fn record_issue(tx: &WriteTx<'_>, r: &AgentIssue<'_>) -> Result<AgentOutcome> {
    let Some(entry) = find(&tx.tx, r.entry_id)? else {
        return Ok(AgentOutcome::UnknownEntry);
    };
    if entry.parent_id != r.agent_id {
        return Ok(AgentOutcome::NotParent {
            parent: entry.parent_id,
        });
    }
    let agent = tx
        .tx
        .query_row(
            &format!("SELECT {CERT_COLUMNS} FROM certs WHERE serial = ?1"),
            [r.agent_serial],
            read_cert,
        )
        .optional()
        .map_err(db("reading the agent's certificate"))?
        .map(CertRow::into_record)
        .transpose()?;
    let Some(agent) = agent else {
        return Ok(AgentOutcome::Refused(Presented::Unknown));
    };
    if let Err(state) = agent.standing(r.agent_fingerprint, r.now) {
        return Ok(AgentOutcome::Refused(state));
    }
    if let AgentIssued::Svid(cert) = r.issued {
        tx.insert_cert(cert)?;
    }
    let (event, detail) = details::agent_issue(r, &entry.spiffe_id);
    tx.append_audit(event, &detail)?;
    Ok(AgentOutcome::Recorded)
}
