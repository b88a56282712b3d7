//! Renewal lineage in SQLite: each certificate records the one it was renewed from
//! (`renewed_from`), so a sign-issued certificate and its renewals form a chain. Revocation
//! follows the chain down (a renewal cannot outlive its revoked parent), and renewal treats it
//! like refresh-token rotation: a certificate is renewed once; the same request again gets the
//! same answer, a different one means two parties hold the key and the lineage is revoked.
//!
//! Every function runs inside the caller's IMMEDIATE transaction, so revocations and renewals
//! (from this process or the CLI) are serialised and each sees the other's committed result.

use rusqlite::{params, OptionalExtension};

use super::details::{self, RevokeCause, VERSION};
use super::rows::CertRow;
use super::sqlite_ops::{db, query_all, query_row_cached, read_cert, WriteTx, CERT_COLUMNS};
use super::{CertRecord, Presented, RenewOutcome, RenewalRequest, Result, Revoke};

/// Deeper chains than this only exist in a tampered database (a renewal loop); stop there.
const MAX_DEPTH: i64 = 1_000_000;

fn cert(tx: &WriteTx<'_>, serial: &str) -> Result<Option<CertRecord>> {
    query_row_cached(
        &tx.tx,
        &format!("SELECT {CERT_COLUMNS} FROM certs WHERE serial = ?1"),
        [serial],
        read_cert,
    )
    .optional()
    .map_err(db("looking up the certificate"))?
    .map(CertRow::into_record)
    .transpose()
}

/// Certificates renewed directly from `serial`.
fn children(tx: &WriteTx<'_>, serial: &str) -> Result<Vec<CertRecord>> {
    query_all(
        &tx.tx,
        &format!(
            "SELECT {CERT_COLUMNS} FROM certs WHERE renewed_from = ?1 ORDER BY issued_at, serial"
        ),
        [serial],
        read_cert,
        "reading renewals",
    )?
    .into_iter()
    .map(CertRow::into_record)
    .collect()
}

/// Serials renewed from `serial`, transitively, with whether each is live (unrevoked and
/// unexpired at `now`), nearest first.
fn descendants(tx: &WriteTx<'_>, serial: &str, now: i64) -> Result<Vec<(String, bool)>> {
    query_all(
        &tx.tx,
        "WITH RECURSIVE d(serial, depth) AS (
             SELECT serial, 1 FROM certs WHERE renewed_from = ?1
             UNION
             SELECT c.serial, d.depth + 1 FROM certs c JOIN d ON c.renewed_from = d.serial
             WHERE d.depth < ?3
         )
         SELECT c.serial, c.revoked_at IS NULL AND c.not_after > ?2, MIN(d.depth) AS depth
         FROM certs c JOIN d ON c.serial = d.serial
         GROUP BY c.serial
         ORDER BY depth, c.issued_at, c.serial",
        params![serial, now, MAX_DEPTH],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)),
        "reading the renewal lineage",
    )
}

/// The sign-issued certificate `serial` descends from (itself when it was not renewed).
fn lineage_root(tx: &WriteTx<'_>, serial: &str) -> Result<String> {
    query_row_cached(
        &tx.tx,
        "WITH RECURSIVE a(serial, parent, depth) AS (
                 SELECT serial, renewed_from, 0 FROM certs WHERE serial = ?1
                 UNION
                 SELECT c.serial, c.renewed_from, a.depth + 1 FROM certs c
                 JOIN a ON c.serial = a.parent WHERE a.depth < ?2
             )
             SELECT serial FROM a ORDER BY depth DESC LIMIT 1",
        params![serial, MAX_DEPTH],
        |r| r.get(0),
    )
    .map_err(db("reading the renewal lineage"))
}

/// Marks `serial` revoked at `now` and appends its entry; the caller bumps the epoch.
fn revoke_one(
    tx: &WriteTx<'_>,
    serial: &str,
    reason: Option<&str>,
    actor: &str,
    now: i64,
    cause: RevokeCause<'_>,
) -> Result<()> {
    tx.tx
        .execute(
            "UPDATE certs SET revoked_at = ?1, revoke_reason = ?2 WHERE serial = ?3",
            params![now, reason, serial],
        )
        .map_err(db("revoking"))?;
    tx.append_audit(
        "revoke",
        &details::revoke(serial, now, reason, actor, cause),
    )
}

