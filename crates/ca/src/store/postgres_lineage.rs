//! Renewal lineage and registration entries on PostgreSQL: the rules of `sqlite_lineage.rs`
//! and `sqlite_entries.rs` (read those for the why), in the PostgreSQL store's write
//! transaction, which holds the write lock, so replicas serialise exactly as SQLite writers do.

use super::details::{self, RevokeCause, VERSION};
use super::entries::{AgentIssue, AgentIssued, AgentOutcome, CreateEntry, EntryRecord, EntryRow};
use super::postgres_ops::{
    cert, col, json, query_all, query_one, read_cert, read_entry, ts, PgTx, CERT_COLUMNS,
    ENTRY_COLUMNS,
};
use super::rows::CertRow;
use super::{CertRecord, Presented, RenewOutcome, RenewalRequest, Result, Revoke};
use deadpool_postgres::GenericClient;

/// Deeper chains than this only exist in a tampered database (a renewal loop); stop there.
const MAX_DEPTH: i64 = 1_000_000;

async fn children(tx: &PgTx<'_>, serial: &str) -> Result<Vec<CertRecord>> {
    query_all(
        tx.tx,
        &format!(
            "SELECT {CERT_COLUMNS} FROM certs WHERE renewed_from = $1 ORDER BY issued_at, serial"
        ),
        &[&serial],
        read_cert,
        "reading renewals",
    )
    .await?
    .into_iter()
    .map(CertRow::into_record)
    .collect()
}

/// Serials renewed from `serial`, transitively, with whether each is live at `now`, nearest
/// first.
async fn descendants(tx: &PgTx<'_>, serial: &str, now: i64) -> Result<Vec<(String, bool)>> {
    query_all(
        tx.tx,
        "WITH RECURSIVE d(serial, depth) AS (
             SELECT serial, 1::BIGINT FROM certs WHERE renewed_from = $1
             UNION
             SELECT c.serial, d.depth + 1 FROM certs c JOIN d ON c.renewed_from = d.serial
             WHERE d.depth < $3
         )
         SELECT c.serial, c.revoked_at IS NULL AND c.not_after > $2, MIN(d.depth) AS depth,
                MIN(c.issued_at) AS issued_at
         FROM certs c JOIN d ON c.serial = d.serial
         GROUP BY c.serial, c.revoked_at, c.not_after
         ORDER BY depth, issued_at, c.serial",
        &[&serial, &now, &MAX_DEPTH],
        |r| Ok((col(r, 0)?, col(r, 1)?)),
        "reading the renewal lineage",
    )
    .await
}

/// The sign-issued certificate `serial` descends from (itself when it was not renewed).
async fn lineage_root(tx: &PgTx<'_>, serial: &str) -> Result<String> {
    let root = query_one(
        tx.tx,
        "WITH RECURSIVE a(serial, parent, depth) AS (
             SELECT serial, renewed_from, 0::BIGINT FROM certs WHERE serial = $1
             UNION
             SELECT c.serial, c.renewed_from, a.depth + 1 FROM certs c
             JOIN a ON c.serial = a.parent WHERE a.depth < $2
         )
         SELECT serial FROM a ORDER BY depth DESC LIMIT 1",
        &[&serial, &MAX_DEPTH],
        |r| col(r, 0),
        "reading the renewal lineage",
    )
    .await?;
    Ok(root.unwrap_or_else(|| serial.to_string()))
}

async fn revoke_one(
    tx: &PgTx<'_>,
    serial: &str,
    reason: Option<&str>,
    actor: &str,
    now: i64,
    cause: RevokeCause<'_>,
) -> Result<()> {
    tx.execute(
        "UPDATE certs SET revoked_at = $1, revoke_reason = $2 WHERE serial = $3",
        &[&now, &reason, &serial],
        "revoking",
    )
    .await?;
    tx.append_audit(
        "revoke",
        &details::revoke(serial, now, reason, actor, cause),
    )
    .await
}

async fn bump_revocation_epoch(tx: &PgTx<'_>) -> Result<()> {
    tx.bump("revocation_epoch", "bumping the revocation epoch")
        .await
}

