//! The SVID cache: the agent's registration entries, an X.509-SVID minted in advance for each
//! (key made here, CSR to the CA), renewed at half its lifetime, dropped with its entry; the
//! trust bundle, the CRL and the JWT signing keys. Each change is published on a watch channel
//! as a new [`Snapshot`], which the open `FetchX509SVID`/`FetchX509Bundles`/`FetchJWTBundles`
//! streams turn into messages. When the CA is unreachable the cache keeps what it has: SVIDs
//! are served until they expire.
//!
//! Time: "now" comes from the injected clock and the waits are tokio sleeps, so the unit tests
//! drive an hour of rotations with tokio's paused clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::ca::{AgentCa, Entry};
use crate::error::CaCallError;

/// One X.509-SVID with its key, for one entry.
#[derive(Clone, PartialEq, Eq)]
pub struct Svid {
    /// The entry it was minted for.
    pub entry: Entry,
    /// Leaf first, then intermediates (DER).
    pub chain: Vec<Vec<u8>>,
    /// The private key, PKCS#8 DER (never leaves the agent but to the workload).
    pub key_pkcs8: Vec<u8>,
    /// The leaf's serial (hex).
    pub serial: String,
    /// Validity.
    pub not_before: OffsetDateTime,
    /// Validity.
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for Svid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Svid")
            .field("spiffe_id", &self.entry.spiffe_id)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Svid {
    /// When it should be replaced: half its lifetime.
    pub fn renew_at(&self) -> OffsetDateTime {
        self.not_before + (self.not_after - self.not_before) / 2
    }
}

/// Everything the Workload API serves, at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The entries whose parent is this agent (as last fetched).
    pub entries: Vec<Entry>,
    /// Valid SVIDs by entry id.
    pub svids: BTreeMap<String, Arc<Svid>>,
    /// Trusted roots (DER).
    pub roots: Vec<Vec<u8>>,
    /// The CA's CRL (DER), once fetched and verified.
    pub crl: Option<Vec<u8>>,
    /// The SPIFFE bundle (JWK set JSON) as the CA serves it, once fetched.
    pub spiffe_bundle: Option<Vec<u8>>,
    /// The X.509 authorities (DER, concatenated) of each federated trust domain, keyed by its
    /// trust domain ID (`spiffe://b.example`), as the Workload API's `federated_bundles` are.
    pub federated: BTreeMap<String, Vec<u8>>,
}

/// The X.509 authorities of each bundle of `GET /api/v1/bundle/federated`; a domain whose
/// bundle is unusable is left out (and logged).
pub fn federated_roots(body: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "the CA's federated bundles are not JSON");
            return out;
        }
    };
    let Some(bundles) = value.get("federated_bundles").and_then(|v| v.as_object()) else {
        return out;
    };
    for (name, bundle) in bundles {
        let parsed = pki::TrustDomain::parse(name)
            .map_err(|e| e.to_string())
            .and_then(|td| {
                pki::spiffe_bundle::SpiffeBundle::parse(bundle.to_string().as_bytes())
                    .map(|b| (td, b))
                    .map_err(|e| e.to_string())
            });
        match parsed {
            Ok((td, b)) => {
                out.insert(td.id_string(), b.x509_authorities.concat());
            }
            Err(e) => {
                tracing::warn!(trust_domain = %name, error = %e, "federated bundle of {name} left out: {e}")
            }
        }
    }
    out
}

/// Settings of the cache.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// How often entries, CRL and bundle are fetched.
    pub entry_refresh: Duration,
    /// The curve of the SVID keys.
    pub curve: pki::Curve,
}

/// Where the trusted roots come from (the agent's mesh, which refreshes the CA bundle).
pub type RootsSource = Arc<dyn Fn() -> Vec<Vec<u8>> + Send + Sync>;

