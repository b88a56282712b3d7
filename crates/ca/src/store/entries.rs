//! Registration entries (docs/ca-api.md "Agent API"): which SPIFFE ID an agent may obtain for the workloads
//! its selectors describe, and the agent issuances checked against them.
//!
//! An entry is immutable: it is created and deleted, never edited, and every change moves the
//! entry revision agents poll (`GET /api/v1/agent/entries`).

use serde::Serialize;
use time::OffsetDateTime;

use super::rows::{from_json, from_ts};
use super::{CertRecord, Presented, Result};

/// A registration entry as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryRecord {
    /// Random ID, 32 lowercase hex digits.
    pub id: String,
    /// The SPIFFE ID a matching workload receives.
    pub spiffe_id: String,
    /// The agent (`spiffe://<td>/agent/<name>`) that may obtain it.
    pub parent_id: String,
    /// Canonical selectors (`pki::selector`), sorted, no duplicates, at least one.
    pub selectors: Vec<String>,
    /// Lifetime of the X.509-SVIDs minted for it (clamped to the CA's `--max-duration`).
    pub ttl_seconds: i64,
    /// DNS SANs of those SVIDs.
    pub dns: Vec<String>,
    /// When it was created.
    #[serde(serialize_with = "pki::timefmt::serialize")]
    pub created_at: OffsetDateTime,
}

/// One row of `entries`, exactly as stored (lists as JSON text, times as Unix seconds).
#[derive(Clone, Debug)]
pub struct EntryRow {
    pub id: String,
    pub spiffe_id: String,
    pub parent_id: String,
    pub selectors: String,
    pub ttl_seconds: i64,
    pub dns: String,
    pub created_at: i64,
}

impl EntryRow {
    pub fn into_record(self) -> Result<EntryRecord> {
        Ok(EntryRecord {
            selectors: from_json(&self.selectors, "entries.selectors")?,
            dns: from_json(&self.dns, "entries.dns")?,
            created_at: from_ts(self.created_at)?,
            id: self.id,
            spiffe_id: self.spiffe_id,
            parent_id: self.parent_id,
            ttl_seconds: self.ttl_seconds,
        })
    }
}

/// What creating an entry did.
#[derive(Debug, PartialEq, Eq)]
pub enum CreateEntry {
    /// Stored, with its `entry_create` audit entry.
    Created,
    /// An entry with the same parent, SPIFFE ID and selector set exists: nothing stored.
    Duplicate {
        /// Its ID.
        id: String,
    },
}

/// What an agent obtained for one of its entries, recorded with the check of the entry.
pub enum AgentIssued<'a> {
    /// An X.509-SVID (stored in `certs`, kind `agent`).
    Svid(&'a CertRecord),
    /// A JWT-SVID (not stored; its `agent_jwt` audit entry only).
    Jwt {
        /// Its audiences.
        aud: &'a [String],
        /// `iat`, Unix seconds.
        iat: i64,
        /// `exp`, Unix seconds.
        exp: i64,
    },
}

/// An agent's issuance to record. In the same transaction the store checks that the entry
/// still exists, that its parent is the agent, and that the agent's certificate still stands,
/// so a deletion or revocation committed meanwhile always wins.
pub struct AgentIssue<'a> {
    /// The entry asked for.
    pub entry_id: &'a str,
    /// The agent's SPIFFE ID (from its certificate).
    pub agent_id: &'a str,
    /// Serial of the agent's certificate.
    pub agent_serial: &'a str,
    /// Its SHA-256 fingerprint (it must be the stored one).
    pub agent_fingerprint: &'a str,
    /// What was issued.
    pub issued: AgentIssued<'a>,
    /// The time of the issuance.
    pub now: OffsetDateTime,
}

/// What recording an agent issuance did.
#[derive(Debug, PartialEq, Eq)]
pub enum AgentOutcome {
    /// Recorded with its audit entry; the SVID may be handed out.
    Recorded,
    /// No such entry (never created, or deleted): nothing stored.
    UnknownEntry,
    /// The entry belongs to another agent: nothing stored.
    NotParent {
        /// The entry's parent.
        parent: String,
    },
    /// The agent's certificate no longer authorises it: nothing stored.
    Refused(Presented),
}
