//! Swapping a new credential, roots and revocation list into a running service, for the
//! sources that deliver all three at once: the file watcher (static and pinned mode) and the
//! Workload API stream. One code path, so both log, count and publish alike; what is handed
//! in here has already been validated (`Files::load`, `credentials::workload_api::load`).

use crate::credentials::files::Loaded;
use crate::credentials::Identity;
use crate::events::Events;
use crate::trust::TrustState;

/// Publishes `loaded`: roots first (a peer's new chain may need them), then the revocation
/// list, then the credential if its serial differs from the one presented now. `from` names
/// the source in the logs ("file /etc/ca.pem", "the Workload API"); `how` is the rotation's
/// cause in the `rotated` event.
pub(crate) fn publish(
    loaded: Loaded,
    identity: &Identity,
    trust: Option<&TrustState>,
    events: &Events,
    from: &str,
    how: &str,
) {
    if let (Some(trust), Some(roots)) = (trust, loaded.roots) {
        if trust.set_roots(roots) {
            tracing::info!(event = "trust_reloaded", from = %from, "trusted roots reloaded from {from}");
        }
    }
    if let (Some(trust), Some(revoked)) = (trust, loaded.revoked) {
        // Only a change of the revoked serials wakes the open-connection watchers; a CRL that
        // only has new dates needs no recheck.
        let changed = trust
            .revoked()
            .crls()
            .map(|c| &c.serials)
            .ne(revoked.crls().map(|c| &c.serials));
        if changed {
            tracing::info!(
                event = "crl_updated",
                revoked = revoked.len(),
                "revocation list reloaded from {from}: {} revoked certificate(s)",
                revoked.len()
            );
        }
        trust.set_revoked(revoked, changed);
    }
    if loaded.credential.info.serial_hex != identity.current().info.serial_hex {
        let old = identity.publish(loaded.credential);
        events.rotated(&old, &identity.current(), None, how);
    }
}
