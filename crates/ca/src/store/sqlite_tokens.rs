//! The SQLite store's join-token listing and revocation (`token_revoke.rs` has the rule).

use rusqlite::{params, Connection};

use super::details;
use super::rows::{ts, TokenRow};
use super::sqlite_ops::{db, query_all, read_token, WriteTx, TOKEN_COLUMNS};
use super::token_revoke::{choose, BY_PREFIX};
use super::{Result, RevokeToken, TokenRecord};
use time::OffsetDateTime;

/// Schema version 2: when a token was revoked before use.
pub const MIGRATION_TOKEN_REVOKED_AT: &str = "ALTER TABLE tokens ADD COLUMN revoked_at INTEGER;";

/// Every token, oldest first.
pub fn list(conn: &Connection) -> Result<Vec<TokenRecord>> {
    query_all(
        conn,
        &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, hash"),
        [],
        read_token,
        "listing the tokens",
    )?
    .into_iter()
    .map(TokenRow::into_record)
    .collect()
}

/// Revokes the one unused token whose hash starts with `id`, in `tx`.
pub fn revoke(tx: &WriteTx<'_>, id: &str, actor: &str, now: OffsetDateTime) -> Result<RevokeToken> {
    let rows = query_all(
        &tx.tx,
        &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE {BY_PREFIX}"),
        [id],
        read_token,
        "looking up the token",
    )?;
    let mut row = match choose(rows)? {
        Ok(row) => row,
        Err(outcome) => return Ok(outcome),
    };
    let at = ts(now);
    tx.tx
        .execute(
            "UPDATE tokens SET revoked_at = ?1 WHERE hash = ?2",
            params![at, row.hash],
        )
        .map_err(db("revoking the token"))?;
    tx.append_audit("token_revoke", &details::token_revoke(&row.hash, at, actor))?;
    row.revoked_at = Some(at);
    Ok(RevokeToken::Done(Box::new(row.into_record()?)))
}
