//! `POST /api/v1/tokens` (docs/ca-api.md "Join tokens"): the admin identity asks for a one-time
//! join token over mTLS, with the rules and limits of `mtls-ca token` (`crate::admin`, the one
//! validator); the store records and audits it like the command's (`token` event).
//! `GET /api/v1/tokens` lists them (hash prefixes, never tokens) and
//! `DELETE /api/v1/tokens/ID` revokes an unused one (`token_revoke` event), for the admin alone.

use std::net::IpAddr;

use pki::SpiffeId;
use time::OffsetDateTime;

use super::{Authority, Res};
use crate::admin;
use crate::error::{AuthorityError, Kind};
use crate::store::{RevokeToken, TokenRecord};
use crate::tokens;

/// Lifetime of a token when the request names none (`mtls-ca token`'s default).
pub const DEFAULT_TOKEN_TTL: &str = "10m";

/// What the admin asked for, as sent (checked by [`Authority::create_join_token`]).
#[derive(Debug, Default)]
pub struct TokenRequest {
    /// The SPIFFE ID the token authorises.
    pub spiffe_id: String,
    /// DNS SANs the certificate may carry.
    pub dns: Vec<String>,
    /// IP SANs the certificate may carry.
    pub ip: Vec<String>,
    /// `90s`, `10m`, `1h`, `7d`; default [`DEFAULT_TOKEN_TTL`].
    pub ttl: Option<String>,
}

/// A token made for the admin: the secret (only its hash is stored) and its expiry.
#[derive(Debug)]
pub struct NewToken {
    /// The bearer secret, shown once.
    pub token: String,
    /// When it stops being redeemable.
    pub expires_at: OffsetDateTime,
}

fn invalid(message: impl Into<String>) -> AuthorityError {
    AuthorityError::bad_request("invalid_token_request", message)
}

impl Authority {
    /// Creates a join token for the admin identity `peer`; everyone else is refused before the
    /// body is looked at, and a refused request changes nothing.
    pub fn create_join_token(&self, peer: Option<&[u8]>, req: &TokenRequest) -> Res<NewToken> {
        let now = self.clock.now();
        self.counted(|| {
            self.require_admin(peer, now, "creating join tokens")?;
            let id = SpiffeId::parse(&req.spiffe_id)
                .map_err(|e| invalid(format!("spiffe_id {:?}: {e}", req.spiffe_id)))?;
            let ips = req
                .ip
                .iter()
                .map(|s| {
                    s.parse::<IpAddr>()
                        .map_err(|e| invalid(format!("ip {s:?} is not an IP address ({e})")))
                })
                .collect::<Res<Vec<IpAddr>>>()?;
            let ttl_text = req.ttl.as_deref().unwrap_or(DEFAULT_TOKEN_TTL);
            let ttl = admin::parse_token_ttl(ttl_text)
                .map_err(|e| invalid(format!("ttl {ttl_text:?}: {e}")))?;
            admin::check_token_request(&self.cfg.trust_domain, &id, &req.dns, ttl)
                .map_err(|e| invalid(e.to_string()))?;
            let token = admin::create_token(
                self.store.as_ref(),
                &self.cfg.trust_domain,
                &id,
                &req.dns,
                &ips,
                ttl,
                self.clock.as_ref(),
            )
            .map_err(AuthorityError::internal)?;
            tracing::info!(event = "token_created", spiffe_id = %id, ttl = %ttl, "join token created over the API");
            Ok(NewToken {
                token,
                expires_at: now + ttl,
            })
        })
    }
}

impl Authority {
    /// Every join token, oldest first, for the admin identity only.
    pub fn list_join_tokens(&self, peer: Option<&[u8]>) -> Res<Vec<TokenRecord>> {
        let now = self.clock.now();
        self.counted(|| {
            self.require_admin(peer, now, "listing join tokens")?;
            Ok(self.store.list_tokens()?)
        })
    }

    /// Revokes the unused token `id` names (a prefix of its hash), for the admin identity only;
    /// every refusal changes nothing. Returns the token as stored now.
    pub fn revoke_join_token(&self, peer: Option<&[u8]>, id: &str) -> Res<TokenRecord> {
        let now = self.clock.now();
        self.counted(|| {
            let caller = self.require_admin(peer, now, "revoking join tokens")?;
            let id = tokens::parse_id(id)
                .map_err(|e| AuthorityError::bad_request("bad_token_id", e))?;
            let actor = format!("admin {}", caller.spiffe_id);
            let outcome = self.store.revoke_token(&id, &actor, now)?;
            let token = revoke_outcome(outcome, &id)?;
            tracing::info!(event = "token_revoke", id = %tokens::id(&token.hash), spiffe_id = %token.spiffe_id, actor = %actor, "join token revoked over the API");
            Ok(token)
        })
    }
}

/// A revocation's outcome as the API and `mtls-ca token revoke` report it: the token revoked,
/// or why nothing changed (404 unknown, 409 ambiguous, used or already revoked).
pub fn revoke_outcome(outcome: RevokeToken, id: &str) -> Res<TokenRecord> {
    let conflict = |code, message: String| Err(AuthorityError::new(Kind::Conflict, code, message));
    match outcome {
        RevokeToken::Done(token) => Ok(*token),
        RevokeToken::Unknown => Err(AuthorityError::new(
            Kind::NotFound,
            "token_not_found",
            format!("no join token's ID starts with {id} (see GET /api/v1/tokens or `mtls-ca token list`)"),
        )),
        RevokeToken::Ambiguous(n) => conflict(
            "token_id_ambiguous",
            format!("{n} join tokens have IDs starting with {id}; give more hex digits of the hash"),
        ),
        RevokeToken::Used(token) => conflict(
            "token_used",
            format!(
                "join token {id} was already redeemed for {}; revoke the certificate it enrolled instead (POST /api/v1/revoke or `mtls-ca revoke --spiffe-id`)",
                token.spiffe_id
            ),
        ),
        RevokeToken::AlreadyRevoked(token) => conflict(
            "token_revoked",
            format!(
                "join token {id} was already revoked at {}",
                token
                    .revoked_at
                    .map(pki::timefmt::rfc3339)
                    .unwrap_or_default()
            ),
        ),
    }
}
