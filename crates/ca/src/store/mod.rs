//! Persistence for the CA behind a small trait, so a PostgreSQL store can sit beside SQLite.
//!
//! Every mutating call writes its audit entry in the same transaction as the change it records,
//! so the log and the data can never disagree after a crash.

pub mod details;
mod file_guard;
pub mod memory;
pub mod replay;
pub mod rows;
pub mod sqlite;
mod sqlite_lineage;
mod sqlite_ops;

use std::net::IpAddr;

use serde::Serialize;
use thiserror::Error;
use time::OffsetDateTime;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error while {context}: {source}")]
    Db {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("corrupt stored value in {0}")]
    Corrupt(String),
    #[error("{0}")]
    Setup(String),
    /// A row with this key exists already (the memory store; SQLite reports it as a `Db`
    /// error of its primary key).
    #[error("{table} already holds a row with key {key}")]
    Duplicate { table: &'static str, key: String },
    /// The database file was removed or replaced while the store had it open; nothing was
    /// written.
    #[error("the CA database is unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A join token as stored: only its hash, never the token itself.
#[derive(Clone, Debug, Serialize)]
pub struct TokenRecord {
    pub hash: String,
    pub spiffe_id: String,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub used_at: Option<OffsetDateTime>,
}

/// How a certificate came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueKind {
    Sign,
    Renew,
}

impl IssueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::Sign => "sign",
            IssueKind::Renew => "renew",
        }
    }
}

/// An issued certificate as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertRecord {
    pub serial: String,
    pub spiffe_id: String,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    pub kind: IssueKind,
    pub renewed_from: Option<String>,
    pub fingerprint: String,
    #[serde(skip)]
    pub pem: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoke_reason: Option<String>,
}

/// Why a presented certificate no longer authorises its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presented {
    /// No certificate with that serial was issued by this CA.
    Unknown,
    /// The serial is known but the certificate presented is not the one issued under it.
    Mismatch,
    Revoked,
    Expired {
        not_after: OffsetDateTime,
    },
}

impl CertRecord {
    /// Whether this record still authorises the holder of the certificate with `fingerprint`
    /// at `now` (renewal, and revocation requests).
    pub fn standing(
        &self,
        fingerprint: &str,
        now: OffsetDateTime,
    ) -> std::result::Result<(), Presented> {
        if self.fingerprint != fingerprint {
            Err(Presented::Mismatch)
        } else if self.revoked_at.is_some() {
            Err(Presented::Revoked)
        } else if self.not_after <= now {
            Err(Presented::Expired {
                not_after: self.not_after,
            })
        } else {
            Ok(())
        }
    }

    /// Hex SHA-256 of the certified key's SubjectPublicKeyInfo, from the stored PEM.
    pub fn spki_sha256(&self) -> Result<String> {
        let der = pki::pem::parse_certificates(self.pem.as_bytes())
            .ok()
            .and_then(|mut c| (c.len() == 1).then(|| c.remove(0)))
            .ok_or_else(|| StoreError::Corrupt(format!("certs.pem of {}", self.serial)))?;
        pki::CertInfo::from_der(&der)
            .map(|info| info.spki_sha256)
            .map_err(|e| StoreError::Corrupt(format!("certs.pem of {}: {e}", self.serial)))
    }

    pub fn status(&self, now: OffsetDateTime) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.not_after <= now {
            "expired"
        } else {
            "valid"
        }
    }
}

/// Result of trying to redeem a token together with recording its certificate.
#[derive(Debug, PartialEq, Eq)]
pub enum Redeem {
    Done,
    /// Someone else redeemed it first (or it expired meanwhile): nothing was stored.
    AlreadyUsed,
}

/// Result of a revocation attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Revoke {
    /// Every serial revoked now: the one named (unless it already was) first, then the
    /// certificates renewed from it, transitively.
    Done {
        revoked: Vec<String>,
    },
    /// The serial and everything renewed from it were already revoked: nothing changed.
    AlreadyRevoked,
    UnknownSerial,
}

