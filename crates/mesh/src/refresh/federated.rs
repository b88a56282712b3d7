//! The federated bundles a service receives from its CA at each trust refresh
//! (`GET /api/v1/bundle/federated`, docs/ca-api.md): each foreign trust domain's SPIFFE bundle,
//! read into that domain's own roots (`crate::federation`). A domain the CA no longer serves is
//! dropped at once, so new handshakes from its peers fail from the next refresh on.

use pki::spiffe_bundle::SpiffeBundle;
use pki::TrustDomain;
use rustls_pki_types::CertificateDer;
use serde_json::Value;

use crate::federation::FederatedBundles;
use crate::trust::{Roots, TrustState};

/// Reads the CA's answer and installs it; returns true when the federated roots changed.
/// A malformed answer changes nothing; a domain whose bundle is unusable (or that is our own)
/// is left out and logged.
pub(crate) fn apply(trust: &TrustState, own: &TrustDomain, body: &[u8]) -> bool {
    let bundles = match serde_json::from_slice::<Value>(body) {
        Ok(v) => match v.get("federated_bundles").and_then(Value::as_object) {
            Some(map) => map.clone(),
            None => {
                tracing::warn!(event = "federated_bundles_refused", "the CA's federated bundles lack a \"federated_bundles\" object; keeping the current ones");
                return false;
            }
        },
        Err(e) => {
            tracing::warn!(event = "federated_bundles_refused", error = %e, "the CA's federated bundles are not JSON; keeping the current ones");
            return false;
        }
    };
    let mut domains = Vec::new();
    for (name, bundle) in bundles {
        let roots = TrustDomain::parse(&name)
            .map_err(|e| e.to_string())
            .and_then(|td| {
                if &td == own {
                    return Err("it is this service's own trust domain".to_string());
                }
                let parsed = SpiffeBundle::parse(bundle.to_string().as_bytes())
                    .map_err(|e| e.to_string())?;
                let certs = parsed
                    .x509_authorities
                    .into_iter()
                    .map(CertificateDer::from)
                    .collect();
                Ok((td, Roots::new(certs).map_err(|e| e.to_string())?))
            });
        match roots {
            Ok(entry) => domains.push(entry),
            Err(reason) => {
                tracing::error!(event = "federated_bundle_refused", trust_domain = %name, "federated bundle of {name} refused: {reason}; its peers are not trusted");
            }
        }
    }
    let names: Vec<String> = domains.iter().map(|(td, _)| td.to_string()).collect();
    match FederatedBundles::new(own, domains) {
        Ok(federated) => {
            let changed = trust.set_federated(federated);
            if changed {
                tracing::info!(event = "federated_bundles_updated", trust_domains = ?names, "federated trust domains now: {names:?}");
            }
            changed
        }
        Err(e) => {
            tracing::error!(event = "federated_bundles_refused", error = %e, "federated bundles refused: {e}");
            false
        }
    }
}