/// Lets every process sharing the store see that the CRL must be re-signed.
fn bump_revocation_epoch(tx: &WriteTx<'_>) -> Result<()> {
    tx.tx
        .execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revocation_epoch'",
            [],
        )
        .map_err(db("bumping the revocation epoch"))?;
    Ok(())
}

/// Revokes `serial` (unless it already is) and every live certificate renewed from it.
pub fn revoke(
    tx: &WriteTx<'_>,
    serial: &str,
    reason: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<Revoke> {
    let Some(target) = cert(tx, serial)? else {
        return Ok(Revoke::UnknownSerial);
    };
    let mut revoked = Vec::new();
    if target.revoked_at.is_none() {
        revoke_one(tx, serial, reason, actor, now, RevokeCause::Requested)?;
        revoked.push(serial.to_string());
    }
    // Also when the parent was revoked before renewals followed revocation: this is how an
    // operator closes such a gap.
    for (child, live) in descendants(tx, serial, now)? {
        if live {
            revoke_one(
                tx,
                &child,
                reason,
                actor,
                now,
                RevokeCause::Ancestor(serial),
            )?;
            revoked.push(child);
        }
    }
    if revoked.is_empty() {
        return Ok(Revoke::AlreadyRevoked);
    }
    bump_revocation_epoch(tx)?;
    Ok(Revoke::Done { revoked })
}

/// Revokes every live certificate of `spiffe_id`.
pub fn revoke_identity(
    tx: &WriteTx<'_>,
    spiffe_id: &str,
    reason: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<Vec<String>> {
    let live: Vec<String> = query_all(
        &tx.tx,
        "SELECT serial FROM certs WHERE spiffe_id = ?1 AND revoked_at IS NULL AND not_after > ?2
         ORDER BY issued_at, serial",
        params![spiffe_id, now],
        |r| r.get(0),
        "reading the identity's certificates",
    )?;
    for serial in &live {
        revoke_one(tx, serial, reason, actor, now, RevokeCause::Identity)?;
    }
    if !live.is_empty() {
        bump_revocation_epoch(tx)?;
    }
    Ok(live)
}

/// Records a renewal after checking, in this transaction, that the presented certificate is
/// known, unrevoked and unexpired, and that it was not renewed before.
pub fn renew(tx: &WriteTx<'_>, r: &RenewalRequest<'_>) -> Result<RenewOutcome> {
    let now = r.now.unix_timestamp();
    let Some(presented) = cert(tx, r.presented_serial)? else {
        return Ok(RenewOutcome::Refused(Presented::Unknown));
    };
    if let Err(state) = presented.standing(r.presented_fingerprint, r.now) {
        return Ok(RenewOutcome::Refused(state));
    }
    let earlier = children(tx, r.presented_serial)?;
    if earlier.is_empty() {
        tx.insert_cert(r.cert)?;
        tx.append_audit("renew", &details::cert(r.cert))?;
        return Ok(RenewOutcome::Recorded);
    }
    for child in &earlier {
        if child.spki_sha256()? == r.new_key_sha256 {
            // A retry of the same renewal (the response was lost): the same answer.
            return Ok(match child.revoked_at {
                None => RenewOutcome::Existing(Box::new(child.clone())),
                Some(_) => RenewOutcome::ExistingRevoked {
                    serial: child.serial.clone(),
                },
            });
        }
    }
    // Renewed before with another key: two parties hold the presented key. Revoke the
    // lineage, the legitimate newest certificate included; its holder must enroll again.
    let root = lineage_root(tx, r.presented_serial)?;
    let mut members = vec![(
        root.clone(),
        cert(tx, &root)?
            .is_some_and(|c| c.revoked_at.is_none() && c.not_after.unix_timestamp() > now),
    )];
    members.extend(descendants(tx, &root, now)?);
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
    )?;
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
        )?;
    }
    if !revoked.is_empty() {
        bump_revocation_epoch(tx)?;
    }
    Ok(RenewOutcome::Replayed {
        renewed_as,
        revoked,
    })
}
