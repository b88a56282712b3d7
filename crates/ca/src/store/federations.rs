//! Federated trust domains (docs/operations.md "Federation"): for each foreign trust domain,
//! where its SPIFFE bundle endpoint is, the SPIFFE ID that endpoint must present, the
//! fingerprint that authenticates the first fetch, and the last good bundle fetched.
//!
//! Every change is audited: `federation_add`, `federation_remove`, and `federation_bundle`
//! whenever a fetched bundle differs from the one stored (its SHA-256 is recorded, so
//! `audit verify` catches a bundle swapped behind the log's back, `replay.rs`). A refresh that
//! brings the same bundle only moves `refreshed_at`, which is not audited.

use serde::Serialize;
use serde_json::{json, Value};

use super::details::VERSION;

/// One federated trust domain as stored (times as Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FederationRecord {
    /// The foreign trust domain (`other.example`).
    pub trust_domain: String,
    /// Its bundle endpoint URL (`https://…`, the https_spiffe profile).
    pub endpoint: String,
    /// The SPIFFE ID the endpoint's server certificate must carry.
    pub endpoint_spiffe_id: String,
    /// Hex SHA-256 of one root of the foreign domain: the first fetch is trusted only when
    /// the TLS server chains to that root and the bundle holds it.
    pub fingerprint: String,
    /// When the operator added it.
    pub created_at: i64,
    /// The last good SPIFFE bundle (JSON, as fetched), None before the first fetch.
    pub bundle: Option<String>,
    /// When that bundle was last fetched (or confirmed unchanged).
    pub refreshed_at: Option<i64>,
}

impl FederationRecord {
    /// Hex SHA-256 of the stored bundle, as `federation_bundle` entries record it.
    pub fn bundle_sha256(&self) -> Option<String> {
        self.bundle
            .as_deref()
            .map(|b| pki::sha256_hex(b.as_bytes()))
    }
}

/// What storing a fetched bundle did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredBundle {
    /// The bundle differs from the one stored: stored and audited.
    Changed,
    /// The same bundle again: only `refreshed_at` moved.
    Unchanged,
    /// The federation was removed meanwhile: nothing stored.
    Gone,
}

pub fn add_detail(f: &FederationRecord, actor: &str) -> Value {
    json!({
        "v": VERSION,
        "trust_domain": f.trust_domain,
        "endpoint": f.endpoint,
        "endpoint_spiffe_id": f.endpoint_spiffe_id,
        "fingerprint": f.fingerprint,
        "created_at": f.created_at,
        "actor": actor,
    })
}

pub fn remove_detail(trust_domain: &str, removed_at: i64, actor: &str) -> Value {
    json!({
        "v": VERSION,
        "trust_domain": trust_domain,
        "removed_at": removed_at,
        "actor": actor,
    })
}

/// `roots`: hex SHA-256 of each X.509 authority of the bundle, for the reader of the log.
pub fn bundle_detail(
    trust_domain: &str,
    bundle: &str,
    roots: &[String],
    sequence: Option<u64>,
    at: i64,
) -> Value {
    json!({
        "v": VERSION,
        "trust_domain": trust_domain,
        "bundle_sha256": pki::sha256_hex(bundle.as_bytes()),
        "roots": roots,
        "sequence": sequence,
        "refreshed_at": at,
    })
}
