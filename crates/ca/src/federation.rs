//! Federation with other trust domains (docs/operations.md "Federation"): what an operator
//! may federate (`mtls-ca federation add`), what a fetched bundle must be before it is
//! stored, and what services receive (`GET /api/v1/bundle/federated`).
//!
//! The CA only relays foreign bundles; it never signs with or for a foreign root. Services
//! keep each federated domain's roots apart and let them vouch for that domain's IDs only
//! (crates/mesh/src/federation.rs, docs/security.md).

use serde_json::{Map, Value};
use thiserror::Error;
use time::OffsetDateTime;

use crate::store::{FederationRecord, Store, StoreError, StoredBundle};
use pki::spiffe_bundle::{BundleError, SpiffeBundle};
use pki::{SpiffeId, TrustDomain};

/// A federation request or a fetched bundle refused; nothing was stored.
#[derive(Debug, Error)]
pub enum FederationError {
    /// `--trust-domain` is not a trust domain name.
    #[error("--trust-domain {value:?}: {reason}")]
    TrustDomain {
        /// As given.
        value: String,
        /// Why.
        reason: String,
    },
    /// `--trust-domain` names this CA's own trust domain.
    #[error(
        "--trust-domain {0} is this CA's own trust domain; federation is with other trust \
         domains (our own is vouched for by our own root only)"
    )]
    OwnDomain(String),
    /// `--endpoint` is not an https:// URL.
    #[error(
        "--endpoint {0:?}: the bundle endpoint must be an https:// URL (the https_spiffe profile)"
    )]
    Endpoint(String),
    /// `--endpoint-spiffe-id` is not a SPIFFE ID of the federated domain.
    #[error("--endpoint-spiffe-id {value:?}: {reason}")]
    EndpointId {
        /// As given.
        value: String,
        /// Why.
        reason: String,
    },
    /// `--fingerprint` is not `sha256:` and 64 hex digits.
    #[error(
        "--fingerprint {0:?}: expected sha256:<64 hex digits> (the SHA-256 of one root of the \
         other trust domain, e.g. the one its mtls-ca prints at start)"
    )]
    Fingerprint(String),
    /// The trust domain is federated already.
    #[error("{0} is federated already (`mtls-ca federation remove {0}` first to change it)")]
    Exists(String),
    /// The trust domain is not federated.
    #[error("{0} is not federated (see `mtls-ca federation list`)")]
    Unknown(String),
    /// A fetched bundle that is not a usable SPIFFE bundle.
    #[error("the bundle of {trust_domain}: {error}")]
    Bundle {
        /// The federated trust domain.
        trust_domain: String,
        /// Why.
        error: BundleError,
    },
    /// The first fetch: no root of the bundle has the fingerprint given at `federation add`.
    #[error(
        "the first bundle of {trust_domain} holds no root with the fingerprint sha256:{expected} \
         given at `federation add` (it holds {}); refused: wrong fingerprint, or not the endpoint \
         of that trust domain",
        presented.join(", ")
    )]
    BootstrapFingerprint {
        /// The federated trust domain.
        trust_domain: String,
        /// The fingerprint given.
        expected: String,
        /// The fingerprints of the bundle's roots.
        presented: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an operator asks to federate.
#[derive(Clone, Debug)]
pub struct NewFederation {
    /// `--trust-domain`.
    pub trust_domain: String,
    /// `--endpoint`.
    pub endpoint: String,
    /// `--endpoint-spiffe-id`.
    pub endpoint_spiffe_id: String,
    /// `--fingerprint`.
    pub fingerprint: String,
}

/// Checks a federation request against our own trust domain `own`: the record to store.
pub fn check(
    own: &TrustDomain,
    new: &NewFederation,
    now: OffsetDateTime,
) -> Result<FederationRecord, FederationError> {
    let td = TrustDomain::parse(&new.trust_domain).map_err(|e| FederationError::TrustDomain {
        value: new.trust_domain.clone(),
        reason: e.to_string(),
    })?;
    if &td == own {
        return Err(FederationError::OwnDomain(td.to_string()));
    }
    let endpoint = new.endpoint.trim();
    if !endpoint.starts_with("https://") || endpoint.len() <= "https://".len() {
        return Err(FederationError::Endpoint(new.endpoint.clone()));
    }
    let endpoint_id =
        SpiffeId::parse(&new.endpoint_spiffe_id).map_err(|e| FederationError::EndpointId {
            value: new.endpoint_spiffe_id.clone(),
            reason: e.to_string(),
        })?;
    if endpoint_id.trust_domain() != &td {
        return Err(FederationError::EndpointId {
            value: new.endpoint_spiffe_id.clone(),
            reason: format!(
                "it is not in {td}: the endpoint of a trust domain presents an identity of \
                 that domain (mtls-ca: spiffe://{td}/ca)"
            ),
        });
    }
    let fingerprint = parse_fingerprint(&new.fingerprint)
        .ok_or_else(|| FederationError::Fingerprint(new.fingerprint.clone()))?;
    Ok(FederationRecord {
        trust_domain: td.to_string(),
        endpoint: endpoint.to_string(),
        endpoint_spiffe_id: endpoint_id.to_string(),
        fingerprint,
        created_at: now.unix_timestamp(),
        bundle: None,
        refreshed_at: None,
    })
}

/// `sha256:<hex>` (or bare hex, any case, with or without colons) as 64 lowercase hex digits.
fn parse_fingerprint(input: &str) -> Option<String> {
    let hex: String = input
        .trim()
        .strip_prefix("sha256:")
        .unwrap_or(input.trim())
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

/// Stores a new federation (audited as `federation_add`).
pub fn add(
    store: &dyn Store,
    own: &TrustDomain,
    new: &NewFederation,
    actor: &str,
    now: OffsetDateTime,
) -> Result<FederationRecord, FederationError> {
    let record = check(own, new, now)?;
    if !store.add_federation(&record, actor)? {
        return Err(FederationError::Exists(record.trust_domain));
    }
    Ok(record)
}

/// Removes a federation (audited as `federation_remove`).
pub fn remove(
    store: &dyn Store,
    trust_domain: &str,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), FederationError> {
    if !store.remove_federation(trust_domain, actor, now)? {
        return Err(FederationError::Unknown(trust_domain.to_string()));
    }
    Ok(())
}

/// Checks a bundle fetched for `federation` and stores it. The first one (nothing stored
/// yet) must hold the root the operator's fingerprint names; the fetch itself was
/// authenticated by the caller (against that root on the first fetch, against the stored
/// bundle afterwards). Returns the parsed bundle and what storing did.
pub fn accept_fetched(
    store: &dyn Store,
    federation: &FederationRecord,
    json: &[u8],
    now: OffsetDateTime,
) -> Result<(SpiffeBundle, StoredBundle), FederationError> {
    let td = &federation.trust_domain;
    let bundle = SpiffeBundle::parse(json).map_err(|error| FederationError::Bundle {
        trust_domain: td.clone(),
        error,
    })?;
    let roots: Vec<String> = bundle
        .x509_authorities
        .iter()
        .map(|der| pki::sha256_hex(der))
        .collect();
    if federation.bundle.is_none() && !roots.contains(&federation.fingerprint) {
        return Err(FederationError::BootstrapFingerprint {
            trust_domain: td.clone(),
            expected: federation.fingerprint.clone(),
            presented: roots,
        });
    }
    let text = String::from_utf8_lossy(json).into_owned();
    let stored = store.store_federated_bundle(td, &text, &roots, bundle.sequence, now)?;
    Ok((bundle, stored))
}

/// The X.509 authorities of a stored bundle (None when it has none or does not parse).
pub fn stored_roots(federation: &FederationRecord) -> Option<Vec<Vec<u8>>> {
    let bundle = SpiffeBundle::parse(federation.bundle.as_deref()?.as_bytes()).ok()?;
    Some(bundle.x509_authorities)
}

/// `GET /api/v1/bundle/federated`: `{"federated_bundles": {"<td>": <SPIFFE bundle>, …}}`
/// with the last good bundle of every federated trust domain that has one.
pub fn federated_bundles(store: &dyn Store) -> Result<Value, StoreError> {
    let mut out = Map::new();
    for federation in store.list_federations()? {
        let Some(text) = federation.bundle.as_deref() else {
            continue;
        };
        match serde_json::from_str::<Value>(text) {
            Ok(bundle) => {
                out.insert(federation.trust_domain.clone(), bundle);
            }
            Err(e) => {
                tracing::error!(trust_domain = %federation.trust_domain, error = %e, "a stored federated bundle is not JSON; left out");
            }
        }
    }
    Ok(serde_json::json!({ "federated_bundles": out }))
}

#[cfg(test)]
mod tests;
