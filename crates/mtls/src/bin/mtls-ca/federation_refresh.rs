//! The running CA keeps each federated trust domain's bundle fresh: it fetches the bundle
//! from the domain's endpoint (`mesh::federation_fetch`, https_spiffe profile; the first
//! fetch bootstrapped by the operator's fingerprint), checks and stores it
//! (`mtls_ca::federation::accept_fetched`, audited when it changed), and fetches it again
//! after the bundle's `spiffe_refresh_hint`, bounded to [`MIN_REFRESH`, `--federation-refresh-max`]
//! (1 h by default; below [`MIN_REFRESH`] only when the operator sets it so). A
//! failed fetch keeps the last good bundle, is counted
//! (`mtls_ca_federation_refresh_failures_total`) and retried after [`RETRY`]; the first good
//! fetch after failures says so (`federated_bundle_refresh_recovered`).
//!
//! The list of federations is read from the store every [`TICK`], so `mtls-ca federation
//! add|remove` run against the same store take effect without a restart.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use mesh::federation_fetch::{fetch_bundle, EndpointTrust};
use mesh::trust::Roots;
use mesh::HttpsUrl;
use mtls_ca::authority::Authority;
use mtls_ca::federation::{accept_fetched, stored_roots};
use mtls_ca::store::{FederationRecord, Store, StoredBundle};
use rustls_pki_types::CertificateDer;
use tokio::time::Instant;
use wire::tls::TlsPolicy;

/// How often the store's list of federations is read.
const TICK: Duration = Duration::from_secs(1);
/// A bundle is fetched at most this often, whatever its refresh hint says.
const MIN_REFRESH: Duration = Duration::from_secs(30);
/// Used when a bundle has no refresh hint.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// After a failed fetch.
const RETRY: Duration = Duration::from_secs(5);
/// One fetch, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until the process ends; each bundle is fetched at least every `max_refresh`.
pub async fn run(authority: Arc<Authority>, store: Arc<dyn Store>, max_refresh: Duration) {
    let policy = TlsPolicy::mesh();
    let mut due: HashMap<String, Instant> = HashMap::new();
    // The trust domains whose last fetch failed.
    let mut failing: HashSet<String> = HashSet::new();
    loop {
        let listed = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.list_federations()).await
        };
        match listed {
            Ok(Ok(federations)) => {
                due.retain(|td, _| federations.iter().any(|f| &f.trust_domain == td));
                failing.retain(|td| federations.iter().any(|f| &f.trust_domain == td));
                for federation in federations {
                    let now = Instant::now();
                    if due
                        .get(&federation.trust_domain)
                        .is_some_and(|at| *at > now)
                    {
                        continue;
                    }
                    let next = refresh_one(
                        &authority,
                        &store,
                        &policy,
                        &federation,
                        max_refresh,
                        &mut failing,
                    )
                    .await;
                    due.insert(federation.trust_domain.clone(), Instant::now() + next);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the federated trust domains; retrying")
            }
            Err(e) => tracing::error!(error = %e, "reading the federated trust domains failed"),
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Fetches and stores one bundle; returns how long to wait before the next fetch.
async fn refresh_one(
    authority: &Arc<Authority>,
    store: &Arc<dyn Store>,
    policy: &TlsPolicy,
    federation: &FederationRecord,
    max_refresh: Duration,
    failing: &mut HashSet<String>,
) -> Duration {
    let td = federation.trust_domain.clone();
    match fetch_and_store(authority, store, policy, federation).await {
        Ok((hint, stored)) => {
            authority.metrics.federation.refreshed(&td);
            if failing.remove(&td) {
                tracing::info!(event = "federated_bundle_refresh_recovered", trust_domain = %td, "the bundle of {td} was fetched again after failed fetches");
            }
            if stored == StoredBundle::Changed {
                tracing::info!(event = "federated_bundle_updated", trust_domain = %td, "federated bundle of {td} updated");
            }
            next_fetch(hint, max_refresh)
        }
        Err(reason) => {
            authority.metrics.federation.failed(&td);
            failing.insert(td.clone());
            let kept = if federation.bundle.is_some() {
                "keeping the last good bundle"
            } else {
                "no bundle yet: its peers are not trusted"
            };
            tracing::warn!(event = "federated_bundle_refresh_failed", trust_domain = %td, error = %reason, "refreshing the bundle of {td} failed: {reason}; {kept}; retrying in {}", pki::timefmt::human_std(RETRY));
            RETRY
        }
    }
}

/// When to fetch a good bundle again: on its refresh hint (or [`DEFAULT_REFRESH`]), never
/// sooner than [`MIN_REFRESH`] on the hint's word, never later than `max_refresh` (the operator's
/// `--federation-refresh-max`, which wins over both).
fn next_fetch(hint_seconds: Option<u64>, max_refresh: Duration) -> Duration {
    hint_seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_REFRESH)
        .max(MIN_REFRESH)
        .min(max_refresh)
}

async fn fetch_and_store(
    authority: &Arc<Authority>,
    store: &Arc<dyn Store>,
    policy: &TlsPolicy,
    federation: &FederationRecord,
) -> Result<(Option<u64>, StoredBundle), String> {
    let url = HttpsUrl::parse(&federation.endpoint).map_err(|e| e.to_string())?;
    let endpoint_id =
        pki::SpiffeId::parse(&federation.endpoint_spiffe_id).map_err(|e| e.to_string())?;
    let trust = match stored_roots(federation) {
        Some(certs) => EndpointTrust::Roots(
            Roots::new(certs.into_iter().map(CertificateDer::from).collect())
                .map_err(|e| format!("the stored bundle is unusable: {e}"))?,
        ),
        None => EndpointTrust::Fingerprint(federation.fingerprint.clone()),
    };
    let (json, bundle) = fetch_bundle(&url, &endpoint_id, &trust, policy, FETCH_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let hint = bundle.refresh_hint_seconds;
    let (store, federation, now) = (store.clone(), federation.clone(), authority.now());
    let stored = tokio::task::spawn_blocking(move || {
        accept_fetched(store.as_ref(), &federation, &json, now).map(|(_, stored)| stored)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok((hint, stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_fetched_again_on_its_hint_within_the_bounds() {
        let hour = Duration::from_secs(3600);
        assert_eq!(next_fetch(Some(300), hour), Duration::from_secs(300));
        assert_eq!(next_fetch(None, hour), DEFAULT_REFRESH);
        // A hint may not make us fetch more often than every 30 s...
        assert_eq!(next_fetch(Some(1), hour), MIN_REFRESH);
        // ...nor less often than the operator's maximum, which may be shorter still.
        assert_eq!(next_fetch(Some(86_400), hour), hour);
        let five = Duration::from_secs(5);
        assert_eq!(next_fetch(Some(300), five), five);
    }
}
