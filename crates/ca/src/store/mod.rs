//! Persistence for the CA behind a small trait, so a PostgreSQL store can sit beside SQLite.
//!
//! Every mutating call writes its audit entry in the same transaction as the change it records,
//! so the log and the data can never disagree after a crash.

pub mod copy;
pub(crate) mod details;
mod entries;
mod federations;
mod file_guard;
mod group_commit;
mod location;
mod memory;
mod migrations;
mod postgres;
mod postgres_batch;
mod postgres_copy;
mod postgres_federations;
mod postgres_lineage;
mod postgres_ops;
mod postgres_pipeline;
mod postgres_tls;
mod postgres_tokens;
mod replay;
mod replay_federations;
mod rows;
mod sqlite;
mod sqlite_backup;
mod sqlite_batch;
mod sqlite_entries;
mod sqlite_federations;
mod sqlite_lineage;
mod sqlite_ops;
mod sqlite_tokens;
mod token_revoke;

use std::net::IpAddr;

use serde::Serialize;
use thiserror::Error;
use time::OffsetDateTime;

pub use entries::{AgentIssue, AgentIssued, AgentOutcome, CreateEntry, EntryRecord};
pub use federations::{FederationRecord, StoredBundle};
pub use location::StoreLocation;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use sqlite_backup::backup_sqlite;

/// The schema version a SQLite store has once opened (`mtls-ca migrate`).
pub const SQLITE_SCHEMA_VERSION: u32 = sqlite::MIGRATIONS.len() as u32;
/// The schema version a PostgreSQL store has once opened (`mtls-ca migrate`).
pub const POSTGRES_SCHEMA_VERSION: u32 = postgres_ops::MIGRATIONS.len() as u32;

/// Why a store call failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database refused a statement.
    #[error("database error while {context}: {source}")]
    Db {
        /// What the store was doing.
        context: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value cannot be read back (the table or column named).
    #[error("corrupt stored value in {0}")]
    Corrupt(String),
    /// The store cannot be created or opened; the message says why and what to do.
    #[error("{0}")]
    Setup(String),
    /// A row with this key exists already (the memory store; SQLite reports it as a `Db`
    /// error of its primary key).
    #[error("{table} already holds a row with key {key}")]
    Duplicate {
        /// The table.
        table: &'static str,
        /// The key already there.
        key: String,
    },
    /// PostgreSQL refused a statement.
    #[error("database error while {context}: {source}")]
    Postgres {
        /// What the store was doing.
        context: &'static str,
        /// The driver's error (with the server's message).
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database server cannot be reached (connection refused, lost or timed out); nothing
    /// was written. Callers answer 503 and may retry.
    #[error("the CA database cannot be reached: {0}")]
    Unreachable(String),
    /// A PostgreSQL batch transaction (group commit) was refused at its commit; nothing of
    /// this call is known to be stored.
    #[error("the batch transaction failed: {0}")]
    Batch(String),
    /// The database file was removed or replaced while the store had it open; nothing was
    /// written.
    #[error("the CA database is unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether the certificate could not be recorded because its serial is stored already
    /// (the `certs` table's primary key, on every store): the issuance draws another serial
    /// and signs again (`Authority::sign`), instead of looking each serial up first.
    pub fn is_taken_serial(&self) -> bool {
        match self {
            StoreError::Duplicate { table, .. } => *table == "certs",
            StoreError::Db {
                source: rusqlite::Error::SqliteFailure(e, message),
                ..
            } => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    && message
                        .as_deref()
                        .is_some_and(|m| m.contains("certs.serial"))
            }
            StoreError::Postgres { source, .. } => source.as_db_error().is_some_and(|e| {
                *e.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                    && e.constraint() == Some("certs_pkey")
            }),
            _ => false,
        }
    }
}