/// The cache and the task that keeps it.
pub struct SvidCache {
    ca: Arc<dyn AgentCa>,
    clock: Arc<dyn pki::clock::Clock>,
    config: CacheConfig,
    roots: RootsSource,
    tx: watch::Sender<Arc<Snapshot>>,
}

impl SvidCache {
    /// A cache (empty until [`SvidCache::refresh`] runs).
    pub fn new(
        ca: Arc<dyn AgentCa>,
        clock: Arc<dyn pki::clock::Clock>,
        config: CacheConfig,
        roots: RootsSource,
    ) -> Arc<SvidCache> {
        Arc::new(SvidCache {
            ca,
            clock,
            config,
            roots,
            tx: watch::channel(Arc::new(Snapshot::default())).0,
        })
    }

    /// The current snapshot and its changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// The CA client, for the on-demand calls (JWT-SVIDs).
    pub fn ca(&self) -> &Arc<dyn AgentCa> {
        &self.ca
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn pki::clock::Clock> {
        &self.clock
    }

    /// Keeps the cache until the task is dropped: a refresh round, then a sleep until the next
    /// round or the next renewal, whichever comes first.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.refresh().await;
            let wait = self.next_wait();
            tokio::time::sleep(wait).await;
        }
    }

    /// How long until the next round: the refresh interval, or less when an SVID is due.
    fn next_wait(&self) -> Duration {
        let now = self.clock.now();
        let snapshot = self.current();
        let due = snapshot
            .svids
            .values()
            .map(|s| s.renew_at())
            .min()
            .map(|t| Duration::try_from(t - now).unwrap_or(Duration::ZERO));
        let wait = due.map_or(self.config.entry_refresh, |d| {
            d.min(self.config.entry_refresh)
        });
        // A round that fails to renew must not spin: retry no sooner than a second later.
        wait.max(Duration::from_secs(1))
    }

    /// One round: entries, CRL, bundles, then an SVID for every entry that has none, is due,
    /// or changed; SVIDs of deleted entries and expired ones are dropped. Publishes a snapshot
    /// when something changed.
    pub async fn refresh(&self) {
        let old = self.current();
        let mut next = (*old).clone();
        match self.ca.entries().await {
            Ok(e) => next.entries = e.entries,
            Err(e) => log_ca_error("fetching the registration entries", &e),
        }
        next.roots = (self.roots)();
        match self.ca.spiffe_bundle().await {
            Ok(b) => next.spiffe_bundle = Some(b),
            Err(e) => log_ca_error("fetching the SPIFFE bundle", &e),
        }
        match self.ca.federated_bundles().await {
            Ok(Some(body)) => next.federated = federated_roots(&body),
            Ok(None) => next.federated.clear(),
            // The last federated bundles stay, like the rest of the snapshot.
            Err(e) => log_ca_error("fetching the federated bundles", &e),
        }
        let now = self.clock.now();
        // Drop the SVIDs of entries that are gone, and expired ones.
        next.svids
            .retain(|id, s| now < s.not_after && next.entries.iter().any(|e| &e.id == id));
        // Logged once the snapshot holding them is published: `svid_minted` means workloads
        // can fetch it (tests wait for that line before fetching).
        let mut minted = Vec::new();
        for entry in next.entries.clone() {
            let current = next.svids.get(&entry.id);
            let fresh = current.is_some_and(|s| s.entry == entry && now < s.renew_at());
            if fresh {
                continue;
            }
            match self.mint(&entry).await {
                Ok(svid) => {
                    let svid = Arc::new(svid);
                    next.svids.insert(entry.id.clone(), svid.clone());
                    minted.push((entry, svid));
                }
                Err(e) => tracing::warn!(
                    event = "svid_mint_failed",
                    spiffe_id = %entry.spiffe_id,
                    entry = %entry.id,
                    error = %e,
                    "could not mint an SVID for entry {}; the current one (if any) is kept until it expires",
                    entry.id
                ),
            }
        }
        // After minting: a two-tier CA signs the CRL with its intermediate, which the SVIDs
        // just checked carry after their leaf (the bundle holds roots only).
        match self.ca.crl().await {
            Ok(der) => match pki::crl::verify_crl(&der, &crl_issuers(&next)) {
                Ok(_) => next.crl = Some(der),
                Err(e) => {
                    tracing::warn!(error = %e, "the CA's CRL does not verify against the roots or the SVIDs' intermediates; keeping the previous one")
                }
            },
            Err(e) => log_ca_error("fetching the CRL", &e),
        }
        if next != *old {
            self.tx.send_replace(Arc::new(next));
        }
        for (entry, svid) in minted {
            tracing::info!(
                event = "svid_minted",
                spiffe_id = %entry.spiffe_id,
                entry = %entry.id,
                serial = %svid.serial,
                not_after = %pki::timefmt::rfc3339(svid.not_after),
                "minted an X.509-SVID for entry {} ({})", entry.id, entry.spiffe_id
            );
        }
    }

    /// A fresh key, a CSR, the CA's certificate for `entry`, checked to carry the entry's
    /// identity and our key.
    async fn mint(&self, entry: &Entry) -> Result<Svid, MintError> {
        let id = pki::SpiffeId::parse(&entry.spiffe_id)
            .map_err(|e| MintError(format!("the entry's SPIFFE ID: {e}")))?;
        let key = pki::keys::generate(self.config.curve).map_err(|e| MintError(e.to_string()))?;
        let csr = mesh::make_csr(&key, &id).map_err(|e| MintError(e.to_string()))?;
        let answer = self
            .ca
            .svid(&entry.id, &csr)
            .await
            .map_err(|e| MintError(e.to_string()))?;
        // The X509-SVID the Workload API hands out: the leaf and its intermediates; the roots
        // go in the bundle.
        let chain = pki::intermediate::presented_chain(&answer.certificate, &answer.chain)
            .map_err(|e| MintError(format!("the certificate and its chain: {e}")))?
            .into_iter()
            .map(|c| c.as_ref().to_vec())
            .collect::<Vec<_>>();
        let leaf = chain
            .first()
            .ok_or_else(|| MintError("no certificate in the answer".into()))?;
        let info = pki::CertInfo::from_der(leaf).map_err(|e| MintError(e.to_string()))?;
        if info.spiffe_id().map(|i| i.to_string()).as_deref() != Some(entry.spiffe_id.as_str()) {
            return Err(MintError(format!(
                "the certificate is for {:?}, expected {}",
                info.uris, entry.spiffe_id
            )));
        }
        if info.spki_sha256 != pki::sha256_hex(&pki::keys::spki_der(&key)) {
            return Err(MintError(
                "the certificate does not carry the key of the request".into(),
            ));
        }
        Ok(Svid {
            entry: entry.clone(),
            chain,
            key_pkcs8: key.serialize_der(),
            serial: info.serial_hex,
            not_before: info.not_before,
            not_after: info.not_after,
        })
    }
}

/// The roots, then the intermediates of the SVIDs held (each chain after its leaf).
fn crl_issuers(snapshot: &Snapshot) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    let mut out = roots_der(&snapshot.roots);
    for svid in snapshot.svids.values() {
        for der in svid.chain.iter().skip(1) {
            let cert = rustls_pki_types::CertificateDer::from(der.clone());
            if !out.contains(&cert) {
                out.push(cert);
            }
        }
    }
    out
}

fn roots_der(roots: &[Vec<u8>]) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    roots
        .iter()
        .map(|r| rustls_pki_types::CertificateDer::from(r.clone()))
        .collect()
}

fn log_ca_error(what: &str, e: &CaCallError) {
    tracing::warn!(event = "ca_call_failed", error = %e, "{what}: {e}; serving what is cached");
}

/// Why an SVID could not be minted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MintError(String);

#[cfg(test)]
mod tests;
