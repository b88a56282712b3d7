//! The PostgreSQL store's join-token redemption, listing and revocation (`token_revoke.rs` has
//! the revocation rule).

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;

use tokio_postgres::types::ToSql;

use super::details;
use super::postgres_ops::{json, query_all, read_token, PendingAudit, PgTx, TOKEN_COLUMNS};
use super::rows::{ts, TokenRow};
use super::token_revoke::{choose, BY_PREFIX};
use super::{CertRecord, Result, RevokeToken, TokenRecord};

/// Schema version 2: when a token was revoked before use.
pub const MIGRATION_TOKEN_REVOKED_AT: &str = "ALTER TABLE tokens ADD COLUMN revoked_at BIGINT;";

/// The prefix condition with PostgreSQL's parameter syntax.
fn by_prefix() -> String {
    BY_PREFIX.replace("?1", "$1::text")
}

/// A redemption in one statement (one round trip, where it took three plus a SELECT of the
/// audit tail): the token is marked used only if it is still redeemable, and the certificate and
/// its audit entry are inserted only for the row that UPDATE returned. A serial already stored
/// fails the statement (primary key), which the call's savepoint then undoes whole. Returns how
/// many audit entries it stored: 1, or 0 when the token was used, revoked or expired meanwhile.
/// The redemptions of a round are sent pipelined (`postgres_pipeline.rs`).
pub const REDEEM: &str = "
WITH redeemed AS (
    UPDATE tokens SET used_at = $1::BIGINT, used_serial = $2::TEXT
    WHERE hash = $3::TEXT AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1::BIGINT
    RETURNING hash
), cert AS (
    INSERT INTO certs (serial, spiffe_id, dns, ips, not_before, not_after, issued_at,
                       kind, renewed_from, fingerprint, pem)
    SELECT $2::TEXT, $4::TEXT, $5::TEXT, $6::TEXT, $7::BIGINT, $8::BIGINT, $9::BIGINT,
           $10::TEXT, $11::TEXT, $12::TEXT, $13::TEXT
    FROM redeemed
    RETURNING serial
), entry AS (
    INSERT INTO audit (seq, at, event, detail, prev_hash, hash)
    SELECT $14::BIGINT, $15::TEXT, $16::TEXT, $17::TEXT, $18::TEXT, $19::TEXT FROM cert
    RETURNING seq
)
SELECT count(*) FROM entry";

/// The parameters of one [`REDEEM`]: the token with `hash` used at `used_at` for `cert`, whose
/// `issue` entry is `entry`, dated `at`.
pub struct RedeemArgs<'a> {
    hash: &'a str,
    used_at: i64,
    cert: &'a CertRecord,
    dns: String,
    ips: String,
    times: [i64; 3],
    kind: &'static str,
    at: &'a str,
    entry: &'a PendingAudit,
}

impl<'a> RedeemArgs<'a> {
    pub fn new(
        hash: &'a str,
        used_at: i64,
        cert: &'a CertRecord,
        at: &'a str,
        entry: &'a PendingAudit,
    ) -> RedeemArgs<'a> {
        RedeemArgs {
            hash,
            used_at,
            cert,
            dns: json(&cert.dns),
            ips: json(&cert.ips),
            times: [ts(cert.not_before), ts(cert.not_after), ts(cert.issued_at)],
            kind: cert.kind.as_str(),
            at,
            entry,
        }
    }

    /// `$1` to `$19` of [`REDEEM`].
    pub fn params(&self) -> [&(dyn ToSql + Sync); 19] {
        let c = self.cert;
        [
            &self.used_at,
            &c.serial,
            &self.hash,
            &c.spiffe_id,
            &self.dns,
            &self.ips,
            &self.times[0],
            &self.times[1],
            &self.times[2],
            &self.kind,
            &c.renewed_from,
            &c.fingerprint,
            &c.pem,
            &self.entry.seq,
            &self.at,
            &self.entry.event,
            &self.entry.detail,
            &self.entry.prev_hash,
            &self.entry.hash,
        ]
    }
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
        tx.tx,
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
