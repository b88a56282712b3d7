//! The PostgreSQL store's join-token listing and revocation (`token_revoke.rs` has the rule).

use time::OffsetDateTime;
use tokio_postgres::GenericClient;

use super::details;
use super::postgres_ops::{query_all, read_token, PgTx, TOKEN_COLUMNS};
use super::rows::{ts, TokenRow};
use super::token_revoke::{choose, BY_PREFIX};
use super::{Result, RevokeToken, TokenRecord};

/// Schema version 2: when a token was revoked before use.
pub const MIGRATION_TOKEN_REVOKED_AT: &str = "ALTER TABLE tokens ADD COLUMN revoked_at BIGINT;";

/// The prefix condition with PostgreSQL's parameter syntax.
fn by_prefix() -> String {
    BY_PREFIX.replace("?1", "$1::text")
}

/// Every token, oldest first.
pub async fn list(client: &impl GenericClient) -> Result<Vec<TokenRecord>> {
    query_all(
        client,
        &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, hash"),
        &[],
        read_token,
        "listing the tokens",
    )
    .await?
    .into_iter()
    .map(TokenRow::into_record)
    .collect()
}

/// Revokes the one unused token whose hash starts with `id`, in `tx`.
pub async fn revoke(
    tx: &PgTx<'_>,
    id: &str,
    actor: &str,
    now: OffsetDateTime,
) -> Result<RevokeToken> {
    let rows = query_all(
        &tx.tx,
        &format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE {} FOR UPDATE",
            by_prefix()
        ),
        &[&id],
        read_token,
        "looking up the token",
    )
    .await?;
    let mut row = match choose(rows)? {
        Ok(row) => row,
        Err(outcome) => return Ok(outcome),
    };
    let at = ts(now);
    tx.execute(
        "UPDATE tokens SET revoked_at = $1 WHERE hash = $2",
        &[&at, &row.hash],
        "revoking the token",
    )
    .await?;
    tx.append_audit("token_revoke", &details::token_revoke(&row.hash, at, actor))
        .await?;
    row.revoked_at = Some(at);
    Ok(RevokeToken::Done(Box::new(row.into_record()?)))
}
