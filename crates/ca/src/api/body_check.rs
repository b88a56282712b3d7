//! Everything the CA checks in a request body before it looks anything up in its store: the
//! size, the JSON against the endpoint's schema (`deny_unknown_fields`), then the SPIFFE ID,
//! TTL, CSR, serial and reason with the authority's own functions. The handlers and
//! `Authority` run these same functions with the store lookups in between; this entry point
//! lets the fuzz targets (`fuzz/`, docs/fuzzing.md) drive the whole "request bytes -> validated
//! input" path without a database.

use pki::{SpiffeId, VerifiedCsr};
use time::Duration;

use super::decode_json;
use super::revoke::RevokeBody;
use super::sign::{RenewBody, SignBody};
use crate::authority::{
    check_issuable, parse_id, parse_ttl, revoke_fields, verify_csr, AuthorityConfig,
};
use crate::error::AuthorityError;

/// The endpoint a body was sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /api/v1/sign`
    Sign,
    /// `POST /api/v1/renew`
    Renew,
    /// `POST /api/v1/revoke`
    Revoke,
}

/// A body that passed every check that needs no store.
#[derive(Clone, Debug)]
pub enum CheckedBody {
    /// A signing request.
    Sign {
        /// The identity asked for.
        requested_id: SpiffeId,
        /// The lifetime granted (default applied, capped).
        ttl: Duration,
        /// The CSR, its signature verified.
        csr: VerifiedCsr,
    },
    /// A renewal request.
    Renew {
        /// The lifetime granted (default applied, capped).
        ttl: Duration,
        /// The CSR, its signature verified.
        csr: VerifiedCsr,
    },
    /// A revocation request.
    Revoke {
        /// Lowercase hex without separators or leading zero octets.
        serial: String,
        /// The reason code, checked against the RFC 5280 names.
        reason: Option<String>,
    },
}

/// Checks `body` as the CA does for `endpoint` under `cfg` and returns the refusal the client
/// would get (same code and message) or the validated input. Refusals that depend on the store
/// (the join token, the presented certificate, `san_not_allowed`, `key_reused`, ...) are not
/// made here; a requested ID that no join token can carry (reserved for the CA, or of another
/// trust domain) is refused as soon as it parses, where the authority's token check would stop
/// it.
pub fn check_body(
    endpoint: Endpoint,
    body: &[u8],
    cfg: &AuthorityConfig,
) -> Result<CheckedBody, AuthorityError> {
    match endpoint {
        Endpoint::Sign => {
            let body: SignBody = decode_json(body)?;
            let requested_id = parse_id(&body.requested_id)?;
            check_issuable(&requested_id, &cfg.trust_domain)?;
            let ttl = parse_ttl(body.ttl.as_deref(), cfg.default_ttl, cfg.max_ttl)?;
            let csr = verify_csr(&body.csr)?;
            Ok(CheckedBody::Sign {
                requested_id,
                ttl,
                csr,
            })
        }
        Endpoint::Renew => {
            let body: RenewBody = decode_json(body)?;
            let ttl = parse_ttl(body.ttl.as_deref(), cfg.default_ttl, cfg.max_ttl)?;
            let csr = verify_csr(&body.csr)?;
            Ok(CheckedBody::Renew { ttl, csr })
        }
        Endpoint::Revoke => {
            let body: RevokeBody = decode_json(body)?;
            let serial = revoke_fields(&body.serial, body.reason.as_deref())?;
            Ok(CheckedBody::Revoke {
                serial,
                reason: body.reason,
            })
        }
    }
}

#[cfg(test)]
mod tests;
