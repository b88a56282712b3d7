//! Rows exactly as the tables hold them (integer timestamps, JSON text), shared by the SQLite
//! store and the audit replay, which must compare stored values, not re-encoded ones.

use time::OffsetDateTime;

use super::{CertRecord, IssueKind, Result, StoreError, TokenRecord};

/// A time as the tables hold it: Unix seconds.
pub fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// A list as the tables hold it: JSON text.
pub fn json<T: serde::Serialize>(v: &T) -> String {
    // Serialising Vec<String>/Vec<IpAddr> cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub fn from_ts(v: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(v)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {v}")))
}

pub fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|_| StoreError::Corrupt(format!("{what}: {s:?}")))
}

/// One row of `audit`.
#[derive(Clone, Debug)]
pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub event: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// One row of `tokens`.
#[derive(Clone, Debug)]
pub struct TokenRow {
    pub hash: String,
    pub spiffe_id: String,
    pub dns: String,
    pub ips: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_serial: Option<String>,
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    pub fn into_record(self) -> Result<TokenRecord> {
        Ok(TokenRecord {
            dns: from_json(&self.dns, "tokens.dns")?,
            ips: from_json(&self.ips, "tokens.ips")?,
            created_at: from_ts(self.created_at)?,
            expires_at: from_ts(self.expires_at)?,
            used_at: self.used_at.map(from_ts).transpose()?,
            revoked_at: self.revoked_at.map(from_ts).transpose()?,
            used_serial: self.used_serial,
            hash: self.hash,
            spiffe_id: self.spiffe_id,
        })
    }
}

/// One row of `certs`.
#[derive(Clone, Debug)]
pub struct CertRow {
    pub serial: String,
    pub spiffe_id: String,
    pub dns: String,
    pub ips: String,
    pub not_before: i64,
    pub not_after: i64,
    pub issued_at: i64,
    pub kind: String,
    pub renewed_from: Option<String>,
    pub fingerprint: String,
    pub pem: String,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
}

impl CertRow {
    pub fn into_record(self) -> Result<CertRecord> {
        Ok(CertRecord {
            dns: from_json(&self.dns, "certs.dns")?,
            ips: from_json(&self.ips, "certs.ips")?,
            not_before: from_ts(self.not_before)?,
            not_after: from_ts(self.not_after)?,
            issued_at: from_ts(self.issued_at)?,
            kind: match self.kind.as_str() {
                "sign" => IssueKind::Sign,
                "renew" => IssueKind::Renew,
                "agent" => IssueKind::Agent,
                "ocsp-responder" => IssueKind::OcspResponder,
                other => return Err(StoreError::Corrupt(format!("certs.kind {other:?}"))),
            },
            revoked_at: self.revoked_at.map(from_ts).transpose()?,
            serial: self.serial,
            spiffe_id: self.spiffe_id,
            renewed_from: self.renewed_from,
            fingerprint: self.fingerprint,
            pem: self.pem,
            revoke_reason: self.revoke_reason,
        })
    }
}
