//! The rule of revoking a join token before use, shared by every backend: the ID (a prefix of
//! the hash) must name exactly one token, which must be neither used nor revoked. Each backend
//! reads the matching rows inside its write transaction, asks [`choose`], and writes only for
//! the one revocable row, so a redemption committed meanwhile always wins.

use super::rows::TokenRow;
use super::{Result, RevokeToken};

/// The one row to revoke, or the outcome that changes nothing.
pub fn choose(mut rows: Vec<TokenRow>) -> Result<std::result::Result<TokenRow, RevokeToken>> {
    if rows.len() > 1 {
        return Ok(Err(RevokeToken::Ambiguous(rows.len())));
    }
    let Some(row) = rows.pop() else {
        return Ok(Err(RevokeToken::Unknown));
    };
    if row.used_at.is_some() {
        return Ok(Err(RevokeToken::Used(Box::new(row.into_record()?))));
    }
    if row.revoked_at.is_some() {
        return Ok(Err(RevokeToken::AlreadyRevoked(Box::new(
            row.into_record()?,
        ))));
    }
    Ok(Ok(row))
}

/// The SQL condition (both backends) of the rows whose hash starts with the first parameter.
pub const BY_PREFIX: &str = "substr(hash, 1, length(?1)) = ?1";