/// The result of a store call.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A join token as stored: only its hash, never the token itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// The SPIFFE ID it authorises.
    pub spiffe_id: String,
    /// The DNS SANs it allows.
    pub dns: Vec<String>,
    /// The IP SANs it allows.
    pub ips: Vec<IpAddr>,
    /// When it was created.
    #[serde(serialize_with = "pki::timefmt::serialize")]
    pub created_at: OffsetDateTime,
    /// From when it can no longer be redeemed.
    #[serde(serialize_with = "pki::timefmt::serialize")]
    pub expires_at: OffsetDateTime,
    /// When it was redeemed, if it was.
    #[serde(serialize_with = "pki::timefmt::serialize_option")]
    pub used_at: Option<OffsetDateTime>,
    /// The serial of the certificate it was redeemed for, if it was: a retried sign with the
    /// same key is answered with that certificate (`Authority::sign`).
    ///
    /// Why this link: the `tokens.used_serial` column, in the schema since version 1 on both
    /// backends, set by the very statement (or transaction) that marks the token used and
    /// inserts the certificate, so it can never point at a certificate that was not stored.
    /// `audit verify` replays it against the serial of the `issue` entry that redeemed the
    /// token (`replay.rs`), so a forged link does not pass; `migrate-store` (`copy.rs`) and
    /// `backup` (SQLite's online backup, every column) carry it. Reading it needs no schema
    /// change, and an older mtls-ca on the same store answers a retry `token_used` as before:
    /// no migration. A token without one (only a hand-edited row) is never retried.
    pub used_serial: Option<String>,
    /// When an operator revoked it before use, if they did (it can no longer be redeemed).
    #[serde(serialize_with = "pki::timefmt::serialize_option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl TokenRecord {
    /// `used`, `revoked`, `expired` or `unused` at `now`.
    pub fn status(&self, now: OffsetDateTime) -> &'static str {
        if self.used_at.is_some() {
            "used"
        } else if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else {
            "unused"
        }
    }

    /// The token as `mtls-ca token list --format json` and `GET /api/v1/tokens` show it: its
    /// ID (a prefix of the hash), never the token, nor the whole hash.
    pub fn view(&self, now: OffsetDateTime) -> serde_json::Value {
        serde_json::json!({
            "id": crate::tokens::id(&self.hash),
            "spiffe_id": self.spiffe_id,
            "dns": self.dns,
            "ips": self.ips,
            "created_at": pki::timefmt::rfc3339(self.created_at),
            "expires_at": pki::timefmt::rfc3339(self.expires_at),
            "used_at": self.used_at.map(pki::timefmt::rfc3339),
            "revoked_at": self.revoked_at.map(pki::timefmt::rfc3339),
            "status": self.status(now),
        })
    }
}

/// Result of revoking a join token before use. Only `Done` changed anything.
#[derive(Debug, PartialEq, Eq)]
pub enum RevokeToken {
    /// Revoked now, with its `token_revoke` audit entry: the token as stored now.
    Done(Box<TokenRecord>),
    /// No token's hash starts with the ID.
    Unknown,
    /// Several tokens' hashes start with the ID (how many): a longer prefix is needed.
    Ambiguous(usize),
    /// It was redeemed already: revoke the certificate it enrolled instead.
    Used(Box<TokenRecord>),
    /// It was revoked before.
    AlreadyRevoked(Box<TokenRecord>),
}

/// How a certificate came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueKind {
    /// Issued against a join token (`POST /api/v1/sign`).
    Sign,
    /// Issued by renewal over mTLS (`POST /api/v1/renew`).
    Renew,
    /// Issued to an agent for one of its registration entries (`POST /api/v1/agent/svid`).
    /// Never renewable: the agent mints a new one while the entry exists.
    Agent,
    /// The CA's own delegated OCSP responder certificate (`--ocsp-responder delegated`): no
    /// SPIFFE ID (stored as ""), its key in the CA's memory only. Revoking it makes the CA
    /// issue itself a new one before its next signed answer.
    #[serde(rename = "ocsp-responder")]
    OcspResponder,
}

impl IssueKind {
    /// The stored name: `sign`, `renew`, `agent` or `ocsp-responder`.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::Sign => "sign",
            IssueKind::Renew => "renew",
            IssueKind::Agent => "agent",
            IssueKind::OcspResponder => "ocsp-responder",
        }
    }
}

/// An issued certificate as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertRecord {
    /// Serial, lowercase hex without leading zero octets.
    pub serial: String,
    /// The SPIFFE ID it carries.
    pub spiffe_id: String,
    /// Its DNS SANs.
    pub dns: Vec<String>,
    /// Its IP SANs.
    pub ips: Vec<IpAddr>,
    /// NotBefore.
    #[serde(serialize_with = "pki::timefmt::serialize")]
    pub not_before: OffsetDateTime,
    /// NotAfter.
    #[serde(serialize_with = "pki::timefmt::serialize")]
    pub not_after: OffsetDateTime,
    /// When the CA issued it.
    #[serde(serialize_with = "pki::timefmt::serialize")]
    pub issued_at: OffsetDateTime,
    /// Sign, renew or agent.
    pub kind: IssueKind,
    /// For a renewal, the serial of the certificate it replaced.
    pub renewed_from: Option<String>,
    /// Hex SHA-256 of the DER.
    pub fingerprint: String,
    /// The certificate, PEM.
    #[serde(skip)]
    pub pem: String,
    /// When it was revoked, if it was.
    #[serde(serialize_with = "pki::timefmt::serialize_option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// The RFC 5280 reason given, if any.
    pub revoke_reason: Option<String>,
}