/// A renewal to record. The presented certificate is checked again inside the transaction
/// that records the new one, so a revocation committed meanwhile always wins.
pub struct RenewalRequest<'a> {
    pub presented_serial: &'a str,
    pub presented_fingerprint: &'a str,
    /// SHA-256 of the new key's SubjectPublicKeyInfo (from the CSR).
    pub new_key_sha256: &'a str,
    /// The new certificate, renewed from the presented one.
    pub cert: &'a CertRecord,
    pub now: OffsetDateTime,
}

/// What recording a renewal did. A certificate may be renewed once (like a refresh token):
/// a retry with the same key gets the same certificate, a second renewal with another key is
/// taken as a stolen key and revokes the whole lineage.
#[derive(Debug, PartialEq, Eq)]
pub enum RenewOutcome {
    Recorded,
    /// The presented certificate was already renewed with this key: that certificate, and
    /// nothing stored.
    Existing(Box<CertRecord>),
    /// Already renewed with this key, but that certificate has since been revoked.
    ExistingRevoked {
        serial: String,
    },
    /// Already renewed with another key: the lineage (the original certificate and everything
    /// renewed from it) was revoked in this transaction, with a `suspected_key_theft` entry.
    Replayed {
        renewed_as: Vec<String>,
        revoked: Vec<String>,
    },
    /// The presented certificate no longer authorises a renewal; nothing stored.
    Refused(Presented),
}

/// The last entry of the audit chain: publish it elsewhere to detect a cut or rewritten tail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

/// Result of verifying the audit chain and the tables against it (see `replay.rs`).
#[derive(Debug, PartialEq, Eq)]
pub enum AuditCheck {
    Intact {
        entries: u64,
        head: Option<AuditHead>,
    },
    /// The chain itself is broken at `seq` (an entry edited, removed or reordered).
    Broken { seq: i64, reason: String },
    /// The chain is intact but the tables disagree with the state it implies; each problem
    /// names the entry and/or row.
    Mismatch { entries: u64, problems: Vec<String> },
}

/// The CA's persistence. Implementations must make each call atomic and durable on return.
pub trait Store: Send + Sync {
    /// Stores a value in the metadata table if absent; returns the value now stored.
    fn init_meta(&self, key: &str, value: &str) -> Result<String>;
    fn get_meta(&self, key: &str) -> Result<Option<String>>;

    fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>>;
    /// Marks the token used and records the certificate, atomically; fails over to
    /// `AlreadyUsed` without storing anything when the token was used or expired meanwhile.
    fn redeem_token(&self, hash: &str, now: OffsetDateTime, cert: &CertRecord) -> Result<Redeem>;

    fn record_renewal(&self, renewal: &RenewalRequest<'_>) -> Result<RenewOutcome>;
    fn find_cert(&self, serial: &str) -> Result<Option<CertRecord>>;
    fn list_certs(&self) -> Result<Vec<CertRecord>>;

    fn revoke(
        &self,
        serial: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Revoke>;
    /// Revokes every live (unrevoked, unexpired) certificate of `spiffe_id`; returns them.
    fn revoke_identity(
        &self,
        spiffe_id: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<String>>;
    /// Revoked certificates that have not expired at `now`: the CRL's content.
    fn revoked_unexpired(&self, now: OffsetDateTime) -> Result<Vec<CertRecord>>;
    /// Changes whenever a revocation is committed, by any process sharing the store.
    fn revocation_epoch(&self) -> Result<u64>;

    /// Verifies the chain and replays it against the tables, from one consistent snapshot.
    fn verify_audit(&self) -> Result<AuditCheck>;
    /// The last entry, None for an empty log.
    fn audit_head(&self) -> Result<Option<AuditHead>>;
    /// The hash of entry `seq`, None when the chain has no such entry.
    fn audit_hash_at(&self, seq: i64) -> Result<Option<String>>;

    /// Appends an audit entry for an event that changes nothing else in the store (the CA's
    /// own API certificate, issued in memory at start and at half-life).
    fn record_event(&self, event: &str, detail: &serde_json::Value) -> Result<()>;

    /// Proves the store can still record: the file opened is still the one at its path, it
    /// would open for writing again, and a small write transaction commits. Err is the reason,
    /// fit to show to an unauthenticated caller (no paths beyond the file name).
    fn health_probe(&self, now: OffsetDateTime) -> std::result::Result<(), String>;
}