pub async fn revoke(
    tx: &PgTx<'_>,
    serial: &str,
    reason: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<Revoke> {
    let Some(target) = cert(tx.tx, serial).await? else {
        return Ok(Revoke::UnknownSerial);
    };
    let mut revoked = Vec::new();
    if target.revoked_at.is_none() {
        revoke_one(tx, serial, reason, actor, now, RevokeCause::Requested).await?;
        revoked.push(serial.to_string());
    }
    for (child, live) in descendants(tx, serial, now).await? {
        if live {
            revoke_one(
                tx,
                &child,
                reason,
                actor,
                now,
                RevokeCause::Ancestor(serial),
            )
            .await?;
            revoked.push(child);
        }
    }
    if revoked.is_empty() {
        return Ok(Revoke::AlreadyRevoked);
    }
    bump_revocation_epoch(tx).await?;
    Ok(Revoke::Done { revoked })
}

pub async fn revoke_identity(
    tx: &PgTx<'_>,
    spiffe_id: &str,
    reason: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<Vec<String>> {
    let live: Vec<String> = query_all(
        tx.tx,
        "SELECT serial FROM certs WHERE spiffe_id = $1 AND revoked_at IS NULL AND not_after > $2
         ORDER BY issued_at, serial",
        &[&spiffe_id, &now],
        |r| col(r, 0),
        "reading the identity's certificates",
    )
    .await?;
    for serial in &live {
        revoke_one(tx, serial, reason, actor, now, RevokeCause::Identity).await?;
    }
    if !live.is_empty() {
        bump_revocation_epoch(tx).await?;
    }
    Ok(live)
}

pub async fn renew(tx: &PgTx<'_>, r: &RenewalRequest<'_>) -> Result<RenewOutcome> {
    let now = r.now.unix_timestamp();
    // Both reads in one round trip (pipelined on the connection); the second is wasted only
    // when the presented certificate is refused.
    let (presented, earlier) = futures::try_join!(
        cert(tx.tx, r.presented_serial),
        children(tx, r.presented_serial)
    )?;
    let Some(presented) = presented else {
        return Ok(RenewOutcome::Refused(Presented::Unknown));
    };
    if let Err(state) = presented.standing(r.presented_fingerprint, r.now) {
        return Ok(RenewOutcome::Refused(state));
    }
    if earlier.is_empty() {
        let detail = details::cert(r.cert);
        futures::try_join!(tx.insert_cert(r.cert), tx.append_audit("renew", &detail))?;
        return Ok(RenewOutcome::Recorded);
    }
    for child in &earlier {
        if child.spki_sha256()? == r.new_key_sha256 {
            return Ok(match child.revoked_at {
                None => RenewOutcome::Existing(Box::new(child.clone())),
                Some(_) => RenewOutcome::ExistingRevoked {
                    serial: child.serial.clone(),
                },
            });
        }
    }
    let root = lineage_root(tx, r.presented_serial).await?;
    let root_live = cert(tx.tx, &root)
        .await?
        .is_some_and(|c| c.revoked_at.is_none() && c.not_after.unix_timestamp() > now);
    let mut members = vec![(root.clone(), root_live)];
    members.extend(descendants(tx, &root, now).await?);
    let revoked: Vec<String> = members
        .into_iter()
        .filter_map(|(serial, live)| live.then_some(serial))
        .collect();
    let renewed_as: Vec<String> = earlier.iter().map(|c| c.serial.clone()).collect();
    tx.append_audit(
        "suspected_key_theft",
        &serde_json::json!({
            "v": VERSION,
            "presented_serial": r.presented_serial,
            "renewed_as": renewed_as,
            "spiffe_id": presented.spiffe_id,
            "revoked": revoked,
        }),
    )
    .await?;
    for serial in &revoked {
        revoke_one(
            tx,
            serial,
            Some("keyCompromise"),
            "ca",
            now,
            RevokeCause::KeyTheft {
                presented: r.presented_serial,
            },
        )
        .await?;
    }
    if !revoked.is_empty() {
        bump_revocation_epoch(tx).await?;
    }
    Ok(RenewOutcome::Replayed {
        renewed_as,
        revoked,
    })
}

pub async fn create_entry(tx: &PgTx<'_>, e: &EntryRecord) -> Result<CreateEntry> {
    let selectors = json(&e.selectors);
    let existing: Option<String> = query_one(
        tx.tx,
        "SELECT id FROM entries WHERE parent_id = $1 AND spiffe_id = $2 AND selectors = $3",
        &[&e.parent_id, &e.spiffe_id, &selectors],
        |r| col(r, 0),
        "looking for a duplicate entry",
    )
    .await?;
    if let Some(id) = existing {
        return Ok(CreateEntry::Duplicate { id });
    }
    tx.execute(
        &format!("INSERT INTO entries ({ENTRY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        &[
            &e.id,
            &e.spiffe_id,
            &e.parent_id,
            &selectors,
            &e.ttl_seconds,
            &json(&e.dns),
            &ts(e.created_at),
        ],
        "storing the entry",
    )
    .await?;
    tx.bump("entry_revision", "moving the entry revision")
        .await?;
    tx.append_audit("entry_create", &details::entry_create(e))
        .await?;
    Ok(CreateEntry::Created)
}

pub async fn delete_entry(tx: &PgTx<'_>, id: &str, actor: &str, now: i64) -> Result<bool> {
    let changed = tx
        .execute(
            "DELETE FROM entries WHERE id = $1",
            &[&id],
            "deleting the entry",
        )
        .await?;
    if changed == 0 {
        return Ok(false);
    }
    tx.bump("entry_revision", "moving the entry revision")
        .await?;
    tx.append_audit("entry_delete", &details::entry_delete(id, now, actor))
        .await?;
    Ok(true)
}

pub async fn find_entry(client: &impl GenericClient, id: &str) -> Result<Option<EntryRecord>> {
    query_one(
        client,
        &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE id = $1"),
        &[&id],
        read_entry,
        "looking up the entry",
    )
    .await?
    .map(EntryRow::into_record)
    .transpose()
}

pub async fn entry_rows(
    client: &impl GenericClient,
    parent: Option<&str>,
) -> Result<Vec<EntryRow>> {
    match parent {
        Some(p) => {
            query_all(
                client,
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM entries WHERE parent_id = $1 \
                     ORDER BY created_at, id"
                ),
                &[&p],
                read_entry,
                "reading entries",
            )
            .await
        }
        None => {
            query_all(
                client,
                &format!("SELECT {ENTRY_COLUMNS} FROM entries ORDER BY created_at, id"),
                &[],
                read_entry,
                "reading entries",
            )
            .await
        }
    }
}

pub async fn record_agent_issue(tx: &PgTx<'_>, r: &AgentIssue<'_>) -> Result<AgentOutcome> {
    // Both reads in one round trip (pipelined on the connection).
    let (entry, agent) =
        futures::try_join!(find_entry(tx.tx, r.entry_id), cert(tx.tx, r.agent_serial))?;
    let Some(entry) = entry else {
        return Ok(AgentOutcome::UnknownEntry);
    };
    if entry.parent_id != r.agent_id {
        return Ok(AgentOutcome::NotParent {
            parent: entry.parent_id,
        });
    }
    let Some(agent) = agent else {
        return Ok(AgentOutcome::Refused(Presented::Unknown));
    };
    if let Err(state) = agent.standing(r.agent_fingerprint, r.now) {
        return Ok(AgentOutcome::Refused(state));
    }
    let (event, detail) = details::agent_issue(r, &entry.spiffe_id);
    // The certificate and its audit entry in one round trip: an error in either fails the
    // call, whose savepoint then undoes both.
    let stored = async {
        if let AgentIssued::Svid(cert) = r.issued {
            tx.insert_cert(cert).await?;
        }
        Ok(())
    };
    futures::try_join!(stored, tx.append_audit(event, &detail))?;
    Ok(AgentOutcome::Recorded)
}
