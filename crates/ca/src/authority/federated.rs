//! What services receive of the federated trust domains (`GET /api/v1/bundle/federated`).

use super::{Authority, Res};

impl Authority {
    /// The last good bundle of every federated trust domain (`crate::federation`), read from
    /// the store at each request: `mtls-ca federation remove`, run against the same store,
    /// takes effect at the services' next refresh.
    pub fn federated_bundles(&self) -> Res<serde_json::Value> {
        Ok(crate::federation::federated_bundles(self.store.as_ref())?)
    }
}
