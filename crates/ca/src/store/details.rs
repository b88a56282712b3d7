//! What each audit entry records (format `"v": 2`): the complete state change, with the exact
//! values written to the tables (the same integer timestamps), so `audit verify` can rebuild the
//! tables from the chain and compare (`replay.rs`).
//!
//! | event | fields |
//! |---|---|
//! | `token` | `token_hash` (SHA-256 of a 256-bit secret: useless for redeeming), `spiffe_id`, `dns`, `ips`, `created_at`, `expires_at` |
//! | `token_revoke` | `token_hash`, `revoked_at`, `actor` (an unused token revoked before use) |
//! | `issue` | the certificate fields below, `token_hash`, `used_at` (the token's) |
//! | `renew` | the certificate fields below |
//! | `revoke` | `serial`, `revoked_at`, `reason`, `actor`, `cause` (+ `ancestor` or `presented_serial`) |
//! | `suspected_key_theft` | `presented_serial`, `renewed_as` (the existing renewals), `spiffe_id`, `revoked` |
//! | `api_cert` | the CA's own API certificate (not stored in `certs`) |
//! | `entry_create` | `id`, `spiffe_id`, `parent_id`, `selectors`, `ttl_seconds`, `dns`, `created_at` |
//! | `entry_delete` | `id`, `deleted_at`, `actor` |
//! | `agent_svid` | the certificate fields below, `entry_id`, `agent_id`, `agent_serial` |
//! | `agent_jwt` | `entry_id`, `agent_id`, `agent_serial`, `spiffe_id`, `aud`, `iat`, `exp` |
//! | `agent_refused` | `what` (`svid` or `jwt`), `code`, `entry_id`, `agent_id`, `agent_serial` |
//! | `federation_add` | `trust_domain`, `endpoint`, `endpoint_spiffe_id`, `fingerprint`, `created_at`, `actor` (`federations.rs`) |
//! | `federation_remove` | `trust_domain`, `removed_at`, `actor` |
//! | `federation_bundle` | `trust_domain`, `bundle_sha256`, `roots` (their SHA-256), `sequence`, `refreshed_at` (a fetched bundle that differs from the stored one) |
//!
//! Certificate fields: `serial`, `spiffe_id`, `dns`, `ips`, `not_before`, `not_after`,
//! `issued_at`, `kind`, `renewed_from`, `fingerprint`. Timestamps are Unix seconds.

use serde_json::{json, Value};

use super::entries::{AgentIssue, AgentIssued, EntryRecord};
use super::{CertRecord, TokenRecord};

/// The format written by this version; entries without `v` are from the first format.
pub const VERSION: u64 = 2;

/// Why a certificate was revoked; recorded in its `revoke` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeCause<'a> {
    /// Its serial was named by the operator or an API caller.
    Requested,
    /// It was renewed (directly or transitively) from `ancestor`, which was revoked.
    Ancestor(&'a str),
    /// Its lineage was revoked because `presented` was renewed a second time with another key.
    KeyTheft { presented: &'a str },
    /// `mtls-ca revoke --spiffe-id` revoked every live certificate of its identity.
    Identity,
}

pub fn token(t: &TokenRecord) -> Value {
    json!({
        "v": VERSION,
        "token_hash": t.hash,
        "spiffe_id": t.spiffe_id,
        "dns": t.dns,
        "ips": t.ips,
        "created_at": t.created_at.unix_timestamp(),
        "expires_at": t.expires_at.unix_timestamp(),
    })
}

pub fn token_revoke(hash: &str, revoked_at: i64, actor: &str) -> Value {
    json!({
        "v": VERSION,
        "token_hash": hash,
        "revoked_at": revoked_at,
        "actor": actor,
    })
}

pub fn cert(c: &CertRecord) -> Value {
    json!({
        "v": VERSION,
        "serial": c.serial,
        "spiffe_id": c.spiffe_id,
        "dns": c.dns,
        "ips": c.ips,
        "not_before": c.not_before.unix_timestamp(),
        "not_after": c.not_after.unix_timestamp(),
        "issued_at": c.issued_at.unix_timestamp(),
        "kind": c.kind.as_str(),
        "renewed_from": c.renewed_from,
        "fingerprint": c.fingerprint,
    })
}

pub fn issue(c: &CertRecord, token_hash: &str, used_at: i64) -> Value {
    let mut v = cert(c);
    v["token_hash"] = Value::from(token_hash);
    v["used_at"] = Value::from(used_at);
    v
}

pub fn revoke(
    serial: &str,
    revoked_at: i64,
    reason: Option<&str>,
    actor: &str,
    cause: RevokeCause<'_>,
) -> Value {
    let mut v = json!({
        "v": VERSION,
        "serial": serial,
        "revoked_at": revoked_at,
        "reason": reason,
        "actor": actor,
    });
    match cause {
        RevokeCause::Requested => v["cause"] = Value::from("requested"),
        RevokeCause::Ancestor(ancestor) => {
            v["cause"] = Value::from("ancestor_revoked");
            v["ancestor"] = Value::from(ancestor);
        }
        RevokeCause::KeyTheft { presented } => {
            v["cause"] = Value::from("suspected_key_theft");
            v["presented_serial"] = Value::from(presented);
        }
        RevokeCause::Identity => v["cause"] = Value::from("identity_revoked"),
    }
    v
}

pub fn entry_create(e: &EntryRecord) -> Value {
    json!({
        "v": VERSION,
        "id": e.id,
        "spiffe_id": e.spiffe_id,
        "parent_id": e.parent_id,
        "selectors": e.selectors,
        "ttl_seconds": e.ttl_seconds,
        "dns": e.dns,
        "created_at": e.created_at.unix_timestamp(),
    })
}

pub fn entry_delete(id: &str, deleted_at: i64, actor: &str) -> Value {
    json!({"v": VERSION, "id": id, "deleted_at": deleted_at, "actor": actor})
}

/// The `agent_svid` or `agent_jwt` entry of an agent issuance, with its event name.
pub fn agent_issue(r: &AgentIssue<'_>, spiffe_id: &str) -> (&'static str, Value) {
    let mut v = match r.issued {
        AgentIssued::Svid(c) => cert(c),
        AgentIssued::Jwt { aud, iat, exp } => json!({
            "v": VERSION,
            "spiffe_id": spiffe_id,
            "aud": aud,
            "iat": iat,
            "exp": exp,
        }),
    };
    v["entry_id"] = Value::from(r.entry_id);
    v["agent_id"] = Value::from(r.agent_id);
    v["agent_serial"] = Value::from(r.agent_serial);
    let event = match r.issued {
        AgentIssued::Svid(_) => "agent_svid",
        AgentIssued::Jwt { .. } => "agent_jwt",
    };
    (event, v)
}
/// A refused agent request (`agent_refused`): what was asked, by whom, and the refusal code.
pub fn agent_refused(
    what: &str,
    code: &str,
    entry_id: &str,
    agent_id: &str,
    agent_serial: &str,
) -> Value {
    json!({
        "v": VERSION,
        "what": what,
        "code": code,
        "entry_id": entry_id,
        "agent_id": agent_id,
        "agent_serial": agent_serial,
    })
}