/// Why a presented certificate no longer authorises its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presented {
    /// No certificate with that serial was issued by this CA.
    Unknown,
    /// The serial is known but the certificate presented is not the one issued under it.
    Mismatch,
    /// It has been revoked.
    Revoked,
    /// It expired.
    Expired {
        /// Its NotAfter.
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

    /// `revoked`, `expired` or `valid` at `now`, as `mtls-ca list` and `/api/v1/certs` show it.
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
    /// The token is used and the certificate recorded.
    Done,
    /// Someone else redeemed it first (or it expired or was revoked meanwhile): nothing was
    /// stored.
    AlreadyUsed,
}

/// Result of a revocation attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Revoke {
    /// Every serial revoked now: the one named (unless it already was) first, then the
    /// certificates renewed from it, transitively.
    Done {
        /// The serials, in that order.
        revoked: Vec<String>,
    },
    /// The serial and everything renewed from it were already revoked: nothing changed.
    AlreadyRevoked,
    /// No certificate with that serial was issued.
    UnknownSerial,
}

/// A renewal to record. The presented certificate is checked again inside the transaction
/// that records the new one, so a revocation committed meanwhile always wins.
pub struct RenewalRequest<'a> {
    /// Serial of the certificate presented over mTLS.
    pub presented_serial: &'a str,
    /// Its SHA-256 fingerprint (it must be the stored one).
    pub presented_fingerprint: &'a str,
    /// SHA-256 of the new key's SubjectPublicKeyInfo (from the CSR).
    pub new_key_sha256: &'a str,
    /// The new certificate, renewed from the presented one.
    pub cert: &'a CertRecord,
    /// The time of the renewal.
    pub now: OffsetDateTime,
}

/// What recording a renewal did. A certificate may be renewed once (like a refresh token):
/// a retry with the same key gets the same certificate, a second renewal with another key is
/// taken as a stolen key and revokes the whole lineage.
#[derive(Debug, PartialEq, Eq)]
pub enum RenewOutcome {
    /// The new certificate is stored, renewed from the presented one.
    Recorded,
    /// The presented certificate was already renewed with this key: that certificate, and
    /// nothing stored.
    Existing(Box<CertRecord>),
    /// Already renewed with this key, but that certificate has since been revoked.
    ExistingRevoked {
        /// The serial of that renewal.
        serial: String,
    },
    /// Already renewed with another key: the lineage (the original certificate and everything
    /// renewed from it) was revoked in this transaction, with a `suspected_key_theft` entry.
    Replayed {
        /// The serials of the earlier renewals.
        renewed_as: Vec<String>,
        /// Every serial revoked now.
        revoked: Vec<String>,
    },
    /// The presented certificate no longer authorises a renewal; nothing stored.
    Refused(Presented),
}

/// The last entry of the audit chain: publish it elsewhere to detect a cut or rewritten tail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditHead {
    /// Its sequence number (1 for the first entry).
    pub seq: i64,
    /// Its hash, hex.
    pub hash: String,
}

/// Result of verifying the audit chain and the tables against it (see `replay.rs`).
#[derive(Debug, PartialEq, Eq)]
pub enum AuditCheck {
    /// The chain verifies and the tables are what it implies.
    Intact {
        /// How many entries the chain holds.
        entries: u64,
        /// The last entry (None for an empty log).
        head: Option<AuditHead>,
    },
    /// The chain itself is broken at `seq` (an entry edited, removed or reordered).
    Broken {
        /// The first entry that does not verify.
        seq: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// The chain is intact but the tables disagree with the state it implies; each problem
    /// names the entry and/or row.
    Mismatch {
        /// How many entries the chain holds.
        entries: u64,
        /// Every disagreement found.
        problems: Vec<String>,
    },
}

/// The CA's persistence. Implementations must make each call atomic and durable on return.
pub trait Store: Send + Sync {
    /// Stores a value in the metadata table if absent; returns the value now stored.
    fn init_meta(&self, key: &str, value: &str) -> Result<String>;
    /// A metadata value, if stored.
    fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets metadata `key` to `new` only when it holds `expected` now (None: absent), and
    /// appends the audit entry `event` with `detail` in the same transaction. False, with
    /// nothing written, when `key` holds something else: another process changed it first
    /// (root rotation steps, `crate::root_rotation`, run this way so replicas agree).
    fn swap_meta(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        event: &str,
        detail: &serde_json::Value,
    ) -> Result<bool>;

