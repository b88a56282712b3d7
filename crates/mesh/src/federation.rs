//! Federated trust domains as a service sees them: for each foreign trust domain its own roots,
//! kept apart from ours, and the foreign SPIFFE IDs the service accepts.
//!
//! The rule (docs/security.md, "Federation"): a federated root vouches only for identities of
//! the trust domain it was federated for. It never vouches for our own trust domain (the set
//! cannot hold it) nor for a third domain (a peer's chain is validated against the roots of
//! the trust domain named in its own SPIFFE ID, and nothing else). A peer from a federated
//! domain is accepted only where the service names it explicitly (`--allow-id` on a server,
//! `--server-id` on a client).

use std::collections::BTreeMap;
use std::sync::Arc;

use pki::{SpiffeId, TrustDomain};

use crate::error::{Result, TrustError};
use crate::server::AllowList;
use crate::trust::Roots;

/// The roots of each federated trust domain.
#[derive(Clone, Debug, Default)]
pub struct FederatedBundles {
    by_domain: BTreeMap<String, Arc<Roots>>,
}

impl FederatedBundles {
    /// The bundles of foreign trust domains. Refuses one for `own` (our own trust domain is
    /// vouched for by our own roots only).
    pub fn new(own: &TrustDomain, bundles: Vec<(TrustDomain, Roots)>) -> Result<FederatedBundles> {
        let mut by_domain = BTreeMap::new();
        for (td, roots) in bundles {
            if &td == own {
                return Err(TrustError::FederatedOwnDomain {
                    trust_domain: td.to_string(),
                }
                .into());
            }
            by_domain.insert(td.to_string(), Arc::new(roots));
        }
        Ok(FederatedBundles { by_domain })
    }

    /// The roots that may vouch for identities of `td`, if it is federated.
    pub fn roots_for(&self, td: &TrustDomain) -> Option<&Arc<Roots>> {
        self.by_domain.get(td.as_str())
    }

    /// The federated trust domains, sorted.
    pub fn domains(&self) -> Vec<&str> {
        self.by_domain.keys().map(String::as_str).collect()
    }

    /// True when no trust domain is federated.
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// Each domain with the fingerprints of its roots: two sets with the same roots per
    /// domain compare equal.
    pub fn fingerprints(&self) -> Vec<(String, Vec<String>)> {
        self.by_domain
            .iter()
            .map(|(td, roots)| (td.clone(), roots.fingerprints()))
            .collect()
    }
}

/// The foreign callers a server accepts: the `--allow-id` patterns that name a trust domain
/// other than ours. An empty allow list (every verified caller of our own domain) accepts no
/// foreign caller at all.
#[derive(Clone, Debug, Default)]
pub struct FederatedCallers {
    patterns: Vec<String>,
}

impl FederatedCallers {
    /// The patterns of `allow` outside `own`.
    pub fn from_allow_list(own: &TrustDomain, allow: &AllowList) -> FederatedCallers {
        let patterns = allow
            .patterns()
            .iter()
            .filter(|p| {
                let id = p.strip_suffix("/*").unwrap_or(p);
                SpiffeId::parse(id).is_ok_and(|id| id.trust_domain() != own)
            })
            .cloned()
            .collect();
        FederatedCallers { patterns }
    }

    /// True when `id` is named by one of the patterns.
    pub fn permits(&self, id: &SpiffeId) -> bool {
        self.patterns.iter().any(|p| id.matches_pattern(p))
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}