    /// Stores a new token (its hash) with its `token` audit entry.
    fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    /// The token with this hash, if stored.
    fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>>;
    /// Marks the token used and records the certificate, atomically; fails over to
    /// `AlreadyUsed` without storing anything when the token was used or expired meanwhile.
    fn redeem_token(&self, hash: &str, now: OffsetDateTime, cert: &CertRecord) -> Result<Redeem>;
    /// Every join token (hashes only), oldest first.
    fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Revokes the one unused token whose hash starts with `id` (lowercase hex), with its
    /// `token_revoke` audit entry naming `actor`; anything else changes nothing.
    fn revoke_token(&self, id: &str, actor: &str, now: OffsetDateTime) -> Result<RevokeToken>;

    /// Records a renewal in one transaction that checks the presented certificate again and
    /// applies the lineage rule (renewed once; same key again: the same answer; another key: the
    /// lineage revoked). See [`RenewOutcome`].
    fn record_renewal(&self, renewal: &RenewalRequest<'_>) -> Result<RenewOutcome>;
    /// The certificate with this serial (normalised hex), if issued.
    fn find_cert(&self, serial: &str) -> Result<Option<CertRecord>>;
    /// Every issued certificate, oldest first.
    fn list_certs(&self) -> Result<Vec<CertRecord>>;

    /// Revokes `serial` (unless it already is) and every live certificate renewed from it,
    /// transitively, each with its `revoke` entry, and moves the revocation epoch.
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
    /// The number of a new CRL: at least `at_least` (the signer's clock in milliseconds) and
    /// greater than every number this store handed out before, to any process or replica
    /// sharing it, so CRL numbers only grow even when clocks disagree or step back.
    fn next_crl_number(&self, at_least: u64) -> Result<u64>;

    /// Verifies the chain and replays it against the tables, from one consistent snapshot.
    fn verify_audit(&self) -> Result<AuditCheck>;
    /// The last entry, None for an empty log.
    fn audit_head(&self) -> Result<Option<AuditHead>>;
    /// The hash of entry `seq`, None when the chain has no such entry.
    fn audit_hash_at(&self, seq: i64) -> Result<Option<String>>;

    /// Appends an audit entry for an event that changes nothing else in the store (the CA's
    /// own API certificate, issued in memory at start and at half-life).
    fn record_event(&self, event: &str, detail: &serde_json::Value) -> Result<()>;

    /// Stores the CA's delegated OCSP responder certificate (kind `ocsp-responder`) with its
    /// `ocsp_responder` audit entry, so `list` shows it and `revoke` can name it.
    fn record_ocsp_responder(&self, cert: &CertRecord) -> Result<()>;

    /// Stores a registration entry with its `entry_create` audit entry and moves the entry
    /// revision, unless an entry with the same parent, SPIFFE ID and selectors exists.
    fn create_entry(&self, entry: &EntryRecord) -> Result<CreateEntry>;
    /// Deletes an entry with its `entry_delete` audit entry and moves the entry revision;
    /// false (nothing changed) when there is no such entry.
    fn delete_entry(&self, id: &str, actor: &str, now: OffsetDateTime) -> Result<bool>;
    /// The entry with this ID.
    fn find_entry(&self, id: &str) -> Result<Option<EntryRecord>>;
    /// Every entry, or those of one parent, oldest first.
    fn list_entries(&self, parent_id: Option<&str>) -> Result<Vec<EntryRecord>>;
    /// Changes whenever an entry is created or deleted, by any process sharing the store.
    fn entry_revision(&self) -> Result<u64>;
    /// Records what an agent obtained for an entry, checking the entry, its parent and the
    /// agent's certificate in the same transaction (see [`AgentIssue`]).
    fn record_agent_issue(&self, issue: &AgentIssue<'_>) -> Result<AgentOutcome>;

    /// Stores a federated trust domain with its `federation_add` audit entry naming `actor`;
    /// false (nothing changed) when that trust domain is federated already.
    fn add_federation(&self, federation: &FederationRecord, actor: &str) -> Result<bool>;
    /// Removes a federated trust domain with its `federation_remove` audit entry; false
    /// (nothing changed) when it is not federated.
    fn remove_federation(
        &self,
        trust_domain: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<bool>;
    /// Every federated trust domain, by name.
    fn list_federations(&self) -> Result<Vec<FederationRecord>>;
    /// Stores a bundle fetched for `trust_domain` (`roots`: the hex SHA-256 of its X.509
    /// authorities, for the log), audited as `federation_bundle` when it differs from the
    /// stored one.
    fn store_federated_bundle(
        &self,
        trust_domain: &str,
        bundle: &str,
        roots: &[String],
        sequence: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<StoredBundle>;

    /// Proves the store can still record: the file opened is still the one at its path, it
    /// would open for writing again, and a small write transaction commits. Err is the reason,
    /// fit to show to an unauthenticated caller (no paths beyond the file name).
    fn health_probe(&self, now: OffsetDateTime) -> std::result::Result<(), String>;
}
